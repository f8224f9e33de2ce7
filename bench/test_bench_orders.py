"""Order path costs: one durable journal write (p50/p99) and the pipeline's own overhead per
order, signal in → submit call out (exchange latency excluded: an in-process exchange that
answers at once), with a bare DuckDB insert+commit as the baseline in the same run.

Run: ``python -m pytest bench/test_bench_orders.py -s -q`` (target: p99 under 2 ms).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import duckdb

from hrkernel.exchange import (
    Fill,
    Market,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    PriceLevel,
    Side,
)
from hrkernel.ledger import Ledger
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.journal import OrderJournal, OrderRecord, OrderState
from hrkernel.orders.pipeline import Signal, TransactionVerificationPipeline

N = 300


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class InstantExchange:
    """Answers at once and fills every order completely: only the pipeline's own cost is left."""

    name = "bench"

    def __init__(self) -> None:
        self.sent_at: list[float] = []
        self.orders: dict[str, Order] = {}

    async def market(self, symbol: str) -> Market:
        return Market(symbol=symbol, base="BTC", quote="RLS", amount_step=Decimal("0.000001"),
                      price_step=Decimal("10"), min_notional=Decimal("1"))

    async def order_book(self, symbol: str) -> OrderBook:
        return OrderBook(symbol=symbol, bids=[PriceLevel(Decimal("999990"), Decimal(1))],
                         asks=[PriceLevel(Decimal("1000010"), Decimal(1))], timestamp=None)

    async def place_order(self, request: OrderRequest, *, fencing_token: int | None = None) -> Order:
        self.sent_at.append(time.perf_counter())
        order = Order(exchange_id=str(len(self.orders) + 1), client_order_id=request.client_order_id,
                      symbol=request.symbol, side=request.side, type=request.type, status=OrderStatus.FILLED,
                      amount=request.amount, price=request.price, filled_amount=request.amount,
                      average_price=request.price, fee=Decimal(0), fee_currency="RLS", created_at=None)
        self.orders[order.exchange_id] = order
        return order

    async def get_order(self, *, exchange_id: str | None = None, client_order_id: str | None = None) -> Order:
        assert exchange_id is not None
        return self.orders[exchange_id]

    async def order_fills(self, order: Order) -> list[Fill]:
        assert order.price is not None
        return [Fill(trade_id=f"t{order.exchange_id}", order_id=order.exchange_id, symbol=order.symbol,
                     side=order.side, price=order.price, amount=order.amount, fee=Decimal(0), fee_currency="RLS",
                     time=datetime.now(UTC))]


def test_bench_journal_write_and_pipeline_overhead(tmp_path: Path) -> None:
    # Baseline: one bare insert + commit on a file database.
    con = duckdb.connect(str(tmp_path / "base.duckdb"))
    con.execute("CREATE TABLE t (a BIGINT, b VARCHAR)")
    base: list[float] = []
    for i in range(N):
        t0 = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO t VALUES (?, ?)", [i, "x"])
        con.execute("COMMIT")
        base.append(time.perf_counter() - t0)

    # One durable journal state change (update the order + append the event, one commit).
    journal = OrderJournal(str(tmp_path / "journal.duckdb"))
    writes: list[float] = []
    for i in range(N):
        journal.create(OrderRecord(client_order_id=f"c{i}", signal_id=f"s{i}", exchange="x", symbol="BTCIRT",
                                   base="BTC", quote="RLS", side="buy", type="limit", amount=Decimal("0.1"),
                                   price=Decimal("100"), state=OrderState.PREPARED))
        t0 = time.perf_counter()
        journal.record(f"c{i}", OrderState.SUBMITTING, attempts=1, fencing_token=1)
        writes.append(time.perf_counter() - t0)

    # Pipeline overhead: signal in -> place_order called.
    db = duckdb.connect(str(tmp_path / "pipeline.duckdb"))
    ledger = Ledger(db)
    ledger.deposit("bench", "RLS", Decimal("1e12"))
    exchange = InstantExchange()
    pipeline = TransactionVerificationPipeline(exchanges={"bench": exchange},  # type: ignore[dict-item]
                                               journal=OrderJournal(db), ledger=ledger,
                                               config=OrdersSection(max_open_orders=10 * N))
    overhead: list[float] = []

    async def run() -> None:
        for i in range(N):
            t0 = time.perf_counter()
            await pipeline.submit(Signal(signal_id=f"sig{i}", exchange="bench", symbol="BTCIRT", side=Side.BUY,
                                         amount=Decimal("0.001"), price=Decimal("1000000")))
            overhead.append(exchange.sent_at[-1] - t0)

    anyio.run(run)
    assert all(r.state is OrderState.VERIFIED for r in pipeline.journal.query(limit=10 * N))
    out: dict[str, Any] = {
        "bare insert+commit": base, "journal state change": writes, "pipeline signal->submit": overhead}
    print()
    for name, samples in out.items():
        print(f"{name:>24}: p50 {_pct(samples, 0.5):.3f} ms  p99 {_pct(samples, 0.99):.3f} ms  "
              f"mean {statistics.mean(samples) * 1000:.3f} ms")
    print(f"journal write p99 / bare commit p99: {_pct(writes, 0.99) / _pct(base, 0.99):.1f}x (target p99 < 2 ms)")
    assert _pct(writes, 0.5) > 0
