"""TTL cache: expiry, single-flight, stale-if-error, invalidation, eviction, metrics."""

from __future__ import annotations

import anyio
import pytest

from hrkernel.resilience import ManualClock, TTLCache

pytestmark = pytest.mark.anyio


class SourceDown(Exception):
    pass


class Source:
    def __init__(self) -> None:
        self.fetches = 0
        self.fail = False
        self.gate: anyio.Event | None = None

    async def fetch(self, key: str = "k") -> str:
        self.fetches += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise SourceDown(f"source down for {key}")
        return f"{key}-v{self.fetches}"


async def test_values_live_for_their_ttl(clock: ManualClock) -> None:
    cache: TTLCache[str] = TTLCache("prices", ttl=5.0, clock=clock)
    src = Source()
    assert await cache.get("btc", src.fetch, "btc") == "btc-v1"
    clock.advance(4.9)
    assert await cache.get("btc", src.fetch, "btc") == "btc-v1"
    clock.advance(0.1)
    assert await cache.get("btc", src.fetch, "btc") == "btc-v2"
    m = cache.metrics()
    assert (m.hits, m.misses, m.fetches) == (1, 2, 2)


async def test_100_concurrent_misses_make_one_fetch(clock: ManualClock) -> None:
    cache: TTLCache[str] = TTLCache("markets", ttl=5.0, clock=clock)
    src = Source()
    src.gate = anyio.Event()
    results: list[str] = []

    async def reader() -> None:
        results.append(await cache.get("markets", src.fetch, "markets"))

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        src.gate.set()
    assert src.fetches == 1
    assert results == ["markets-v1"] * 100
    assert cache.metrics().coalesced == 99


async def test_concurrent_misses_share_the_error_when_nothing_stale_exists(clock: ManualClock) -> None:
    cache: TTLCache[str] = TTLCache("c", ttl=1.0, clock=clock)
    src = Source()
    src.fail, src.gate = True, anyio.Event()
    errors: list[BaseException] = []

    async def reader() -> None:
        try:
            await cache.get("k", src.fetch)
        except SourceDown as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        src.gate.set()
    assert len(errors) == 10 and src.fetches == 1


async def test_stale_value_is_served_when_the_source_fails(clock: ManualClock) -> None:
    cache: TTLCache[str] = TTLCache("ticker", ttl=5.0, max_stale=30.0, clock=clock)
    src = Source()
    await cache.get("k", src.fetch)
    src.fail = True
    clock.advance(20.0)
    result = await cache.get_result("k", src.fetch)
    assert (result.value, result.stale, result.age) == ("k-v1", True, 20.0)
    clock.advance(15.1)  # 35.1 s old: past ttl + max_stale
    with pytest.raises(SourceDown):
        await cache.get("k", src.fetch)
    assert cache.metrics().stale_serves == 1 and cache.metrics().fetch_errors == 2
    src.fail = False
    assert (await cache.get_result("k", src.fetch)).stale is False


async def test_leader_cancelled_mid_fetch_lets_a_waiter_fetch(clock: ManualClock) -> None:
    cache: TTLCache[str] = TTLCache("c", ttl=5.0, clock=clock)
    src = Source()
    src.gate = anyio.Event()
    got: list[str] = []

    async def waiter() -> None:
        got.append(await cache.get("k", src.fetch))

    async with anyio.create_task_group() as outer:
        async with anyio.create_task_group() as leader:
            leader.start_soon(cache.get, "k", src.fetch)
            await anyio.wait_all_tasks_blocked()
            outer.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            leader.cancel_scope.cancel()
        await anyio.wait_all_tasks_blocked()
        src.gate.set()
    assert got == ["k-v2"] and src.fetches == 2


async def test_invalidate_by_key_and_prefix(clock: ManualClock) -> None:
    cache: TTLCache[str] = TTLCache("c", ttl=60.0, clock=clock)
    for key in ("orders:1", "orders:2", "balances:usdt"):
        cache.set(key, key)
    assert cache.invalidate("balances:usdt") and not cache.invalidate("nope")
    assert cache.invalidate_prefix("orders:") == 2
    assert len(cache) == 0


async def test_invalidated_in_flight_fetch_is_not_stored(clock: ManualClock) -> None:
    cache: TTLCache[str] = TTLCache("c", ttl=60.0, clock=clock)
    src = Source()
    src.gate = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(cache.get, "k", src.fetch)
        await anyio.wait_all_tasks_blocked()
        cache.invalidate("k")
        src.gate.set()
    assert cache.peek("k") is None


async def test_max_size_evicts_the_oldest(clock: ManualClock) -> None:
    cache: TTLCache[int] = TTLCache("c", ttl=60.0, max_size=2, clock=clock)
    cache.set("a", 1)
    cache.set("b", 2)
    cache.set("c", 3)
    assert cache.peek("a") is None and cache.metrics().evictions == 1


async def test_cached_decorator(clock: ManualClock) -> None:
    cache: TTLCache[str] = TTLCache("c", ttl=60.0, clock=clock)
    src = Source()

    @cache.cached()
    async def market(symbol: str) -> str:
        return await src.fetch(symbol)

    assert await market("BTCIRT") == await market("BTCIRT") == "BTCIRT-v1"
    assert await market("ETHIRT") == "ETHIRT-v2"
