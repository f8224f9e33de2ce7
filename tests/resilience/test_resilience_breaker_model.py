"""Property tests: the breaker's state always matches a small, obviously-correct reference model."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hrkernel.resilience import BreakerState, CircuitBreaker, CircuitOpenError, ManualClock


class Boom(Exception):
    pass


class Invalid(Exception):
    """Stands for an exchange's "invalid order": ignored by the breaker."""


@dataclass
class Model:
    failure_threshold: int | None
    reset_timeout: float
    success_threshold: int
    window_type: str
    window_size: float
    minimum_calls: int
    failure_rate_threshold: float | None
    slow_call_duration: float | None
    slow_call_rate_threshold: float
    state: str = "closed"
    consecutive: int = 0
    window: list[tuple[float, bool, bool]] = field(default_factory=list)  # (time, failed, slow)
    open_until: float = 0.0
    trial_successes: int = 0

    def _open(self, now: float) -> None:
        self.state, self.open_until = "open", now + self.reset_timeout

    def _close(self) -> None:
        self.state, self.consecutive, self.window, self.trial_successes = "closed", 0, [], 0

    def _in_window(self, now: float) -> list[tuple[float, bool, bool]]:
        if self.window_type == "count":
            return self.window[-int(self.window_size):]
        width = self.window_size / 10
        oldest = int(now / width) - 9
        return [w for w in self.window if int(w[0] / width) >= oldest]

    def _check_rates(self, now: float) -> None:
        window = self._in_window(now)
        calls = len(window)
        if calls < self.minimum_calls:
            return
        fails = sum(1 for w in window if w[1])
        slow = sum(1 for w in window if w[2])
        if self.failure_rate_threshold is not None and fails / calls >= self.failure_rate_threshold:
            self._open(now)
        elif self.slow_call_duration is not None and slow / calls >= self.slow_call_rate_threshold:
            self._open(now)

    def admit(self, now: float) -> bool:
        if self.state == "open":
            if now < self.open_until:
                return False
            self.state, self.trial_successes = "half_open", 0
        return True

    def outcome(self, kind: str, now: float, duration: float) -> None:
        slow = self.slow_call_duration is not None and duration > self.slow_call_duration
        if kind == "ignored":
            return
        failed = kind == "fail"
        if self.state == "half_open":
            if failed or slow:
                self._open(now)
            else:
                self.trial_successes += 1
                if self.trial_successes >= self.success_threshold:
                    self._close()
            return
        self.window.append((now, failed, slow))
        if not failed:
            self.consecutive = 0
            if slow:
                self._check_rates(now)
            return
        self.consecutive += 1
        if self.failure_threshold is not None and self.consecutive >= self.failure_threshold:
            self._open(now)
            return
        self._check_rates(now)


configs = st.fixed_dictionaries(
    {
        "failure_threshold": st.one_of(st.none(), st.integers(1, 6)),
        "reset_timeout": st.sampled_from([1.0, 5.0, 30.0]),
        "success_threshold": st.integers(1, 4),
        "minimum_calls": st.integers(1, 8),
        "failure_rate_threshold": st.one_of(st.none(), st.sampled_from([0.25, 0.5, 0.75, 1.0])),
        "slow_call_duration": st.one_of(st.none(), st.sampled_from([0.5, 2.0])),
        "slow_call_rate_threshold": st.sampled_from([0.5, 1.0]),
    }
)
ops = st.lists(
    st.one_of(
        st.sampled_from(["ok", "fail", "ignored"]).map(lambda k: (k, 0.0)),
        st.tuples(st.sampled_from(["ok", "fail"]), st.sampled_from([0.1, 1.0, 3.0])),
        st.tuples(st.just("wait"), st.sampled_from([0.3, 1.0, 4.0, 31.0])),
    ),
    max_size=80,
)


def run_against_model(cfg: dict, window_type: str, window_size: float, steps: list) -> None:
    clock = ManualClock(start=0.0)
    breaker = CircuitBreaker(
        "model", window_type=window_type, window_size=window_size, clock=clock,
        ignore_exceptions=(Invalid,), latency_sample_every=3, **cfg,
    )
    model = Model(window_type=window_type, window_size=window_size, **cfg)

    def body(kind: str, duration: float) -> str:
        clock.advance(duration)
        if kind == "fail":
            raise Boom()
        if kind == "ignored":
            raise Invalid()
        return "ok"

    for index, (kind, duration) in enumerate(steps):
        if kind == "wait":
            clock.advance(duration)
            continue
        admitted = model.admit(clock())
        try:
            breaker.call_sync(body, kind, duration)
            ran = True
        except CircuitOpenError:
            ran = False
        except (Boom, Invalid):
            ran = True
        assert ran == admitted, f"step {index} {kind}: breaker admitted={ran}, model={admitted}"
        if admitted:
            model.outcome(kind, clock(), duration)
        expected = model.state
        if expected == "open" and clock() >= model.open_until:
            expected = "half_open"
        assert breaker.state == BreakerState(expected), f"step {index} ({kind}, {duration}) of {steps}"


@settings(max_examples=300, deadline=None)
@given(cfg=configs, size=st.integers(1, 12), steps=ops)
def test_count_window_breaker_matches_reference_model(cfg: dict, size: int, steps: list) -> None:
    run_against_model(cfg, "count", size, steps)


@settings(max_examples=300, deadline=None)
@given(cfg=configs, size=st.sampled_from([2.0, 10.0, 30.0]), steps=ops)
def test_time_window_breaker_matches_reference_model(cfg: dict, size: float, steps: list) -> None:
    run_against_model(cfg, "time", size, steps)


async def run_async_against_model(cfg: dict, steps: list, via: str) -> None:
    clock = ManualClock(start=0.0)
    breaker = CircuitBreaker("model", window_size=8, clock=clock, ignore_exceptions=(Invalid,),
                             latency_sample_every=3, **cfg)
    model = Model(window_type="count", window_size=8, **cfg)

    async def body(kind: str, duration: float) -> str:
        clock.advance(duration)
        if kind == "fail":
            raise Boom()
        if kind == "ignored":
            raise Invalid()
        return "ok"

    decorated = breaker(body)

    async def guarded(kind: str, duration: float) -> str:
        if via == "call":
            return await breaker.call(body, kind, duration)
        if via == "decorator":
            return await decorated(kind, duration)
        async with breaker:
            return await body(kind, duration)

    for index, (kind, duration) in enumerate(steps):
        if kind == "wait":
            clock.advance(duration)
            continue
        admitted = model.admit(clock())
        try:
            await guarded(kind, duration)
            ran = True
        except CircuitOpenError:
            ran = False
        except (Boom, Invalid):
            ran = True
        assert ran == admitted, f"step {index} {kind} via {via}"
        if admitted:
            model.outcome(kind, clock(), duration)
        expected = model.state
        if expected == "open" and clock() >= model.open_until:
            expected = "half_open"
        assert breaker.state == BreakerState(expected), f"step {index} ({kind}) via {via} of {steps}"


@pytest.mark.anyio
@settings(max_examples=60, deadline=None)
@given(cfg=configs, steps=ops, via=st.sampled_from(["call", "decorator", "async_with"]))
async def test_async_entry_points_match_reference_model(cfg: dict, steps: list, via: str) -> None:
    await run_async_against_model(cfg, steps, via)
