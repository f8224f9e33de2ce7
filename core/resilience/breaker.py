"""Circuit breaker: closed / open / half-open, with consecutive-failure, failure-rate and
slow-call triggers, bounded half-open probes and neutral cancellation (public API).

Contract in short (resilience4j's model, see the README section "Resilience primitives"):

* **closed**: calls run. After each recorded *failure* the breaker checks its triggers and opens
  when ``failure_threshold`` consecutive failures were seen, or when the window (the last
  ``window_size`` calls, or the last ``window_size`` seconds with ``window_type="time"``) holds at
  least ``minimum_calls`` calls and its failure rate is ``>= failure_rate_threshold``, or its
  slow-call rate is ``>= slow_call_rate_threshold`` (a call is slow when it took longer than
  ``slow_call_duration``). A success never opens the breaker.
* **open**: calls are rejected with :class:`CircuitOpenError` (or get the fallback) until
  ``reset_timeout`` has passed; then the breaker goes half-open.
* **half-open**: at most ``half_open_max_requests`` trial calls run *at once*; others are
  rejected. ``success_threshold`` successful trials close it (with a fresh window); any failure
  (or slow trial) reopens it for another ``reset_timeout``.
* Which exceptions are failures: instances of ``record_exceptions`` (default ``Exception``) that
  are not instances of ``ignore_exceptions`` and for which ``is_failure(exc)`` (if given) is true.
  Ignored exceptions are neither failures nor successes; they propagate unchanged.
* Cancellation of the caller (and any ``BaseException`` that is not an ``Exception``) is neutral:
  not a failure, not a success, and a half-open trial slot it held is released.
* Outcomes of calls that were admitted in an earlier state (e.g. a slow call admitted while closed
  that fails after the breaker opened) are counted in the metrics but do not move the state.

The closed-state path is kept cheap: no locks, no allocation, no clock reads unless a time-based
window or slow-call detection is configured; latency is measured on every
``latency_sample_every``-th call only. Breakers are not thread-safe beyond what the GIL gives;
use one per event loop.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from hrkernel.resilience._log import get_logger
from hrkernel.resilience.breaker_config import MISSING, BreakerConfig
from hrkernel.resilience.breaker_state import CLOSED, HALF_OPEN, OPEN, BreakerCore
from hrkernel.resilience.errors import CircuitOpenError
from hrkernel.resilience.events import (
    BreakerMetrics,
    BreakerState,
    LatencyStats,
    StateListener,
)

P = ParamSpec("P")
T = TypeVar("T")

_MISSING: Any = MISSING
_log = get_logger("hrkernel.resilience.breaker")

# Per-task stack of ``async with breaker:`` entries: (breaker, half-open generation, start, prev).
_ENTRIES: contextvars.ContextVar[tuple[Any, int, float, Any] | None] = contextvars.ContextVar(
    "hrkernel_breaker_entries", default=None
)


class CircuitBreaker(BreakerCore):
    """A named circuit breaker. See the module docstring for the full contract.

    Use it as ``await breaker.call(fn, *args)`` (``breaker.execute`` is the same), as
    ``async with breaker:``, as a decorator (``@breaker`` or :func:`circuit_breaker`), or for sync
    code with :meth:`call_sync`.

    ``fallback``: a value, or a callable receiving the exception (it may be async), used instead of
    raising when the breaker rejects a call; with ``fallback_on_failure=True`` also when a call
    fails with a recorded exception.
    """

    # ------------------------------------------------------------------ public surface

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose reset timeout passed reports half-open."""
        if self._state is OPEN and self.clock() >= self._open_until:
            return HALF_OPEN
        return self._state

    def admits(self) -> bool:
        """Whether a call made now would be let through: closed, or half-open with a trial slot
        free. A hint for callers that spend something before the call (a rate-limit slot):
        another caller may still take the last trial slot first."""
        state = self.state
        if state is CLOSED:
            return True
        if state is OPEN:
            return False
        return self._state is OPEN or self._half_open_in_flight < self.half_open_max_requests

    @property
    def next_attempt_at(self) -> float:
        """Clock reading at which an open breaker admits trial calls again."""
        return self._open_until

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener`` with a :class:`BreakerStateChanged` on every state change."""
        self._listeners.append(listener)

    def remove_listener(self, listener: StateListener) -> None:
        self._listeners.remove(listener)

    async def call(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Run ``await fn(*args, **kwargs)`` under the breaker."""
        if self._fast > 0:
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                self._closed_exception(exc)
                if self.fallback_on_failure and self._is_recorded(exc):
                    return await self._fallback_value(exc)
                raise
            self._fast -= 1
            return result
        return await self._call_slow(fn, args, kwargs)

    execute = call

    def call_sync(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` (a plain function) under the breaker."""
        if self._fast > 0:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._closed_exception(exc)
                if self.fallback_on_failure and self._is_recorded(exc):
                    return self._fallback_value_sync(exc)
                raise
            self._fast -= 1
            return result
        try:
            generation, start = self._admit()
        except CircuitOpenError as exc:
            if self.fallback is _MISSING:
                raise
            return self._fallback_value_sync(exc)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._after_exception(generation, start, exc)
            if self.fallback_on_failure and self._is_recorded(exc):
                return self._fallback_value_sync(exc)
            raise
        self._after_success(generation, start)
        return result

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorate a sync or async function so every call goes through this breaker."""
        return decorate_with(self, fn)

    async def __aenter__(self) -> CircuitBreaker:
        if self._fast > 0:
            # Fast entries leave no trace: __aexit__ treats "no entry of mine on this task's
            # stack" as a fast entry. Nesting one breaker inside itself in the closed state can
            # only misattribute a latency sample; half-open entries are never fast.
            return self
        generation, start = self._admit()  # raises CircuitOpenError; no fallback here
        _ENTRIES.set((self, generation, start, _ENTRIES.get()))
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        entry = _ENTRIES.get()
        if entry is None or entry[0] is not self:
            if exc is None:
                self._fast -= 1
            else:
                self._closed_exception(exc)
            return
        _ENTRIES.set(entry[3])
        if exc is None:
            self._after_success(entry[1], entry[2])
        else:
            self._after_exception(entry[1], entry[2], exc)

    def reset(self, reason: str = "manual reset") -> None:
        """Close the breaker now with a fresh window (e.g. an operator's "reset" button)."""
        self._transition(CLOSED, reason, self.clock())

    def force_open(self, until: float | None = None, reason: str = "forced open") -> None:
        """Open the breaker now, until the clock reading ``until`` (default: now + reset_timeout).

        Opening an already open breaker only ever extends its open period.
        """
        now = self.clock()
        until = now + self.reset_timeout if until is None else until
        if self._state is OPEN:
            self._open_until = max(self._open_until, until)
            return
        self._transition(OPEN, reason, now, open_until=until)

    def metrics(self) -> BreakerMetrics:
        now = self.clock()
        calls, failures, _slow = self._window_totals(now)
        in_state = dict(self._time_in_state)
        in_state[self._state.value] += now - self._state_since
        lat_mean = self._lat_sum / self._lat_count if self._lat_count else 0.0
        return BreakerMetrics(
            name=self.name,
            state=self.state,
            calls=self._seq,
            successes=self._seq - self._failures,
            failures=self._failures,
            slow_calls=self._slow_calls,
            ignored=self._ignored,
            cancelled=self._cancelled,
            rejected=self._rejected,
            failure_rate=failures / calls if calls else 0.0,
            window_calls=calls,
            time_in_state=in_state,
            latency=LatencyStats(count=self._lat_count, mean=lat_mean, max=self._lat_max),
            state_changes=self._state_changes,
        )

    def reconfigure(self, **options: Any) -> None:
        """Apply new thresholds (the keys of :meth:`config`) in place, e.g. from hr.toml.

        The state is kept; the window and the consecutive-failure count start afresh. Functions
        already decorated with this breaker see the new options at once.
        """
        unknown = set(options) - set(self.config())
        if unknown:
            raise TypeError(f"breaker {self.name!r}: cannot reconfigure {sorted(unknown)}")
        template = CircuitBreaker(self.name, clock=self.clock, latency_sample_every=self._sample_every,
                                  **{**self.config(), **options})  # validates
        for key in self.config():
            setattr(self, key, getattr(template, key))
        self.breaker_config = template.breaker_config
        self._always_timed = template._always_timed
        self._time_window = template._time_window
        self._window_start = self._seq
        self._fail_seqs.clear()
        self._slow_seqs.clear()
        self._consecutive = 0
        if self._state is CLOSED:
            self._set_fast(0 if self._always_timed else self._sample_every - 1)

    def config(self) -> dict[str, Any]:
        """The constructor options (for the registry's conflict check and the dashboard)."""
        return {
            "failure_threshold": self.failure_threshold,
            "reset_timeout": self.reset_timeout,
            "half_open_max_requests": self.half_open_max_requests,
            "success_threshold": self.success_threshold,
            "window_type": self.window_type,
            "window_size": self.window_size,
            "minimum_calls": self.minimum_calls,
            "failure_rate_threshold": self.failure_rate_threshold,
            "slow_call_duration": self.slow_call_duration,
            "slow_call_rate_threshold": self.slow_call_rate_threshold,
        }

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._state.value}>"

    async def _call_slow(self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> T:
        try:
            generation, start = self._admit()
        except CircuitOpenError as exc:
            if self.fallback is _MISSING:
                raise
            return await self._fallback_value(exc)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._after_exception(generation, start, exc)
            if self.fallback_on_failure and self._is_recorded(exc):
                return await self._fallback_value(exc)
            raise
        self._after_success(generation, start)
        return result

    async def _fallback_value(self, exc: BaseException) -> Any:
        value = self._fallback_value_sync(exc)
        if inspect.isawaitable(value):
            value = await value
        return value

    def _fallback_value_sync(self, exc: BaseException) -> Any:
        fallback = self.fallback
        if fallback is _MISSING:
            raise exc
        return fallback(exc) if callable(fallback) else fallback


def decorate_with(breaker: CircuitBreaker, fn: Callable[..., Any]) -> Any:
    if inspect.iscoroutinefunction(fn):
        # The closed fast path is inlined here so a decorated call costs one coroutine, not two.
        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if breaker._fast > 0:
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    breaker._closed_exception(exc)
                    if breaker.fallback_on_failure and breaker._is_recorded(exc):
                        return await breaker._fallback_value(exc)
                    raise
                breaker._fast -= 1
                return result
            return await breaker._call_slow(fn, args, kwargs)

        async_wrapper.breaker = breaker  # type: ignore[attr-defined]
        return async_wrapper

    @functools.wraps(fn)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        if breaker._fast > 0:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                breaker._closed_exception(exc)
                if breaker.fallback_on_failure and breaker._is_recorded(exc):
                    return breaker._fallback_value_sync(exc)
                raise
            breaker._fast -= 1
            return result
        return breaker.call_sync(fn, *args, **kwargs)

    sync_wrapper.breaker = breaker  # type: ignore[attr-defined]
    return sync_wrapper


__all__ = ["BreakerConfig", "CircuitBreaker"]
