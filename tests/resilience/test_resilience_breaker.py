"""Circuit breaker behaviour: the three ways in, half-open limits, cancellation, errors, registry."""

from __future__ import annotations

import anyio
import pytest

from hrkernel.resilience import (
    BreakerRegistry,
    BreakerState,
    BreakerStateChanged,
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    circuit_breaker,
)

pytestmark = pytest.mark.anyio


class Timeout(Exception):
    pass


class InvalidOrder(Exception):
    pass


async def fail() -> None:
    raise Timeout("exchange timed out")


async def ok(value: int = 1) -> int:
    return value


def trip(breaker: CircuitBreaker, n: int | None = None) -> None:
    def boom() -> None:
        raise Timeout()

    for _ in range(n or breaker.failure_threshold or 1):
        with pytest.raises(Timeout):
            breaker.call_sync(boom)


async def test_constructor_keywords_as_users_write_them(clock: ManualClock) -> None:
    breaker = CircuitBreaker(name="exchange_api", failure_threshold=5, reset_timeout=30.0,
                             half_open_max_requests=2, success_threshold=3, clock=clock)
    for _ in range(4):
        with pytest.raises(Timeout):
            await breaker.call(fail)
    assert breaker.state is BreakerState.CLOSED
    with pytest.raises(Timeout):
        await breaker.execute(fail)  # the alias older code uses
    assert breaker.state is BreakerState.OPEN

    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(ok)
    assert info.value.name == "exchange_api"
    assert info.value.next_attempt_at == pytest.approx(clock() + 30.0)
    assert info.value.retry_after == pytest.approx(30.0)
    assert "exchange_api" in str(info.value)

    clock.advance(30.0)
    assert breaker.state is BreakerState.HALF_OPEN
    for _ in range(3):
        assert await breaker.call(ok, 7) == 7
    assert breaker.state is BreakerState.CLOSED


async def test_any_trial_failure_reopens(clock: ManualClock) -> None:
    breaker = CircuitBreaker("b", failure_threshold=1, reset_timeout=5, success_threshold=2, clock=clock)
    trip(breaker)
    clock.advance(5)
    assert await breaker.call(ok) == 1
    with pytest.raises(Timeout):
        await breaker.call(fail)
    assert breaker.state is BreakerState.OPEN
    assert breaker.next_attempt_at == pytest.approx(clock() + 5)


async def test_half_open_admits_exactly_its_limit_under_100_concurrent_callers(clock: ManualClock) -> None:
    breaker = CircuitBreaker("probe", failure_threshold=1, reset_timeout=1, half_open_max_requests=3,
                             success_threshold=10, clock=clock)
    trip(breaker)
    clock.advance(1)
    release = anyio.Event()
    running = 0
    peak = 0
    admitted = 0
    rejected = 0

    async def slow_probe() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    async def caller() -> None:
        nonlocal admitted, rejected
        try:
            await breaker.call(slow_probe)
            admitted += 1
        except CircuitOpenError as exc:
            assert exc.state == "half_open"
            rejected += 1

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(caller)
        await anyio.wait_all_tasks_blocked()
        assert running == 3
        release.set()
    assert (admitted, rejected, peak) == (3, 97, 3)
    assert breaker.metrics().rejected == 97


async def test_cancellation_is_neutral_in_the_closed_state(clock: ManualClock) -> None:
    breaker = CircuitBreaker("c", failure_threshold=2, clock=clock, latency_sample_every=1)

    async def hang() -> None:
        await anyio.sleep_forever()

    for _ in range(5):
        with anyio.move_on_after(0.001):
            await breaker.call(hang)
    metrics = breaker.metrics()
    assert breaker.state is BreakerState.CLOSED
    assert (metrics.cancelled, metrics.failures, metrics.successes) == (5, 0, 0)


async def test_cancelled_trial_call_releases_its_half_open_slot_and_counts_nothing(clock: ManualClock) -> None:
    breaker = CircuitBreaker("c", failure_threshold=1, reset_timeout=1, half_open_max_requests=1,
                             success_threshold=1, clock=clock)
    trip(breaker)
    clock.advance(1)
    started = anyio.Event()

    async def hang() -> None:
        started.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(breaker.call, hang)
        await started.wait()
        with pytest.raises(CircuitOpenError):  # the only slot is taken
            await breaker.call(ok)
        tg.cancel_scope.cancel()
    assert breaker.state is BreakerState.HALF_OPEN  # neither reopened nor closed
    assert await breaker.call(ok) == 1  # the slot was released
    assert breaker.state is BreakerState.CLOSED


async def test_ignored_exceptions_do_not_open_the_breaker(clock: ManualClock) -> None:
    breaker = CircuitBreaker("orders", failure_threshold=2, ignore_exceptions=[InvalidOrder], clock=clock)

    async def invalid() -> None:
        raise InvalidOrder("amount below minimum")

    for _ in range(10):
        with pytest.raises(InvalidOrder):
            await breaker.call(invalid)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.metrics().ignored == 10


async def test_is_failure_predicate_classifies_status_codes(clock: ManualClock) -> None:
    class HttpError(Exception):
        def __init__(self, status: int) -> None:
            self.status = status

    breaker = CircuitBreaker("http", failure_threshold=2, clock=clock,
                             is_failure=lambda e: getattr(e, "status", 500) >= 500)

    async def status(code: int) -> None:
        raise HttpError(code)

    for _ in range(5):
        with pytest.raises(HttpError):
            await breaker.call(status, 400)
    assert breaker.state is BreakerState.CLOSED
    for _ in range(2):
        with pytest.raises(HttpError):
            await breaker.call(status, 503)
    assert breaker.state is BreakerState.OPEN


async def test_failure_rate_window_needs_minimum_calls(clock: ManualClock) -> None:
    breaker = CircuitBreaker("rate", failure_threshold=None, failure_rate_threshold=0.5,
                             window_size=10, minimum_calls=6, clock=clock)
    for fn in (ok, fail, ok, fail, fail):  # 3/5 failed, but fewer than 6 calls
        try:
            await breaker.call(fn)
        except Timeout:
            pass
    assert breaker.state is BreakerState.CLOSED
    with pytest.raises(Timeout):
        await breaker.call(fail)  # 4/6 >= 0.5
    assert breaker.state is BreakerState.OPEN
    assert breaker.metrics().failure_rate == pytest.approx(4 / 6)


async def test_slow_calls_open_the_breaker(clock: ManualClock) -> None:
    breaker = CircuitBreaker("slow", failure_threshold=None, slow_call_duration=1.0,
                             slow_call_rate_threshold=0.5, minimum_calls=4, clock=clock)

    async def slow() -> str:
        clock.advance(2.0)
        return "late"

    for fn in (ok, ok, slow):
        await breaker.call(fn)
    assert breaker.state is BreakerState.CLOSED
    assert await breaker.call(slow) == "late"  # 2 slow of 4
    assert breaker.state is BreakerState.OPEN
    assert breaker.metrics().slow_calls == 2


async def test_async_with_guards_a_block(clock: ManualClock) -> None:
    breaker = CircuitBreaker("ctx", failure_threshold=2, reset_timeout=10, success_threshold=1, clock=clock)
    for _ in range(2):
        with pytest.raises(Timeout):
            async with breaker:
                raise Timeout()
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pytest.fail("an open breaker must not run the block")
    clock.advance(10)
    async with breaker:
        pass
    assert breaker.state is BreakerState.CLOSED


async def test_decorator_on_async_and_sync_functions(clock: ManualClock) -> None:
    reg = BreakerRegistry()

    @circuit_breaker(name="feed", registry=reg, failure_threshold=1, clock=clock)
    async def fetch(x: int, *, scale: int = 1) -> int:
        if x < 0:
            raise Timeout()
        return x * scale

    @circuit_breaker(name="feed", registry=reg)
    def fetch_sync(x: int) -> int:
        return x

    assert await fetch(2, scale=3) == 6
    assert fetch_sync(4) == 4
    assert fetch.breaker is fetch_sync.breaker is reg.get("feed")
    with pytest.raises(Timeout):
        await fetch(-1)
    with pytest.raises(CircuitOpenError):
        fetch_sync(1)  # one breaker shared by name
    assert fetch.__name__ == "fetch"


async def test_fallback_value_and_callable(clock: ManualClock) -> None:
    breaker = CircuitBreaker("fb", failure_threshold=1, fallback="cached", clock=clock)
    trip(breaker)
    assert await breaker.call(ok) == "cached"

    seen: list[BaseException] = []

    async def fallback(exc: BaseException) -> str:
        seen.append(exc)
        return "from fallback"

    other = CircuitBreaker("fb2", failure_threshold=1, fallback=fallback, fallback_on_failure=True, clock=clock)
    assert await other.call(fail) == "from fallback"  # a recorded failure
    assert await other.call(ok) == "from fallback"  # a rejection
    assert isinstance(seen[0], Timeout) and isinstance(seen[1], CircuitOpenError)
    sync = CircuitBreaker("fb3", failure_threshold=1, fallback=lambda exc: type(exc).__name__, clock=clock)
    trip(sync)
    assert sync.call_sync(lambda: 1) == "CircuitOpenError"


async def test_listeners_receive_typed_state_changes(clock: ManualClock) -> None:
    reg = BreakerRegistry()
    events: list[BreakerStateChanged] = []
    reg.add_listener(events.append)
    breaker = reg.get_or_create("ev", failure_threshold=2, reset_timeout=1, success_threshold=1, clock=clock)
    trip(breaker)
    clock.advance(1)
    await breaker.call(ok)
    assert [(e.old, e.new) for e in events] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert events[0].reason == "2 consecutive failures" and events[0].name == "ev"


async def test_a_raising_listener_does_not_break_the_breaker(clock: ManualClock) -> None:
    def bad(event: BreakerStateChanged) -> None:
        raise RuntimeError("listener bug")

    breaker = CircuitBreaker("l", failure_threshold=1, listeners=[bad], clock=clock)
    trip(breaker)
    assert breaker.state is BreakerState.OPEN


async def test_metrics_count_calls_and_time_in_state(clock: ManualClock) -> None:
    breaker = CircuitBreaker("m", failure_threshold=2, reset_timeout=5, clock=clock, latency_sample_every=1)

    async def timed() -> None:
        clock.advance(0.25)

    for _ in range(3):
        await breaker.call(timed)
    clock.advance(1)
    trip(breaker)
    clock.advance(2)
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    m = breaker.metrics()
    assert (m.calls, m.successes, m.failures, m.rejected) == (5, 3, 2, 1)
    assert m.time_in_state["closed"] == pytest.approx(1.75)
    assert m.time_in_state["open"] == pytest.approx(2.0)
    assert m.latency.count == 5 and m.latency.max == pytest.approx(0.25)
    assert m.state is BreakerState.OPEN


async def test_registry_rejects_conflicting_options_and_names_what_it_knows() -> None:
    reg = BreakerRegistry()
    reg.get_or_create("a", failure_threshold=3)
    assert reg.get_or_create("a") is reg.get("a")
    with pytest.raises(ValueError, match="failure_threshold=3"):
        reg.get_or_create("a", failure_threshold=4)
    with pytest.raises(KeyError, match="registered: a"):
        reg.get("b")
    assert "a" in reg and len(reg) == 1


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="failure_rate_threshold"):
        CircuitBreaker("x", failure_rate_threshold=50)
    with pytest.raises(ValueError, match="half_open_max_requests"):
        CircuitBreaker("x", half_open_max_requests=0)
    with pytest.raises(ValueError, match="window_type"):
        CircuitBreaker("x", window_type="sliding")  # type: ignore[arg-type]


async def test_reset_and_force_open(clock: ManualClock) -> None:
    breaker = CircuitBreaker("ops", reset_timeout=3, clock=clock)
    breaker.force_open(reason="operator")
    assert breaker.state is BreakerState.OPEN
    breaker.reset()
    assert await breaker.call(ok) == 1


async def test_counts_stay_exact_across_latency_samples_and_concurrency(clock: ManualClock) -> None:
    breaker = CircuitBreaker("count", failure_threshold=None, failure_rate_threshold=0.5,
                             window_size=50, minimum_calls=50, clock=clock, latency_sample_every=7)

    async def work(i: int) -> None:
        await anyio.lowlevel.checkpoint()
        if i % 10 == 0:
            raise Timeout()

    async def caller(i: int) -> None:
        try:
            await breaker.call(work, i)
        except Timeout:
            pass

    async with anyio.create_task_group() as tg:
        for i in range(1000):
            tg.start_soon(caller, i)
    m = breaker.metrics()
    assert (m.calls, m.successes, m.failures) == (1000, 900, 100)
    assert m.window_calls == 50 and breaker.state is BreakerState.CLOSED
    for _ in range(21):
        await breaker.call(work, 1)
    assert breaker.metrics().latency.count == 3  # every 7th call is timed
