"""Retry policy: backoff shape, jitter, classification, Retry-After, deadline, budget, decorators."""

from __future__ import annotations

import anyio
import pytest

from hrkernel.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    RetryBudget,
    RetryPolicy,
    retry,
)

pytestmark = pytest.mark.anyio


class Flaky(Exception):
    pass


class Fatal(Exception):
    pass


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"429, retry after {retry_after}s")
        self.retry_after = retry_after


def failing(times: int, exc: Exception | None = None):
    calls = {"n": 0}

    async def fn(value: str = "ok") -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc or Flaky(f"attempt {calls['n']}")
        return value

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def policy(clock: ManualClock, **options) -> RetryPolicy:
    options.setdefault("random", lambda: 1.0)
    return RetryPolicy("test", sleep=clock.sleep, clock=clock, **options)


async def test_exponential_backoff_until_success(clock: ManualClock) -> None:
    p = policy(clock, max_attempts=5, initial_delay=0.1, multiplier=2, max_delay=0.3, jitter="none")
    fn = failing(3)
    assert await p.call(fn, "done") == "done"
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.3])  # capped at max_delay
    assert p.retries == 3


async def test_full_jitter_draws_below_the_exponential_bound(clock: ManualClock) -> None:
    draws = iter([0.5, 0.25, 0.0])
    p = policy(clock, max_attempts=4, initial_delay=1.0, jitter="full", random=lambda: next(draws))
    await p.call(failing(3))
    assert clock.sleeps == pytest.approx([0.5, 0.5, 0.0])


async def test_decorrelated_jitter_grows_from_the_previous_delay(clock: ManualClock) -> None:
    p = policy(clock, max_attempts=4, initial_delay=1.0, max_delay=100, jitter="decorrelated")
    await p.call(failing(3))
    assert clock.sleeps == pytest.approx([3.0, 9.0, 27.0])  # random()=1.0: 3x the previous each time


async def test_gives_up_after_max_attempts_with_the_last_error(clock: ManualClock) -> None:
    p = policy(clock, max_attempts=3)
    fn = failing(10)
    with pytest.raises(Flaky, match="attempt 3") as info:
        await p.call(fn)
    assert fn.calls["n"] == 3
    assert any("max_attempts=3" in note for note in info.value.__notes__)


async def test_only_retryable_errors_are_retried(clock: ManualClock) -> None:
    p = policy(clock, max_attempts=5, dont_retry_on=[Fatal])
    fn = failing(1, Fatal("invalid order"))
    with pytest.raises(Fatal):
        await p.call(fn)
    assert fn.calls["n"] == 1
    q = policy(clock, max_attempts=5, retryable=lambda e: "retry" in str(e))
    fn2 = failing(1, Flaky("please retry"))
    assert await q.call(fn2) == "ok"


async def test_retry_after_is_honoured(clock: ManualClock) -> None:
    p = policy(clock, max_attempts=3, initial_delay=0.1, jitter="none")
    await p.call(failing(1, RateLimited(2.5)))
    assert clock.sleeps == [2.5]


async def test_open_breaker_waits_for_its_next_trial(clock: ManualClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1, reset_timeout=4.0, success_threshold=1, clock=clock)
    with pytest.raises(Flaky):
        await breaker.call(failing(1))
    p = policy(clock, max_attempts=2, initial_delay=0.1, jitter="none", retry_on=[CircuitOpenError])
    assert await p.call(breaker.call, failing(0)) == "ok"
    assert clock.sleeps == [4.0]


async def test_deadline_stops_retries_that_would_end_too_late(clock: ManualClock) -> None:
    p = policy(clock, max_attempts=10, initial_delay=1.0, jitter="none", deadline=5.0)
    fn = failing(10)
    with pytest.raises(Flaky) as info:
        await p.call(fn)
    assert clock.sleeps == [1.0, 2.0]  # 1 + 2 = 3s spent; waiting 4 more would pass 5s
    assert any("deadline" in n for n in info.value.__notes__)


async def test_budget_caps_retries_to_a_fraction_of_calls(clock: ManualClock) -> None:
    budget = RetryBudget(ratio=0.1, window=10.0, min_retries=0, clock=clock)
    p = policy(clock, max_attempts=2, initial_delay=0.0, budget=budget)
    for _ in range(50):
        await p.call(failing(0))
    outcomes = []
    for _ in range(20):
        try:
            await p.call(failing(1))
            outcomes.append("retried")
        except Flaky:
            outcomes.append("denied")
    # 70 calls seen, 10% => at most 7 retries in the window.
    assert outcomes.count("retried") == 7
    assert budget.denied == 13
    clock.advance(25)  # two windows later the history is gone, budget refills with new calls
    for _ in range(10):
        await p.call(failing(0))
    await p.call(failing(1))


async def test_cancellation_is_not_retried(clock: ManualClock) -> None:
    p = RetryPolicy(max_attempts=5, initial_delay=0)
    calls = 0

    async def hang() -> None:
        nonlocal calls
        calls += 1
        await anyio.sleep_forever()

    with anyio.move_on_after(0.01):
        await p.call(hang)
    assert calls == 1


async def test_decorators_on_async_and_sync_functions(clock: ManualClock) -> None:
    @retry(max_attempts=3, initial_delay=0.0, sleep=clock.sleep)
    async def fetch() -> str:
        return await fn()

    fn = failing(2)
    assert await fetch() == "ok"
    attempts = {"n": 0}
    slept: list[float] = []

    @retry(max_attempts=3, initial_delay=0.5, jitter="none", sleep_sync=slept.append)
    def load() -> int:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise Flaky()
        return 7

    assert load() == 7 and slept == [0.5, 1.0]


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="ratio"):
        RetryBudget(ratio=2)
