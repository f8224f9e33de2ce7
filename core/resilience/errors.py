"""Typed errors of the resilience primitives (public API).

Every rejection says which primitive refused, by name, and what to do next (when to retry, which
limit was hit). All of them derive from :class:`ResilienceError`, itself a
:class:`hrkernel.errors.HrkernelError`.
"""

from __future__ import annotations

from hrkernel.errors import HrkernelError


class ResilienceError(HrkernelError):
    """Base class of every error raised by ``hrkernel.resilience``."""


class CircuitOpenError(ResilienceError):
    """A circuit breaker rejected the call without running it.

    ``name`` is the breaker's name, ``next_attempt_at`` the breaker clock's reading at which it
    will admit a trial call again, and ``retry_after`` the seconds until then (0 when the breaker
    is half-open and only its trial slots are taken). :class:`~hrkernel.resilience.RetryPolicy`
    honours ``retry_after``.
    """

    def __init__(self, name: str, next_attempt_at: float, retry_after: float, state: str) -> None:
        self.name = name
        self.next_attempt_at = next_attempt_at
        self.retry_after = max(0.0, retry_after)
        self.state = state
        if state == "half_open":
            detail = "half-open and all its trial slots are taken"
        else:
            detail = f"open; next trial call in {self.retry_after:.3f}s"
        super().__init__(f"circuit breaker {name!r} rejected the call: {detail}")


class BulkheadFullError(ResilienceError):
    """A bulkhead's concurrency slots and wait queue were all taken (or the wait timed out)."""

    def __init__(self, name: str, max_concurrent: int, max_queue: int, timed_out: bool = False) -> None:
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.timed_out = timed_out
        why = "waited too long in its queue" if timed_out else "all slots and queue places are taken"
        super().__init__(
            f"bulkhead {name!r} rejected the call: {why} "
            f"(max_concurrent={max_concurrent}, max_queue={max_queue})"
        )


class RateLimitExceeded(ResilienceError):
    """A rate limiter could not grant the weight now (``try_acquire``) or within the timeout.

    ``limit`` names the limit that refused; ``retry_after`` is the seconds until it would grant.
    """

    def __init__(self, limiter: str, limit: str, weight: float, retry_after: float) -> None:
        self.limiter = limiter
        self.limit = limit
        self.weight = weight
        self.retry_after = max(0.0, retry_after)
        super().__init__(
            f"rate limiter {limiter!r}: limit {limit!r} cannot grant weight {weight} "
            f"for another {self.retry_after:.3f}s"
        )


class PoolError(ResilienceError):
    """Base class of connection-pool errors."""


class PoolTimeoutError(PoolError):
    """No connection became available within ``connection_timeout``."""

    def __init__(self, name: str, timeout: float, reason: str) -> None:
        self.name = name
        self.timeout = timeout
        super().__init__(f"connection pool {name!r}: no connection within {timeout}s ({reason})")


class PoolExhaustedError(PoolError):
    """Every connection is busy and the wait queue is full: rejected at once."""

    def __init__(self, name: str, max_connections: int, max_queue: int) -> None:
        self.name = name
        super().__init__(
            f"connection pool {name!r} is exhausted: {max_connections} connection(s) busy and "
            f"{max_queue} caller(s) already waiting"
        )


class PoolClosedError(PoolError):
    """The pool was closed; no more connections are handed out."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"connection pool {name!r} is closed")
