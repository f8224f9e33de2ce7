"""Nobitex adapter round trip against the simulator on loopback, with a bare httpx peer.

Run: ``python -m pytest bench/test_bench_nobitex.py --benchmark-only -s``. Each benchmark round
is a batch of ``BATCH`` sequential calls; the peers send the very same requests with a bare
``httpx.AsyncClient`` (no decoding, no guards) in the same run, against the same simulator. When the
module finishes it prints orders/s and the adapter's overhead per call (adapter median - bare median), which
is the figure to watch: the simulator's own cost is the same on both sides. On a shared host the
batch means drift; the "paired median" (300 alternating adapter/bare calls, median difference)
is the robust overhead figure.

The adapter runs with its local rate limiter off and the simulator with its rate limits off,
so the figures are the adapter's own throughput, not Nobitex's quota (300 placements / 10 min).
The fills pair reads the fills of ``BATCH`` just-filled orders: the adapter's ``order_fills`` for
all of them at once (one shared ``/market/trades/list`` poll) against one bare request per order,
which is what the adapter sent before the shared poll (and what spends Nobitex's 30/min).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from hrkernel.exchange import OrderRequest, OrderType, Side
from hrkernel.types import Amount
from hrkernel_nobitex.config import NobitexConfig
from hrkernel_nobitex.exchange import NobitexExchange
from hrkernel_sim.config import AccountConfig, RateLimitConfig, SimConfig
from hrkernel_sim.server import SimServer

BATCH = 50
TOKEN = "bench-token"
RESULTS: dict[str, float] = {}
_ids = itertools.count()


class Rig:
    """One event loop holding the simulator, the adapter and a bare client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        config = SimConfig(
            accounts={"default": AccountConfig(token=TOKEN, balances={
                "rls": Amount("1000000000000000"), "btc": Amount("100000")})},
            rate_limits=RateLimitConfig(enabled=False),
            walk_on_request=False,
        )
        self.sim = SimServer(config)
        self.run(self.sim.start())
        self.exchange = NobitexExchange(NobitexConfig(
            token=TOKEN, base_url=self.sim.base_url, bot_name="bench", rate_limit=False, pro=True))
        self.run(self.exchange.start())
        self.bare = httpx.AsyncClient(base_url=self.sim.base_url, headers={
            "Authorization": f"Token {TOKEN}", "User-Agent": "TraderBot/bench"})
        mid = Decimal(self.run(self.bare.get("/v3/orderbook/BTCIRT")).json()["bids"][0][0])
        self.price = (mid * Decimal("0.9")).quantize(Decimal(10))
        placed = self.run(self.exchange.place_order(self.request()))
        self.order_id = placed.exchange_id

    def reset(self) -> None:
        """A fresh simulator book before every round, so both sides see the same state."""
        async def go() -> None:
            async with httpx.AsyncClient(base_url=self.sim.base_url, headers=self.sim.admin_headers) as admin:
                (await admin.post("/_sim/reset")).raise_for_status()
        self.run(go())
        placed = self.run(self.exchange.place_order(self.request()))
        self.order_id = placed.exchange_id

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def request(self) -> OrderRequest:
        return OrderRequest(symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT, amount=Decimal("0.0001"),
                            price=self.price, client_order_id=f"b{next(_ids)}")

    def paired(self, pairs: int = 300) -> dict[str, float]:
        """Median of (adapter - bare) over alternating calls: drift on a shared host cancels out."""
        import statistics
        import time

        async def bare_status() -> None:
            (await self.bare.post("/market/orders/status", json={"id": int(self.order_id)})).raise_for_status()

        async def adapter_status() -> None:
            await self.exchange.get_order(exchange_id=self.order_id)

        async def bare_place() -> None:
            body = {"type": "buy", "execution": "limit", "srcCurrency": "btc", "dstCurrency": "rls",
                    "amount": "0.0001", "price": str(self.price), "clientOrderId": f"b{next(_ids)}", "pro": "yes"}
            (await self.bare.post("/market/orders/add", json=body)).raise_for_status()

        async def adapter_place() -> None:
            await self.exchange.place_order(self.request())

        async def run() -> dict[str, float]:
            out: dict[str, float] = {}
            for op, bare, adapter in (("status", bare_status, adapter_status), ("place", bare_place, adapter_place)):
                diffs = []
                for i in range(pairs):
                    # Alternate which goes first, so an order effect cancels out too.
                    first, second = (bare, adapter) if i % 2 else (adapter, bare)
                    t0 = time.perf_counter()
                    await first()
                    t1 = time.perf_counter()
                    await second()
                    t2 = time.perf_counter()
                    bare_t, adapter_t = (t1 - t0, t2 - t1) if i % 2 else (t2 - t1, t1 - t0)
                    diffs.append(adapter_t - bare_t)
                out[op] = statistics.median(diffs)
            return out

        self.reset()
        return dict(self.run(run()))

    def close(self) -> None:
        self.run(self.exchange.aclose())
        self.run(self.bare.aclose())
        self.run(self.sim.stop())
        self.loop.close()


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    # The adapter logs every placement at info: measured with those lines on, as production runs
    # it (the production_logging fixture in bench/conftest.py).
    r = Rig()
    yield r
    paired = r.paired() if len(RESULTS) >= 4 else {}
    r.close()
    report(paired)


def measure(benchmark: Any, name: str, rig: Rig, batch: Any) -> None:
    def round_() -> None:
        rig.run(batch())

    benchmark.pedantic(round_, setup=rig.reset, rounds=15, warmup_rounds=2, iterations=1)
    RESULTS[name] = benchmark.stats.stats.median / BATCH  # median: the host is shared


@pytest.mark.benchmark(group="nobitex-place")
def test_bare_httpx_place(benchmark: Any, rig: Rig) -> None:
    async def batch() -> None:
        for _ in range(BATCH):
            body = {"type": "buy", "execution": "limit", "srcCurrency": "btc", "dstCurrency": "rls",
                    "amount": "0.0001", "price": str(rig.price), "clientOrderId": f"b{next(_ids)}", "pro": "yes"}
            response = await rig.bare.post("/market/orders/add", json=body)
            assert response.json()["status"] == "ok"

    measure(benchmark, "bare_place", rig, batch)


@pytest.mark.benchmark(group="nobitex-place")
def test_adapter_place(benchmark: Any, rig: Rig) -> None:
    async def batch() -> None:
        for _ in range(BATCH):
            await rig.exchange.place_order(rig.request())

    measure(benchmark, "adapter_place", rig, batch)


@pytest.mark.benchmark(group="nobitex-status")
def test_bare_httpx_status(benchmark: Any, rig: Rig) -> None:
    async def batch() -> None:
        for _ in range(BATCH):
            response = await rig.bare.post("/market/orders/status", json={"id": int(rig.order_id)})
            assert response.json()["status"] == "ok"

    measure(benchmark, "bare_status", rig, batch)


@pytest.mark.benchmark(group="nobitex-status")
def test_adapter_status(benchmark: Any, rig: Rig) -> None:
    async def batch() -> None:
        for _ in range(BATCH):
            await rig.exchange.get_order(exchange_id=rig.order_id)

    measure(benchmark, "adapter_status", rig, batch)


CONCURRENCY = 8


@pytest.mark.benchmark(group="nobitex-place-concurrent")
def test_bare_httpx_place_concurrent(benchmark: Any, rig: Rig) -> None:
    async def one() -> None:
        body = {"type": "buy", "execution": "limit", "srcCurrency": "btc", "dstCurrency": "rls",
                "amount": "0.0001", "price": str(rig.price), "clientOrderId": f"b{next(_ids)}", "pro": "yes"}
        assert (await rig.bare.post("/market/orders/add", json=body)).json()["status"] == "ok"

    async def batch() -> None:
        sem = asyncio.Semaphore(CONCURRENCY)

        async def bounded() -> None:
            async with sem:
                await one()

        await asyncio.gather(*(bounded() for _ in range(BATCH)))

    measure(benchmark, "bare_place_concurrent", rig, batch)


@pytest.mark.benchmark(group="nobitex-place-concurrent")
def test_adapter_place_concurrent(benchmark: Any, rig: Rig) -> None:
    async def batch() -> None:
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one() -> None:
            async with sem:
                await rig.exchange.place_order(rig.request())

        await asyncio.gather(*(one() for _ in range(BATCH)))

    measure(benchmark, "adapter_place_concurrent", rig, batch)


FILLED: list[Any] = []


def filled_orders() -> None:
    """Setup of a fills round: a fresh simulator book, ``BATCH`` orders that filled on placement,
    and an empty fills cache (a new feed), so every round reads the trades from the exchange."""
    from hrkernel_nobitex.fills import FillFeed

    rig = RIG[0]
    rig.reset()
    crossing = (rig.price / Decimal("0.9") * Decimal("1.05")).quantize(Decimal(10))

    async def place() -> list[Any]:
        return [await rig.exchange.place_order(OrderRequest(
            symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT, amount=Decimal("0.0001"), price=crossing,
            client_order_id=f"b{next(_ids)}")) for _ in range(BATCH)]

    FILLED[:] = rig.run(place())
    assert all(o.filled_amount > 0 for o in FILLED)
    rig.exchange.fills = FillFeed(rig.exchange.transport, rig.exchange.config, log=rig.exchange.log)


def measure_fills(benchmark: Any, name: str, rig: Rig, batch: Any) -> None:
    RIG[:] = [rig]

    def round_() -> None:
        rig.run(batch())

    benchmark.pedantic(round_, setup=filled_orders, rounds=10, warmup_rounds=1, iterations=1)
    RESULTS[name] = benchmark.stats.stats.median / BATCH


RIG: list[Rig] = []


@pytest.mark.benchmark(group="nobitex-fills")
def test_bare_httpx_fills_one_trades_list_per_order(benchmark: Any, rig: Rig) -> None:
    """The peer: one /market/trades/list request per order, as the adapter did before the feed."""
    async def one(order: Any) -> None:
        response = await rig.bare.get("/market/trades/list", params={
            "srcCurrency": "btc", "dstCurrency": "rls", "pageSize": 100})
        assert response.json()["status"] == "ok"

    async def batch() -> None:
        await asyncio.gather(*(one(o) for o in FILLED))

    measure_fills(benchmark, "bare_fills", rig, batch)


@pytest.mark.benchmark(group="nobitex-fills")
def test_adapter_order_fills_shared(benchmark: Any, rig: Rig) -> None:
    """``order_fills`` for every order of a burst at once: one shared poll answers them all."""
    async def batch() -> None:
        fills = await asyncio.gather(*(rig.exchange.order_fills(o) for o in FILLED))
        assert all(sum(f.amount for f in got) == o.filled_amount for got, o in zip(fills, FILLED, strict=True))

    measure_fills(benchmark, "adapter_fills", rig, batch)


def report(paired: dict[str, float]) -> None:
    if len(RESULTS) < 4:
        return
    lines = []
    for op in ("place", "status"):
        if f"bare_{op}" not in RESULTS or f"adapter_{op}" not in RESULTS:
            continue
        bare, adapter = RESULTS[f"bare_{op}"], RESULTS[f"adapter_{op}"]
        lines.append(f"{op:>6}: adapter {1 / adapter:7.0f}/s ({adapter * 1e6:6.0f} us/call), "
                     f"bare httpx {1 / bare:7.0f}/s ({bare * 1e6:6.0f} us/call), "
                     f"adapter overhead {(adapter - bare) * 1e6:6.0f} us/call = {adapter / bare:.2f}x; "
                     f"paired median overhead {paired.get(op, float('nan')) * 1e6:5.0f} us/call")
    if "adapter_place_concurrent" in RESULTS:
        lines.append(f"sustained placement, {CONCURRENCY} in flight: adapter "
                     f"{1 / RESULTS['adapter_place_concurrent']:.0f} orders/s "
                     f"(bare httpx: {1 / RESULTS['bare_place_concurrent']:.0f}/s)")
    if "adapter_fills" in RESULTS and "bare_fills" in RESULTS:
        lines.append(f" fills: {BATCH} concurrent order_fills {RESULTS['adapter_fills'] * 1e6:.0f} us/order "
                     f"(one shared trades/list poll) vs one bare trades/list per order "
                     f"{RESULTS['bare_fills'] * 1e6:.0f} us/order")
    print("\nNobitex adapter vs bare httpx, same simulator, same loop:\n" + "\n".join(lines))
    _write_results(paired)


RESULTS_FILE = Path(__file__).resolve().parent / "results" / "nobitex.json"


def _write_results(paired: dict[str, float]) -> None:
    """The figures above as ratio rows for ``bench/report.py`` (bare time / adapter time, medians)."""
    ratios = []
    for op, label in (("place", "place_order"), ("status", "order status"),
                      ("place_concurrent", f"place_order, {CONCURRENCY} in flight")):
        bare, adapter = RESULTS.get(f"bare_{op}"), RESULTS.get(f"adapter_{op}")
        if bare and adapter:
            extra = f", paired median overhead {paired[op] * 1e6:.0f} µs" if op in paired else ""
            ratios.append({"label": f"Nobitex adapter {label} vs bare httpx, same simulator (median batch{extra})",
                           "ours": f"{1 / adapter:.0f}/s", "peer": f"{1 / bare:.0f}/s",
                           "ratio": round(bare / adapter, 2), "met": None})
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps({"seconds_per_call": RESULTS, "paired_overhead_s": paired,
                                        "ratios": ratios}, indent=2) + "\n")


# The adapter's CPU work per answer, without the network: checking the status/body for a
# failure, decoding into msgspec structs and converting to the kernel's Order, against the
# cheapest possible peer (json.loads into dicts) on the same bytes.
ORDER_BODY = (b'{"status":"ok","order":{"type":"buy","execution":"Limit","srcCurrency":"Bitcoin",'
              b'"dstCurrency":"\\ufdfc","market":"BTC-RLS","price":"103500000000","amount":"0.0001",'
              b'"totalPrice":"10350000","matchedAmount":"0E-10","unmatchedAmount":"0.0001","id":25,'
              b'"status":"Active","partial":false,"fee":"0E-10","averagePrice":"0",'
              b'"created_at":"2026-11-21T11:36:13.592827+00:00","clientOrderId":"b1"}}')


@pytest.mark.benchmark(group="nobitex-decode")
def test_decode_peer_json_loads(benchmark: Any) -> None:
    result = benchmark(json.loads, ORDER_BODY)
    assert result["order"]["id"] == 25


@pytest.mark.benchmark(group="nobitex-decode")
def test_decode_adapter_check_decode_convert(benchmark: Any) -> None:
    from hrkernel_nobitex import wire

    def decode() -> Any:
        assert wire.error_for(200, ORDER_BODY, "status") is None
        return wire.order_from_wire(wire.decode(ORDER_BODY, wire.OrderReply, "status").order, "status")

    order = benchmark(decode)
    assert order.exchange_id == "25" and order.amount == Decimal("0.0001")
