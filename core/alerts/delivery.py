"""Per-channel delivery: a bounded queue, a worker, a circuit breaker and retry (internal).

Every delivery goes through :func:`send_once`: the channel's
:class:`~hrkernel.resilience.CircuitBreaker` around a :class:`~hrkernel.resilience.RetryPolicy`
around :func:`call_channel`, the one place that talks to the channel object. A failing or hanging channel only ever holds up its own worker: the caller of
``send_alert`` and the other channels never wait on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from hrkernel.alerts.clock import Clock
from hrkernel.alerts.config import ChannelRouting
from hrkernel.alerts.types import ChannelError, Notification
from hrkernel.resilience import (
    BreakerState,
    BreakerStateChanged,
    CircuitBreaker,
    CircuitOpenError,
    RetryPolicy,
)


class Breaker:
    """The channel's :class:`hrkernel.resilience.CircuitBreaker` on the alert system's clock,
    with the few things the worker asks of it.

    Opens after ``threshold`` consecutive failed deliveries (each one a whole retry series);
    after ``reset`` seconds one probe is let through; its success closes the breaker. Only
    retryable failures count: a permanent one (bad request, refused login) says nothing about
    whether the service is up.
    """

    def __init__(self, clock: Clock, threshold: int, reset: float, name: str = "alerts") -> None:
        self.clock = clock
        self.opens = 0
        self.cb = CircuitBreaker(
            f"alert-channel:{name}",
            failure_threshold=threshold,
            reset_timeout=reset,
            half_open_max_requests=1,
            success_threshold=1,
            is_failure=lambda exc: not isinstance(exc, ChannelError) or exc.retryable,
            clock=clock.now,
            listeners=[self._changed],
        )

    def _changed(self, event: BreakerStateChanged) -> None:
        if event.new == BreakerState.OPEN:
            self.opens += 1

    @property
    def state(self) -> str:
        return self.cb.state.value

    def wait_seconds(self) -> float:
        """How long until a call is allowed (0 when closed or half-open)."""
        if self.cb.state != BreakerState.OPEN:
            return 0.0
        return max(0.0, self.cb.next_attempt_at - self.clock.now())


async def call_channel(channel: Any, notification: Notification, timeout: float) -> None:
    """The single call into a channel, under a per-attempt timeout."""
    try:
        with anyio.fail_after(timeout):
            await channel.send(notification)
    except TimeoutError:
        raise ChannelError(notification.channel, f"no answer within {timeout:g}s") from None
    except ChannelError:
        raise
    except Exception as exc:  # a third-party channel may raise anything
        raise ChannelError(notification.channel, f"{type(exc).__name__}: {exc}") from exc


def retry_policy(channel_id: str, attempts: int, delay: float) -> RetryPolicy:
    """Retry retryable failures with exponential backoff and full jitter (real time: the delays
    are short; the breaker's long waits run on the injectable clock)."""
    return RetryPolicy(
        f"alert-channel:{channel_id}",
        max_attempts=attempts,
        initial_delay=delay,
        max_delay=max(delay, delay * 2 ** (attempts - 1)),
        retryable=lambda exc: isinstance(exc, ChannelError) and exc.retryable,
    )


async def send_once(rt: ChannelRuntime, notification: Notification) -> None:
    """One delivery: the channel behind its breaker, each attempt under its retry policy."""
    await rt.breaker.cb.call(rt.retry.call, call_channel, rt.obj, notification, rt.timeout)


@dataclass
class ChannelStats:
    delivered: int = 0
    failed_attempts: int = 0
    dropped: int = 0
    """Notifications given up on because the channel said the failure was permanent."""
    overflow: int = 0
    """Notifications that did not fit into the bounded queue (recorded as failed deliveries)."""


@dataclass
class ChannelRuntime:
    """One configured channel: the object, its routing, its queue, breaker and rate budget."""

    id: str
    type: str
    obj: Any
    routing: ChannelRouting
    breaker: Breaker
    queue_size: int
    timeout: float
    retry: RetryPolicy
    stats: ChannelStats = field(default_factory=ChannelStats)
    tokens: float = math.inf
    tokens_at: float = 0.0
    pending: int = 0
    """Notifications queued or being delivered (the queue hands items straight to a waiting
    worker, so its buffer alone does not tell whether work is left)."""
    send: MemoryObjectSendStream[Notification] = field(init=False)
    receive: MemoryObjectReceiveStream[Notification] = field(init=False)

    def __post_init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[Notification](self.queue_size)
        if self.routing.max_per_minute:
            self.tokens = float(self.routing.max_per_minute)

    @property
    def queued(self) -> int:
        return self.send.statistics().current_buffer_used

    def take_token(self, now: float) -> float:
        """Spend one notification of the rate budget: 0.0 if allowed, else seconds to wait."""
        rate = self.routing.max_per_minute
        if not rate:
            return 0.0
        capacity = float(rate)
        per_second = rate / 60.0
        self.tokens = min(capacity, self.tokens + max(0.0, now - self.tokens_at) * per_second)
        self.tokens_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / per_second

    def accepts(self, source: str, level: Any) -> bool:
        r = self.routing
        if not r.enabled or level < r.min_level:
            return False
        if r.sources and source not in r.sources:
            return False
        return source not in r.exclude_sources


Recorder = Callable[[ChannelRuntime, Notification, bool, str | None], None]


async def run_worker(rt: ChannelRuntime, clock: Clock, *, delay: float, record: Recorder, log: Any) -> None:
    """Deliver the channel's queue in order; keep a notification until it is delivered.

    A retryable failure counts against the breaker; while the breaker is open the worker waits
    (on the injectable clock) for the probe time and tries the same notification again, so an
    outage loses nothing that fits into the queue.
    """
    async with rt.receive:
        async for notification in rt.receive:
            try:
                await _deliver_until_done(rt, notification, clock, delay, record, log)
            finally:
                rt.pending -= 1


async def _deliver_until_done(
    rt: ChannelRuntime, notification: Notification, clock: Clock, delay: float, record: Recorder, log: Any,
) -> None:
    while True:
        wait = rt.breaker.wait_seconds()
        if wait > 0:
            await clock.sleep(wait)
            continue
        opens_before = rt.breaker.opens
        was_closed = rt.breaker.state == "closed"
        try:
            await send_once(rt, notification)
        except CircuitOpenError:
            await anyio.sleep(0)  # half-open with its probe slot taken: look again
            continue
        except ChannelError as exc:
            rt.stats.failed_attempts += 1
            record(rt, notification, False, exc.reason)
            if not exc.retryable:
                rt.stats.dropped += 1
                log.error("alert_delivery_failed", channel=rt.id, kind=notification.kind, reason=exc.reason, permanent=True)
                return
            log.warning("alert_delivery_failed", channel=rt.id, kind=notification.kind, reason=exc.reason,
                        breaker=rt.breaker.state)
            if rt.breaker.opens > opens_before:
                log.error("alert_channel_breaker_open", channel=rt.id)
            elif rt.breaker.state == "closed":
                await anyio.sleep(delay)
            continue
        rt.stats.delivered += 1
        record(rt, notification, True, None)
        if not was_closed:
            log.info("alert_channel_breaker_closed", channel=rt.id)
        return
