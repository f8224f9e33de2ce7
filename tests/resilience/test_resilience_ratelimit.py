"""Rate limiter: GCRA limits, weights, several limits at once, waiting, timeouts, sharing."""

from __future__ import annotations

import anyio
import pytest

from hrkernel.resilience import Limit, ManualClock, RateLimiter, RateLimitExceeded

pytestmark = pytest.mark.anyio


async def test_burst_then_steady_rate(clock: ManualClock) -> None:
    limiter = RateLimiter(Limit(10, 1.0, name="per_second"), clock=clock)
    assert sum(limiter.try_acquire() for _ in range(15)) == 10  # the burst
    clock.advance(0.1)
    assert limiter.try_acquire() and not limiter.try_acquire()  # one token per 100 ms
    clock.advance(1.0)
    assert sum(limiter.try_acquire() for _ in range(15)) == 10


async def test_weights_take_more_capacity(clock: ManualClock) -> None:
    limiter = RateLimiter([Limit(10, 1.0)], clock=clock)
    assert limiter.try_acquire(weight=6)
    assert not limiter.try_acquire(weight=5)
    assert limiter.try_acquire(weight=4)
    with pytest.raises(ValueError, match="exceeds limit"):
        limiter.try_acquire(weight=11)


async def test_every_named_limit_must_grant(clock: ManualClock) -> None:
    limiter = RateLimiter([Limit(300, 600.0, name="place"), Limit(5, 1.0, name="burst")],
                          name="nobitex_orders", clock=clock)
    granted = 0
    for _ in range(400):  # 400 calls, one every 0.25 s, across 100 s
        granted += limiter.try_acquire()
        clock.advance(0.25)
    # The 10-minute limit binds, not the per-second one: its burst of 300, plus 0.5 per second
    # refilled over the 99.75 s that passed.
    assert granted == 300 + int(99.75 * 0.5)
    while limiter.try_acquire():
        pass
    wait = limiter.retry_after()
    assert 0 < wait <= 2.0  # one unit of "place" refills every 2 s
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.acquire(timeout=wait / 2)
    assert info.value.limit == "place" and info.value.retry_after == pytest.approx(wait)
    assert set(limiter.metrics().limits) == {"place", "burst"}


async def test_acquire_waits_for_capacity_in_arrival_order(clock: ManualClock) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:  # time stands still: every caller arrives at once
        waits.append(seconds)
        await anyio.lowlevel.checkpoint()

    limiter = RateLimiter(Limit(2, 1.0), clock=clock, sleep=record)
    order: list[int] = []
    arrived: list[int] = []  # trio starts tasks in random order: compare with actual arrival

    async def caller(i: int) -> None:
        arrived.append(i)
        await limiter.acquire()
        order.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(caller, i)
    assert sorted(order) == sorted(arrived) == list(range(6))
    # Two free, then each arrival reserves the next 0.5 s slot: waits are staggered in arrival
    # order (with a real clock the earlier reservation wakes first).
    assert waits == pytest.approx([0.5, 1.0, 1.5, 2.0])


async def test_acquire_timeout_raises_at_once_without_taking_anything(clock: ManualClock) -> None:
    limiter = RateLimiter(Limit(1, 10.0, name="slow"), clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    with pytest.raises(RateLimitExceeded, match="'slow'"):
        await limiter.acquire(timeout=5.0)
    assert clock.sleeps == []
    clock.advance(10.0)
    assert limiter.try_acquire()


async def test_cancelled_waiter_returns_its_reservation() -> None:
    limiter = RateLimiter(Limit(1, 0.05))
    assert limiter.try_acquire()
    with anyio.move_on_after(0.005):
        await limiter.acquire()  # would wait ~50 ms
    assert limiter.retry_after() <= 0.05  # not pushed out to 100 ms


async def test_shared_across_tasks_never_exceeds_the_rate() -> None:
    clock = ManualClock()
    limiter = RateLimiter(Limit(5, 1.0), clock=clock)
    granted = 0

    async def worker() -> None:
        nonlocal granted
        for _ in range(10):
            if limiter.try_acquire():
                granted += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(worker)
    assert granted == 5
    assert limiter.metrics().granted == 5 and limiter.metrics().headroom == pytest.approx(0)


async def test_async_with_acquires_one(clock: ManualClock) -> None:
    limiter = RateLimiter(Limit(1, 1.0), clock=clock, sleep=clock.sleep)
    async with limiter:
        pass
    async with limiter:
        pass
    assert clock.sleeps == [pytest.approx(1.0)]


def test_bad_limits_are_named() -> None:
    with pytest.raises(ValueError, match="rate and period"):
        Limit(0, 1.0, name="x")
    with pytest.raises(ValueError, match="at least one"):
        RateLimiter([])
