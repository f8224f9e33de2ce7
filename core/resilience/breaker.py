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
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, ParamSpec, TypeVar, overload

from hrkernel.resilience._log import get_logger
from hrkernel.resilience.clock import Clock, monotonic
from hrkernel.resilience.errors import CircuitOpenError
from hrkernel.resilience.events import (
    BreakerMetrics,
    BreakerState,
    BreakerStateChanged,
    LatencyStats,
    StateListener,
)

P = ParamSpec("P")
T = TypeVar("T")

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN

_MISSING: Any = object()
_log = get_logger("hrkernel.resilience.breaker")

# Per-task stack of ``async with breaker:`` entries: (breaker, half-open generation, start, prev).
_ENTRIES: contextvars.ContextVar[tuple[Any, int, float, Any] | None] = contextvars.ContextVar(
    "hrkernel_breaker_entries", default=None
)


_NEVER = -(2**62)  # bucket epoch of an empty bucket: older than any window


class _TimeWindow:
    """Per-bucket counts of calls, failures and slow calls over the last ``size`` seconds."""

    __slots__ = ("width", "n", "epochs", "calls", "failures", "slow")

    def __init__(self, size: float, buckets: int = 10) -> None:
        self.n = buckets
        self.width = size / buckets
        self.epochs = [_NEVER] * buckets
        self.calls = [0] * buckets
        self.failures = [0] * buckets
        self.slow = [0] * buckets

    def record(self, now: float, failed: bool, slow: bool) -> None:
        epoch = int(now / self.width)
        i = epoch % self.n
        if self.epochs[i] != epoch:
            self.epochs[i] = epoch
            self.calls[i] = self.failures[i] = self.slow[i] = 0
        self.calls[i] += 1
        if failed:
            self.failures[i] += 1
        if slow:
            self.slow[i] += 1

    def totals(self, now: float) -> tuple[int, int, int]:
        oldest = int(now / self.width) - self.n + 1
        calls = failures = slow = 0
        for i in range(self.n):
            if self.epochs[i] >= oldest:
                calls += self.calls[i]
                failures += self.failures[i]
                slow += self.slow[i]
        return calls, failures, slow

    def reset(self) -> None:
        self.epochs = [_NEVER] * self.n


class CircuitBreaker:
    """A named circuit breaker. See the module docstring for the full contract.

    Use it as ``await breaker.call(fn, *args)`` (``breaker.execute`` is the same), as
    ``async with breaker:``, as a decorator (``@breaker`` or :func:`circuit_breaker`), or for sync
    code with :meth:`call_sync`.

    ``fallback``: a value, or a callable receiving the exception (it may be async), used instead of
    raising when the breaker rejects a call; with ``fallback_on_failure=True`` also when a call
    fails with a recorded exception.
    """

    def __init__(
        self,
        name: str = "breaker",
        *,
        failure_threshold: int | None = 5,
        reset_timeout: float = 30.0,
        half_open_max_requests: int = 2,
        success_threshold: int = 3,
        window_type: Literal["count", "time"] = "count",
        window_size: float = 100,
        minimum_calls: int = 10,
        failure_rate_threshold: float | None = None,
        slow_call_duration: float | None = None,
        slow_call_rate_threshold: float = 1.0,
        record_exceptions: Iterable[type[BaseException]] = (Exception,),
        ignore_exceptions: Iterable[type[BaseException]] = (),
        is_failure: Callable[[BaseException], bool] | None = None,
        fallback: Any = _MISSING,
        fallback_on_failure: bool = False,
        clock: Clock = monotonic,
        listeners: Iterable[StateListener] = (),
        latency_sample_every: int = 64,
    ) -> None:
        where = f"CircuitBreaker({name!r})"
        if failure_threshold is not None and failure_threshold < 1:
            raise ValueError(f"{where}: failure_threshold must be >= 1 or None, got {failure_threshold}")
        if reset_timeout < 0:
            raise ValueError(f"{where}: reset_timeout must be >= 0 seconds, got {reset_timeout}")
        if half_open_max_requests < 1:
            raise ValueError(f"{where}: half_open_max_requests must be >= 1, got {half_open_max_requests}")
        if success_threshold < 1:
            raise ValueError(f"{where}: success_threshold must be >= 1, got {success_threshold}")
        if window_type not in ("count", "time"):
            raise ValueError(f"{where}: window_type must be 'count' or 'time', got {window_type!r}")
        if window_size <= 0 or (window_type == "count" and int(window_size) != window_size):
            raise ValueError(
                f"{where}: window_size must be a positive number of calls (count window) "
                f"or seconds (time window), got {window_size!r}"
            )
        if minimum_calls < 1:
            raise ValueError(f"{where}: minimum_calls must be >= 1, got {minimum_calls}")
        for label, rate in (("failure_rate_threshold", failure_rate_threshold),
                            ("slow_call_rate_threshold", slow_call_rate_threshold)):
            if rate is not None and not 0.0 < rate <= 1.0:
                raise ValueError(f"{where}: {label} is a fraction in (0, 1], got {rate!r}")
        if slow_call_duration is not None and slow_call_duration <= 0:
            raise ValueError(f"{where}: slow_call_duration must be > 0 seconds, got {slow_call_duration}")
        if latency_sample_every < 1:
            raise ValueError(f"{where}: latency_sample_every must be >= 1, got {latency_sample_every}")

        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = float(reset_timeout)
        self.half_open_max_requests = half_open_max_requests
        self.success_threshold = success_threshold
        self.window_type = window_type
        self.window_size = window_size
        self.minimum_calls = minimum_calls
        self.failure_rate_threshold = failure_rate_threshold
        self.slow_call_duration = slow_call_duration
        self.slow_call_rate_threshold = slow_call_rate_threshold
        self.record_exceptions = tuple(record_exceptions)
        self.ignore_exceptions = tuple(ignore_exceptions)
        self.is_failure = is_failure
        self.fallback = fallback
        self.fallback_on_failure = fallback_on_failure
        self.clock = clock
        self._listeners: list[StateListener] = list(listeners)
        self._sample_every = latency_sample_every
        # Time reads on every call only when a time window or slow-call detection needs them.
        self._always_timed = window_type == "time" or slow_call_duration is not None

        self._state = CLOSED
        self._generation = 0
        # Countdown of closed-state calls that take the fast path; 0 sends the next call to the
        # slow path (state not closed, timing needed, or a latency sample is due).
        # Fast-path successes decrement ``_fast`` (and are counted that way: see ``_seq``).
        self._seq_base = 0
        self._reload = 0
        self._fast = 0
        self._set_fast(0 if self._always_timed else latency_sample_every - 1)
        self._window_start = 0  # seq at which the count window was last reset
        self._fail_seqs: deque[int] = deque()
        self._slow_seqs: deque[int] = deque()
        self._time_window = _TimeWindow(float(window_size)) if window_type == "time" else None
        self._consecutive = 0
        self._last_fail_seq = -1
        self._open_until = 0.0
        self._half_open_in_flight = 0
        self._half_open_successes = 0
        # Metrics.
        self._failures = 0
        self._slow_calls = 0
        self._ignored = 0
        self._cancelled = 0
        self._rejected = 0
        self._lat_count = 0
        self._lat_sum = 0.0
        self._lat_max = 0.0
        self._state_changes = 0
        self._state_since = clock()
        self._time_in_state = {s.value: 0.0 for s in BreakerState}

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
        return _decorate(self, fn)

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

    # ------------------------------------------------------------------ internals

    @property
    def _seq(self) -> int:
        """Recorded outcomes so far (the ``calls`` metric; sequence number of the last one).

        Fast-path successes only decrement ``_fast`` (one attribute update per call instead of
        two); they are folded into ``_seq_base`` whenever ``_fast`` is reloaded.
        """
        return self._seq_base + self._reload - self._fast

    @_seq.setter
    def _seq(self, value: int) -> None:
        self._seq_base += value - self._seq

    def _set_fast(self, value: int) -> None:
        self._seq_base += self._reload - self._fast
        self._fast = self._reload = value

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

    def _admit(self) -> tuple[int, float]:
        """Admit a call on the slow path or raise CircuitOpenError.

        Returns (generation of the half-open trial it holds a slot in, or -1; start time or -1.0).
        """
        state = self._state
        if state is CLOSED:
            if self._always_timed:
                return -1, self.clock()
            self._set_fast(self._sample_every - 1)
            return -1, self.clock()  # a latency sample
        now = self.clock()
        if state is OPEN:
            if now < self._open_until:
                self._rejected += 1
                raise CircuitOpenError(self.name, self._open_until, self._open_until - now, "open")
            self._transition(HALF_OPEN, "reset timeout elapsed", now)
        if self._half_open_in_flight >= self.half_open_max_requests:
            self._rejected += 1
            raise CircuitOpenError(self.name, now, 0.0, "half_open")
        self._half_open_in_flight += 1
        return self._generation, now

    def _is_recorded(self, exc: BaseException) -> bool:
        if not isinstance(exc, Exception):
            return False
        if not isinstance(exc, self.record_exceptions) or isinstance(exc, self.ignore_exceptions):
            return False
        return self.is_failure is None or bool(self.is_failure(exc))

    def _closed_exception(self, exc: BaseException) -> None:
        """An exception from a fast-path call (admitted while closed, untimed)."""
        if not isinstance(exc, Exception):
            self._cancelled += 1
        elif not self._is_recorded(exc):
            self._ignored += 1
        else:
            self._record_closed_failure(slow=False, now=None)

    def _after_success(self, generation: int, start: float) -> None:
        now = self.clock() if start >= 0 else 0.0
        slow = False
        if start >= 0:
            elapsed = now - start
            self._lat_count += 1
            self._lat_sum += elapsed
            if elapsed > self._lat_max:
                self._lat_max = elapsed
            slow = self.slow_call_duration is not None and elapsed > self.slow_call_duration
        if generation >= 0:
            self._seq += 1
            if slow:
                self._slow_calls += 1
            self._half_open_done(generation, failed=slow, now=now,
                                 reason=f"slow trial call ({now - start:.3f}s)")
            return
        if slow:
            self._record_closed_slow_success(now)
            return
        self._seq += 1
        if self._time_window is not None and self._state is CLOSED:
            self._time_window.record(now, False, False)

    def _after_exception(self, generation: int, start: float, exc: BaseException) -> None:
        now = self.clock() if start >= 0 else 0.0
        elapsed = now - start if start >= 0 else 0.0
        if start >= 0 and isinstance(exc, Exception):
            self._lat_count += 1
            self._lat_sum += elapsed
            if elapsed > self._lat_max:
                self._lat_max = elapsed
        recorded = self._is_recorded(exc)
        if not isinstance(exc, Exception):
            self._cancelled += 1
        elif not recorded:
            self._ignored += 1
        slow = (recorded and start >= 0 and self.slow_call_duration is not None
                and elapsed > self.slow_call_duration)
        if generation >= 0:
            if recorded:
                self._seq += 1
                self._failures += 1
                if slow:
                    self._slow_calls += 1
                self._half_open_done(generation, failed=True, now=now,
                                     reason=f"trial call failed: {type(exc).__name__}")
            else:
                self._half_open_done(generation, failed=None, now=now, reason="")
            return
        if recorded:
            self._record_closed_failure(slow=slow, now=now if start >= 0 else None)

    def _half_open_done(self, generation: int, failed: bool | None, now: float, reason: str) -> None:
        """A trial call ended: failed True/False, or None when neutral (cancelled, ignored)."""
        if generation != self._generation:
            return  # the breaker moved on since this trial was admitted
        self._half_open_in_flight -= 1
        if failed is None:
            return
        if failed:
            self._transition(OPEN, reason, now if now else self.clock())
            return
        self._half_open_successes += 1
        if self._half_open_successes >= self.success_threshold:
            self._transition(CLOSED, f"{self._half_open_successes} successful trial calls",
                             now if now else self.clock())

    def _record_closed_slow_success(self, now: float) -> None:
        self._seq += 1
        self._slow_calls += 1
        if self._state is not CLOSED:
            return
        if self._time_window is not None:
            self._time_window.record(now, False, True)
        else:
            self._slow_seqs.append(self._seq)
        self._check_rates(now)

    def _record_closed_failure(self, slow: bool, now: float | None) -> None:
        self._seq += 1
        self._failures += 1
        if slow:
            self._slow_calls += 1
        if self._state is not CLOSED:
            return  # admitted before the breaker opened: metrics only
        seq = self._seq
        self._consecutive = self._consecutive + 1 if self._last_fail_seq == seq - 1 else 1
        self._last_fail_seq = seq
        if self._time_window is not None:
            if now is None:
                now = self.clock()
            self._time_window.record(now, True, slow)
        else:
            self._fail_seqs.append(seq)
            if slow:
                self._slow_seqs.append(seq)
        if self.failure_threshold is not None and self._consecutive >= self.failure_threshold:
            self._transition(OPEN, f"{self._consecutive} consecutive failures",
                             self.clock() if now is None else now)
            return
        self._check_rates(now)

    def _window_totals(self, now: float) -> tuple[int, int, int]:
        if self._time_window is not None:
            return self._time_window.totals(now)
        size = int(self.window_size)
        oldest = self._seq - size  # outcomes with seq <= oldest fell out of the window
        fails, slows = self._fail_seqs, self._slow_seqs
        while fails and fails[0] <= oldest:
            fails.popleft()
        while slows and slows[0] <= oldest:
            slows.popleft()
        return min(self._seq - self._window_start, size), len(fails), len(slows)

    def _check_rates(self, now: float | None) -> None:
        if self.failure_rate_threshold is None and self.slow_call_duration is None:
            return
        if now is None:
            now = self.clock() if self._time_window is not None else 0.0
        calls, failures, slow = self._window_totals(now)
        if calls < self.minimum_calls:
            return
        if self.failure_rate_threshold is not None and failures / calls >= self.failure_rate_threshold:
            reason = (f"failure rate {failures / calls:.2f} >= {self.failure_rate_threshold:.2f} "
                      f"over {calls} calls")
        elif self.slow_call_duration is not None and slow / calls >= self.slow_call_rate_threshold:
            reason = (f"slow-call rate {slow / calls:.2f} >= {self.slow_call_rate_threshold:.2f} "
                      f"over {calls} calls")
        else:
            return
        self._transition(OPEN, reason, now or self.clock())

    def _transition(self, new: BreakerState, reason: str, now: float,
                    open_until: float | None = None) -> None:
        old = self._state
        self._time_in_state[old.value] += now - self._state_since
        self._state_since = now
        self._state = new
        self._generation += 1
        self._state_changes += 1
        self._half_open_in_flight = 0
        self._half_open_successes = 0
        if new is OPEN:
            self._open_until = now + self.reset_timeout if open_until is None else open_until
            self._set_fast(0)
        elif new is HALF_OPEN:
            self._set_fast(0)
        else:
            self._consecutive = 0
            self._window_start = self._seq
            self._fail_seqs.clear()
            self._slow_seqs.clear()
            if self._time_window is not None:
                self._time_window.reset()
            self._set_fast(0 if self._always_timed else self._sample_every - 1)
        event = BreakerStateChanged(name=self.name, old=old, new=new, reason=reason, at=time.time())
        log = _log.warning if new is OPEN else _log.info
        log("breaker_state_changed", breaker=self.name, old=old.value, new=new.value, reason=reason)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                _log.exception("breaker_listener_failed", breaker=self.name, listener=repr(listener))

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


def _decorate(breaker: CircuitBreaker, fn: Callable[..., Any]) -> Any:
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


class BreakerRegistry:
    """Named breakers of one process: ``get_or_create`` returns the same breaker for a name.

    Listeners added to the registry receive the state changes of every breaker it holds (the
    alert manager, metrics exporter and event bus subscribe here).
    """

    def __init__(self) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}
        self._listeners: list[StateListener] = []

    def get_or_create(self, name: str, **options: Any) -> CircuitBreaker:
        """The breaker called ``name``, created with ``options`` on first use.

        Asking again with options that differ from the existing breaker's is an error (two call
        sites disagreeing about one breaker's thresholds is a bug worth hearing about).
        """
        existing = self._breakers.get(name)
        if existing is not None:
            current = existing.config()
            clash = {k: (current[k], v) for k, v in options.items() if k in current and current[k] != v}
            if clash:
                raise ValueError(
                    f"breaker {name!r} already exists with other options: "
                    + ", ".join(f"{k}={old!r} (asked {new!r})" for k, (old, new) in clash.items())
                )
            return existing
        breaker = CircuitBreaker(name, **options)
        self.add(breaker)
        return breaker

    def configure(self, name: str, **options: Any) -> CircuitBreaker:
        """Create ``name`` with ``options``, or apply them to the existing breaker in place.

        The kernel's ``[resilience.breakers]`` tables use this, so a function decorated with
        ``@circuit_breaker(name=...)`` at import time picks up the configured thresholds.
        """
        existing = self._breakers.get(name)
        if existing is None:
            return self.get_or_create(name, **options)
        existing.reconfigure(**options)
        return existing

    def add(self, breaker: CircuitBreaker) -> None:
        if breaker.name in self._breakers and self._breakers[breaker.name] is not breaker:
            raise ValueError(f"a different breaker named {breaker.name!r} is already registered")
        self._breakers[breaker.name] = breaker
        for listener in self._listeners:
            breaker.add_listener(listener)

    def get(self, name: str) -> CircuitBreaker:
        try:
            return self._breakers[name]
        except KeyError:
            known = ", ".join(sorted(self._breakers)) or "none"
            raise KeyError(f"no breaker named {name!r} (registered: {known})") from None

    def remove(self, name: str) -> None:
        self._breakers.pop(name, None)

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)
        for breaker in self._breakers.values():
            breaker.add_listener(listener)

    def __iter__(self) -> Any:
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def metrics(self) -> list[BreakerMetrics]:
        return [b.metrics() for b in self._breakers.values()]


registry = BreakerRegistry()
"""The process-wide default registry used by :func:`circuit_breaker`."""


@overload
def circuit_breaker(fn: Callable[P, T], /) -> Callable[P, T]: ...
@overload
def circuit_breaker(
    fn: None = None, /, *, name: str | None = None, registry: BreakerRegistry | None = None,
    **options: Any,
) -> Callable[[Callable[P, T]], Callable[P, T]]: ...


def circuit_breaker(fn: Any = None, /, *, name: str | None = None,
                    registry: BreakerRegistry | None = None, **options: Any) -> Any:
    """Decorator: guard a sync or async function with the named breaker of ``registry``.

    ``@circuit_breaker(name="exchange_api", failure_threshold=5, reset_timeout=30.0)``; without a
    name the function's qualified name is used. Functions decorated with the same name share one
    breaker. The breaker is reachable as ``decorated.breaker``.
    """
    reg = registry if registry is not None else globals()["registry"]

    def decorate(func: Callable[..., Any]) -> Any:
        breaker = reg.get_or_create(name or f"{func.__module__}.{func.__qualname__}", **options)
        return _decorate(breaker, func)

    return decorate(fn) if fn is not None else decorate


__all__ = ["BreakerRegistry", "CircuitBreaker", "circuit_breaker", "registry"]
