"""Hot-standby replication lag: a leader's journal/ledger commit until a standby applied it.

Run: ``python -m pytest bench/test_bench_replication.py --benchmark-only -s`` (about 15 s).

Both replicas run in this process on a private redis-server, each on its own DuckDB file, with
``[ha]``'s default ``replication_interval`` (50 ms). ORDERS orders are journaled on the leader
(PREPARED → SUBMITTING → ACKED → fill posted → FILLED → VERIFIED: five events and one ledger
transaction each), one every PACE seconds, while the standby follows; the standby's
commit-to-apply delay of every entry is recorded (p50, p95, max in ``extra_info`` and
``bench/results/replication.json``).

Baseline in the same run: the same number of entries of the same size sent straight through the
stream (``XADD`` → a blocked ``XREAD``) with nothing else — the floor any stream-based replication
pays. The difference is the publish interval (rows are looked for every 50 ms, off the order
path) and the two DuckDB commits (the leader's read, the standby's apply with its position).
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import duckdb
import pytest

from hrkernel.ha.config import HASection

ORDERS = 150
PACE = 0.02
RESULTS = Path(__file__).resolve().parent / "results" / "replication.json"
FIGURES: dict[str, Any] = {}

pytestmark = pytest.mark.benchmark(group="ha-replication")


def _summary(delays: list[float]) -> dict[str, float]:
    ordered = sorted(delays)
    return {"entries": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 2), "max_ms": round(ordered[-1] * 1000, 2)}


def _write(key: str, figures: dict[str, float]) -> None:
    FIGURES[key] = figures
    out: dict[str, Any] = {"orders": ORDERS, "pace_s": PACE, "interval_s": float(HASection().replication_interval),
                           **FIGURES}
    if "stream" in FIGURES and "replication" in FIGURES:
        out["ratios"] = [{
            "label": "replication commit-to-apply p50 vs bare stream delivery p50 (same entries)",
            "ours": "replication", "peer": "stream",
            "ratio": round(FIGURES["replication"]["p50_ms"] / max(FIGURES["stream"]["p50_ms"], 0.001), 1),
        }]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")


def _replicate(url: str) -> list[float]:
    from hrkernel.exchange import Fill, Side
    from hrkernel.ha.replication import Replicator
    from hrkernel.ledger import Ledger, fill_transaction
    from hrkernel.orders.journal import OrderJournal, OrderRecord, OrderState

    interval = float(HASection().replication_interval)
    workdir = Path(tempfile.mkdtemp(prefix="hr-bench-repl-"))

    async def go() -> list[float]:
        import redis.asyncio as aioredis

        prefix = f"rb{time.monotonic_ns()}"
        lead_con, follow_con = duckdb.connect(str(workdir / "a.duckdb")), duckdb.connect(str(workdir / "b.duckdb"))
        journal, ledger = OrderJournal(workdir / "a.journal.sqlite"), Ledger(lead_con)
        Ledger(follow_con)
        leader = Replicator(lead_con, workdir / "a.journal.sqlite", redis_url=url, key_prefix=prefix, instance_id="a",
                            interval=interval)
        follower = Replicator(follow_con, workdir / "b.journal.sqlite", redis_url=url, key_prefix=prefix,
                              instance_id="b", interval=interval)
        client = aioredis.Redis.from_url(url)
        try:
            async with anyio.create_task_group() as tg:
                await leader.start(tg)
                await follower.start(tg)
                await leader.take_over(int(await client.incr(f"{prefix}:token")))
                for i in range(ORDERS):
                    coid = f"hr{i:030x}"
                    await journal.create(OrderRecord(
                        client_order_id=coid, signal_id=f"s{i}", exchange="x", symbol="BTCUSDT", base="BTC",
                        quote="USDT", side="buy", type="market", amount=Decimal("0.001"), price=None,
                        state=OrderState.PREPARED))
                    await journal.record(coid, OrderState.SUBMITTING, attempts=1)
                    await journal.record(coid, OrderState.ACKED, exchange_order_id=f"e{i}")
                    fill = Fill(trade_id=f"t{i}", order_id=f"e{i}", symbol="BTCUSDT", side=Side.BUY,
                                amount=Decimal("0.001"), price=Decimal("65000"), fee=Decimal("0.0000001"),
                                fee_currency="BTC", time=datetime.now(UTC))
                    ledger.post_many([fill_transaction("x", "BTC", "USDT", fill, order_ref=coid)])
                    await journal.record(coid, OrderState.FILLED, filled_amount=Decimal("0.001"))
                    await journal.record(coid, OrderState.VERIFIED)
                    await anyio.sleep(PACE)
                deadline = time.monotonic() + 30
                while follower.pos.seq < ORDERS * 5 or follower.pos.tx < ORDERS:
                    assert time.monotonic() < deadline, f"the standby did not catch up: {follower.pos} {leader.pos} {journal._seq}"
                    await anyio.sleep(0.01)
                delays = list(follower._delays)
                print(f"\nleader commit-to-publish: {_summary(list(leader._delays))}")
                await leader.aclose()
                await follower.aclose()
                tg.cancel_scope.cancel()
            return delays
        finally:
            await client.aclose()
            journal.close()
            lead_con.close()
            follow_con.close()

    try:
        return anyio.run(go)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _stream(url: str, entries: int, size: int) -> list[float]:
    async def go() -> list[float]:
        import redis.asyncio as aioredis

        writer, reader = aioredis.Redis.from_url(url), aioredis.Redis.from_url(url)
        key = f"bench-stream-{time.monotonic_ns()}"
        payload = "x" * size
        delays: list[float] = []
        try:
            async with anyio.create_task_group() as tg:
                async def read() -> None:
                    last = "0-0"
                    while len(delays) < entries:
                        reply = await reader.xread({key: last}, count=100, block=1000)
                        for _stream, items in reply or []:
                            for entry_id, fields in items:
                                last = entry_id
                                delays.append(time.time() - float(fields[b"t"]))

                tg.start_soon(read)
                await anyio.sleep(0.05)
                for _ in range(entries):
                    await writer.xadd(key, {"t": repr(time.time()), "data": payload})
                    await anyio.sleep(PACE)
            return delays
        finally:
            await writer.aclose()
            await reader.aclose()

    return anyio.run(go)


def test_peer_bare_stream_delivery(benchmark: Any, redis_url: str) -> None:
    delays = benchmark.pedantic(_stream, args=(redis_url, ORDERS, 2500), rounds=1, iterations=1)
    figures = _summary(delays)
    benchmark.extra_info.update(figures)
    _write("stream", figures)
    print(f"\nbare XADD -> XREAD delivery: {figures}")


def test_replication_commit_to_apply(benchmark: Any, redis_url: str) -> None:
    delays = benchmark.pedantic(_replicate, args=(redis_url,), rounds=1, iterations=1)
    figures = _summary(delays)
    benchmark.extra_info.update(figures)
    _write("replication", figures)
    print(f"\nreplication commit-to-apply ({ORDERS} orders, one per {PACE * 1000:.0f} ms): {figures}")
