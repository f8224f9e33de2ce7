"""Breaker state shared through a real private redis-server, including Redis going away."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from hrkernel.resilience import (
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    RedisBreakerSync,
)

pytestmark = pytest.mark.anyio


class Down(Exception):
    pass


def trip(breaker: CircuitBreaker) -> None:
    def boom() -> None:
        raise Down()

    for _ in range(breaker.failure_threshold or 1):
        with pytest.raises(Down):
            breaker.call_sync(boom)


def instance(redis_url: str, name: str, prefix: str) -> tuple[BreakerRegistry, RedisBreakerSync]:
    reg = BreakerRegistry()
    reg.get_or_create("exchange_api", failure_threshold=2, reset_timeout=30.0)
    return reg, RedisBreakerSync(redis_url, reg, prefix=prefix, instance_id=name, timeout=0.3)


async def test_every_instance_sees_an_open_circuit(redis_server) -> None:
    reg_a, sync_a = instance(redis_server.url, "a", "t1:")
    reg_b, sync_b = instance(redis_server.url, "b", "t1:")
    try:
        assert await sync_a.sync_once() and await sync_b.sync_once()
        trip(reg_a.get("exchange_api"))
        await sync_a.sync_once()  # publishes
        await sync_b.sync_once()  # sees it
        remote = reg_b.get("exchange_api")
        assert remote.state is BreakerState.OPEN
        with pytest.raises(CircuitOpenError) as info:
            remote.call_sync(lambda: "never runs")
        assert 29.0 < info.value.retry_after <= 30.0

        # A closes after its trial calls; the key goes away, so B is not re-opened from it.
        reg_a.get("exchange_api").reset()
        await sync_a.sync_once()
        remote.reset()
        await sync_b.sync_once()
        assert remote.state is BreakerState.CLOSED
    finally:
        await sync_a.aclose()
        await sync_b.aclose()


async def test_redis_going_away_degrades_to_local_state_and_says_so_once(redis_server) -> None:
    reg_a, sync_a = instance(redis_server.url, "a", "t2:")
    reg_b, sync_b = instance(redis_server.url, "b", "t2:")
    breaker = reg_a.get("exchange_api")
    try:
        assert await sync_a.sync_once()
        redis_server.stop()
        with capture_logs() as logs:
            trip(breaker)  # still opens, locally
            assert await sync_a.sync_once() is False
            assert await sync_a.sync_once() is False
            assert breaker.state is BreakerState.OPEN
            with pytest.raises(CircuitOpenError):
                breaker.call_sync(lambda: 1)
        down = [e for e in logs if e["event"] == "breaker_shared_state_unavailable"]
        assert len(down) == 1 and sync_a.degraded

        redis_server.start()  # same port: the sync reconnects and publishes what it missed
        with capture_logs() as logs:
            assert await sync_a.sync_once()
        assert [e["event"] for e in logs if "shared_state" in e["event"]] == ["breaker_shared_state_restored"]
        await sync_b.sync_once()
        assert reg_b.get("exchange_api").state is BreakerState.OPEN
    finally:
        await sync_a.aclose()
        await sync_b.aclose()


async def test_local_clock_is_used_for_remote_open_periods(redis_server) -> None:
    clock = ManualClock()
    reg_a, sync_a = instance(redis_server.url, "a", "t3:")
    reg_b = BreakerRegistry()
    local = reg_b.get_or_create("exchange_api", failure_threshold=2, reset_timeout=30.0, clock=clock)
    sync_b = RedisBreakerSync(redis_server.url, reg_b, prefix="t3:", instance_id="b")
    try:
        trip(reg_a.get("exchange_api"))
        await sync_a.sync_once()
        await sync_b.sync_once()
        assert local.state is BreakerState.OPEN
        clock.advance(31)
        assert local.state is BreakerState.HALF_OPEN  # then probes like any open breaker
    finally:
        await sync_a.aclose()
        await sync_b.aclose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio runs on asyncio only


async def test_started_sync_propagates_in_the_background(redis_server) -> None:
    import anyio

    reg_a, sync_a = instance(redis_server.url, "a", "t4:")
    reg_b, sync_b = instance(redis_server.url, "b", "t4:")
    sync_a.interval = sync_b.interval = 0.01
    try:
        async with anyio.create_task_group() as tg:
            await sync_a.start(tg)
            await sync_b.start(tg)
            trip(reg_a.get("exchange_api"))
            with anyio.fail_after(5):
                while reg_b.get("exchange_api").state is not BreakerState.OPEN:
                    await anyio.sleep(0.01)
            assert sync_b.describe()["breakers"] == ["exchange_api"]
            tg.cancel_scope.cancel()
    finally:
        await sync_a.aclose()
        await sync_b.aclose()
