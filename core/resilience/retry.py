"""Retry with exponential backoff and jitter, an overall deadline and a retry budget (public API).

Contract:

* A call is retried only when it raised an ``Exception`` that is *retryable*: an instance of
  ``retry_on`` (default ``Exception``), not of ``dont_retry_on``, and accepted by ``retryable``
  (a predicate) when one is given. Cancellation is never retried, never delayed.
* Attempt ``k`` (``k = 1`` after the first failure) waits ``min(max_delay, initial_delay *
  multiplier ** (k - 1))`` scaled by the jitter: ``"full"`` (default) draws uniformly from
  ``[0, that]``; ``"decorrelated"`` draws from ``[initial_delay, 3 * previous delay]`` capped at
  ``max_delay``; ``"none"`` uses it as is.
* An exception with a numeric ``retry_after`` attribute (seconds; a server's Retry-After, a
  breaker's :class:`CircuitOpenError`) waits at least that long.
* ``max_attempts`` counts every attempt, the first one included. ``deadline`` (seconds) bounds the
  whole call, measured from the first attempt: a retry whose wait would end past the deadline is
  not made.
* A :class:`RetryBudget` shared by many calls lets retries be at most ``ratio`` of the calls seen
  in its window (plus ``min_retries`` per window), so retries cannot multiply an outage.
* When the policy gives up, the caller gets the *last* exception itself (with a note saying why
  the policy stopped), so ``except ExchangeTimeout`` keeps working around a retried call.

The no-failure path costs one extra coroutine frame and, when a budget is attached, one counter
increment; the clock is read up front only when a deadline is set.
"""

from __future__ import annotations

import functools
import inspect
import random as _random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, TypeVar

import anyio

from hrkernel.resilience._log import get_logger
from hrkernel.resilience.clock import Clock, Sleep, monotonic

T = TypeVar("T")
_log = get_logger("hrkernel.resilience.retry")


class RetryBudget:
    """Allows retries up to ``ratio`` of the calls seen over ``window`` seconds, plus ``min_retries``.

    One budget is meant to be shared by every policy guarding the same service. The window turns
    over lazily, when a retry asks for budget; calls counted since the previous turn-over are
    attributed to the current window (after a long quiet period this errs toward allowing retries;
    during an outage the window turns over with every failure, so it is exact where it matters).
    """

    __slots__ = ("ratio", "window", "min_retries", "clock", "_calls", "_retries",
                 "_prev_calls", "_prev_retries", "_window_start", "denied")

    def __init__(self, ratio: float = 0.2, window: float = 10.0, min_retries: int = 3,
                 clock: Clock = monotonic) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"RetryBudget: ratio is a fraction in [0, 1], got {ratio!r}")
        if window <= 0:
            raise ValueError(f"RetryBudget: window must be > 0 seconds, got {window!r}")
        if min_retries < 0:
            raise ValueError(f"RetryBudget: min_retries must be >= 0, got {min_retries!r}")
        self.ratio = ratio
        self.window = window
        self.min_retries = min_retries
        self.clock = clock
        self._calls = 0
        self._retries = 0
        self._prev_calls = 0
        self._prev_retries = 0
        self._window_start = clock()
        self.denied = 0

    def record_call(self) -> None:
        self._calls += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is spent."""
        now = self.clock()
        elapsed = now - self._window_start
        if elapsed >= self.window:
            # Calls counted since the last turn-over stay counted (their times are unknown);
            # retries older than two windows are forgotten.
            self._prev_calls = self._calls
            self._prev_retries = self._retries if elapsed < 2 * self.window else 0
            self._calls = self._retries = 0
            self._window_start = now
        allowed = self.ratio * (self._calls + self._prev_calls) + self.min_retries
        if self._retries + self._prev_retries + 1 > allowed:
            self.denied += 1
            return False
        self._retries += 1
        return True


class RetryPolicy:
    """A retry policy; see the module docstring for the contract.

    Use ``await policy.call(fn, *args)``, ``@policy`` on an async or sync function, or
    ``policy.call_sync(fn, *args)``. One policy object may be shared by any number of tasks.
    """

    def __init__(
        self,
        name: str = "retry",
        *,
        max_attempts: int = 3,
        initial_delay: float = 0.1,
        max_delay: float = 10.0,
        multiplier: float = 2.0,
        jitter: Literal["full", "decorrelated", "none"] = "full",
        deadline: float | None = None,
        retry_on: Iterable[type[BaseException]] = (Exception,),
        dont_retry_on: Iterable[type[BaseException]] = (),
        retryable: Callable[[BaseException], bool] | None = None,
        honour_retry_after: bool = True,
        budget: RetryBudget | None = None,
        sleep: Sleep | None = None,
        sleep_sync: Callable[[float], None] = time.sleep,
        clock: Clock = monotonic,
        random: Callable[[], float] = _random.random,
    ) -> None:
        where = f"RetryPolicy({name!r})"
        if max_attempts < 1:
            raise ValueError(f"{where}: max_attempts must be >= 1, got {max_attempts}")
        if initial_delay < 0 or max_delay < 0:
            raise ValueError(f"{where}: delays must be >= 0 seconds")
        if multiplier < 1:
            raise ValueError(f"{where}: multiplier must be >= 1, got {multiplier}")
        if jitter not in ("full", "decorrelated", "none"):
            raise ValueError(f"{where}: jitter must be 'full', 'decorrelated' or 'none', got {jitter!r}")
        if deadline is not None and deadline <= 0:
            raise ValueError(f"{where}: deadline must be > 0 seconds, got {deadline}")
        self.name = name
        self.max_attempts = max_attempts
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.multiplier = multiplier
        self.jitter = jitter
        self.deadline = deadline
        self.retry_on = tuple(retry_on)
        self.dont_retry_on = tuple(dont_retry_on)
        self.retryable = retryable
        self.honour_retry_after = honour_retry_after
        self.budget = budget
        self.sleep: Sleep = sleep if sleep is not None else anyio.sleep
        self.sleep_sync = sleep_sync
        self.clock = clock
        self.random = random
        # Counters (failure paths only, so the happy path stays cheap).
        self.retries = 0
        self.gave_up = 0

    # ------------------------------------------------------------------ public surface

    async def call(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        budget = self.budget
        if budget is not None:
            budget._calls += 1
        start = self.clock() if self.deadline is not None else 0.0
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            return await self._retry_async(fn, args, kwargs, exc, start)

    execute = call

    def call_sync(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self.budget is not None:
            self.budget._calls += 1
        start = self.clock() if self.deadline is not None else 0.0
        attempt = 1
        delay = self.initial_delay
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                delay = self._next_delay(exc, attempt, delay, start)
                self.sleep_sync(delay)
                attempt += 1

    def __call__(self, fn: Callable[..., Any]) -> Any:
        """Decorate an async or sync function so every call is retried by this policy."""
        policy = self
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                budget = policy.budget
                if budget is not None:
                    budget._calls += 1
                start = policy.clock() if policy.deadline is not None else 0.0
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    return await policy._retry_async(fn, args, kwargs, exc, start)

            async_wrapper.retry_policy = policy  # type: ignore[attr-defined]
            return async_wrapper

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            return policy.call_sync(fn, *args, **kwargs)

        sync_wrapper.retry_policy = policy  # type: ignore[attr-defined]
        return sync_wrapper

    def is_retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, Exception):
            return False
        if not isinstance(exc, self.retry_on) or isinstance(exc, self.dont_retry_on):
            return False
        return self.retryable is None or bool(self.retryable(exc))

    def backoff(self, attempt: int, previous: float) -> float:
        """The wait before retry number ``attempt`` (1-based), before Retry-After and deadline."""
        if self.jitter == "decorrelated":
            low = self.initial_delay
            high = max(low, previous * 3)
            return min(self.max_delay, low + (high - low) * self.random())
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return base * self.random() if self.jitter == "full" else base

    # ------------------------------------------------------------------ internals

    async def _retry_async(self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...],
                           kwargs: dict[str, Any], exc: Exception, start: float) -> T:
        attempt = 1
        delay = self.initial_delay
        while True:
            delay = self._next_delay(exc, attempt, delay, start)
            await self.sleep(delay)
            attempt += 1
            try:
                return await fn(*args, **kwargs)
            except Exception as next_exc:
                exc = next_exc

    def _next_delay(self, exc: Exception, attempt: int, previous: float, start: float) -> float:
        """The wait before the next attempt, or re-raise ``exc`` when the policy gives up."""
        if not self.is_retryable(exc):
            raise exc
        if attempt >= self.max_attempts:
            self._give_up(exc, f"{attempt} attempt(s) made, max_attempts={self.max_attempts}")
        delay = self.backoff(attempt, previous)
        if self.honour_retry_after:
            retry_after = getattr(exc, "retry_after", None)
            if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
                delay = max(delay, float(retry_after))
        if self.deadline is not None:
            remaining = self.deadline - (self.clock() - start)
            if delay >= remaining:
                self._give_up(exc, f"the next attempt (in {delay:.3f}s) would pass the "
                                   f"{self.deadline}s deadline")
        if self.budget is not None and not self.budget.try_spend():
            self._give_up(exc, "the retry budget is spent")
        self.retries += 1
        _log.debug("retrying", policy=self.name, attempt=attempt + 1, delay=round(delay, 4),
                   error=type(exc).__name__)
        return delay

    def _give_up(self, exc: Exception, why: str) -> None:
        self.gave_up += 1
        exc.add_note(f"retry policy {self.name!r} gave up: {why}")
        raise exc


def retry(fn: Any = None, /, **options: Any) -> Any:
    """Decorator form: ``@retry`` or ``@retry(max_attempts=5, deadline=10.0)``."""
    policy = RetryPolicy(**options)
    return policy(fn) if fn is not None else policy


__all__ = ["RetryBudget", "RetryPolicy", "retry"]
