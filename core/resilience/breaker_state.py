"""The breaker's state machine: its states, counters and triggers (closed, open, half-open).

:class:`BreakerCore` records each call's outcome and moves between states; the ways a call goes
through a breaker (``call``, ``async with``, the decorator) are in
:mod:`hrkernel.resilience.breaker`, whose docstring states the contract.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Literal

from hrkernel.resilience._log import get_logger
from hrkernel.resilience.breaker_config import BreakerConfig
from hrkernel.resilience.breaker_window import TimeWindow
from hrkernel.resilience.clock import Clock, monotonic
from hrkernel.resilience.errors import CircuitOpenError
from hrkernel.resilience.events import BreakerState, BreakerStateChanged, StateListener

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "BreakerCore"]

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN

_log = get_logger("hrkernel.resilience.breaker")


class BreakerCore:
    """A breaker's options, state and counters, and the transitions between its states."""

    # The options, copied from the config onto the breaker: the call path reads plain attributes.
    failure_threshold: int | None
    reset_timeout: float
    half_open_max_requests: int
    success_threshold: int
    window_type: Literal["count", "time"]
    window_size: float
    minimum_calls: int
    failure_rate_threshold: float | None
    slow_call_duration: float | None
    slow_call_rate_threshold: float
    record_exceptions: tuple[type[BaseException], ...]
    ignore_exceptions: tuple[type[BaseException], ...]
    is_failure: Callable[[BaseException], bool] | None
    fallback: Any
    fallback_on_failure: bool

    def __init__(
        self,
        name: str = "breaker",
        config: BreakerConfig | None = None,
        *,
        clock: Clock = monotonic,
        listeners: Iterable[StateListener] = (),
        **options: Any,
    ) -> None:
        """``config`` holds the thresholds (:class:`BreakerConfig`); keyword ``options`` are its
        fields one by one and override it, so the design documents' constructor
        ``CircuitBreaker(name=, failure_threshold=, reset_timeout=, half_open_max_requests=,
        success_threshold=)`` works as written. An unknown option is a ``TypeError``; a value out
        of range a ``ValueError`` naming the breaker."""
        cfg = dataclasses.replace(config or BreakerConfig(), **options)
        cfg.validate(f"CircuitBreaker({name!r})")
        self.name = name
        self.breaker_config = cfg
        for field in dataclasses.fields(cfg):
            setattr(self, field.name, getattr(cfg, field.name))
        self.reset_timeout = float(cfg.reset_timeout)
        self.record_exceptions = tuple(cfg.record_exceptions)
        self.ignore_exceptions = tuple(cfg.ignore_exceptions)
        self.clock = clock
        self._listeners: list[StateListener] = list(listeners)
        latency_sample_every = self._sample_every = cfg.latency_sample_every
        window_type, window_size = cfg.window_type, cfg.window_size
        # Time reads on every call only when a time window or slow-call detection needs them.
        self._always_timed = window_type == "time" or cfg.slow_call_duration is not None

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
        self._time_window = TimeWindow(float(window_size)) if window_type == "time" else None
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

