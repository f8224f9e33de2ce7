"""Bulkhead: concurrency limit, bounded FIFO queue, immediate rejection, timeouts, cancellation."""

from __future__ import annotations

import anyio
import pytest

from hrkernel.resilience import Bulkhead, BulkheadFullError

pytestmark = pytest.mark.anyio


async def test_never_exceeds_its_limit_under_100_concurrent_callers() -> None:
    bulkhead = Bulkhead("orders", max_concurrent=4, max_queue=100)
    running = peak = done = 0

    async def work() -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        running -= 1
        done += 1

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(bulkhead.call, work)
    assert (peak, done) == (4, 100)
    m = bulkhead.metrics()
    assert (m.peak_in_flight, m.in_flight, m.waiting, m.admitted) == (4, 0, 0, 100)


async def test_full_bulkhead_rejects_at_once() -> None:
    bulkhead = Bulkhead("alerts", max_concurrent=1, max_queue=1)
    release = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.call, release.wait)  # runs
        tg.start_soon(bulkhead.call, release.wait)  # queues
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(BulkheadFullError, match="'alerts'") as info:
            await bulkhead.acquire()
        assert not info.value.timed_out
        release.set()
    assert bulkhead.metrics().rejected == 1


async def test_queue_wait_times_out() -> None:
    bulkhead = Bulkhead("md", max_concurrent=1, max_queue=5, queue_timeout=0.01)
    async with bulkhead:
        with pytest.raises(BulkheadFullError) as info:
            async with bulkhead:
                pytest.fail("must not run")
    assert info.value.timed_out and bulkhead.in_flight == 0
    assert bulkhead.metrics().timed_out == 1


async def test_slots_go_to_waiters_in_arrival_order() -> None:
    bulkhead = Bulkhead("fifo", max_concurrent=1, max_queue=10)
    order: list[int] = []
    arrived: list[int] = []  # trio starts tasks in random order: compare with actual arrival

    async def work(i: int) -> None:
        order.append(i)
        await anyio.lowlevel.checkpoint()

    async def caller(i: int) -> None:
        arrived.append(i)
        await bulkhead.call(work, i)

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(caller, i)
    assert order == arrived and len(order) == 5


@pytest.mark.parametrize("cancel_first", [True, False])
async def test_cancelled_waiter_gives_up_its_place_and_any_slot_it_was_handed(cancel_first: bool) -> None:
    bulkhead = Bulkhead("c", max_concurrent=1, max_queue=5)
    await bulkhead.acquire()

    async def waiter() -> None:
        async with bulkhead:
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        # The slot is handed to the waiter in the same step as it is cancelled, in either order.
        if cancel_first:
            tg.cancel_scope.cancel()
            bulkhead.release()
        else:
            bulkhead.release()
            tg.cancel_scope.cancel()
    assert bulkhead.in_flight == 0 and bulkhead.metrics().waiting == 0
    await bulkhead.acquire()  # the slot was not leaked
    assert bulkhead.in_flight == 1


async def test_decorator() -> None:
    bulkhead = Bulkhead("d", max_concurrent=2)

    @bulkhead
    async def double(x: int) -> int:
        return 2 * x

    assert await double(21) == 42
