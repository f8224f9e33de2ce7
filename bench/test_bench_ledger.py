"""Ledger posting throughput: batched group commit vs a naive one-row-per-insert baseline.

Run: ``python -m pytest bench/test_bench_ledger.py -s -q``. Prints postings/s for both paths,
measured in the same run, and their ratio (targets: >= 100,000 postings/s and >= 50x naive).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from hrkernel.exchange import Fill, Side
from hrkernel.ledger import Ledger, fill_transaction
from hrkernel.ledger.ledger import SCHEMA

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _fills(n: int, prefix: str) -> list[Fill]:
    return [
        Fill(trade_id=f"{prefix}{i}", order_id="o", symbol="BTCIRT", side=Side.BUY if i % 2 else Side.SELL,
             price=Decimal("4100000000.5"), amount=Decimal("0.0012"), fee=Decimal("1500"), fee_currency="IRT", time=NOW)
        for i in range(n)
    ]


def test_bench_ledger_batched_vs_naive(tmp_path: Path) -> None:
    # Batched: bursts of 5,000 fills (30,000 postings) per group commit, into a file database.
    ledger = Ledger(str(tmp_path / "batched.duckdb"))
    txs = [fill_transaction("nobitex", "BTC", "IRT", f) for f in _fills(60_000, "b")]
    postings = sum(len(t.postings) for t in txs)
    start = time.perf_counter()
    for i in range(0, len(txs), 5_000):
        ledger.post_many(txs[i : i + 5_000])
    batched = postings / (time.perf_counter() - start)
    assert ledger.unbalanced_transactions() == []

    # Naive: one INSERT (and so one commit) per row, same schema, same data shape.
    con = duckdb.connect(str(tmp_path / "naive.duckdb"))
    con.execute(SCHEMA)
    naive_txs = [fill_transaction("nobitex", "BTC", "IRT", f) for f in _fills(500, "n")]
    naive_postings = sum(len(t.postings) for t in naive_txs)
    start = time.perf_counter()
    for tx_id, tx in enumerate(naive_txs, 1):
        con.execute("INSERT INTO ledger_tx VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [tx_id, tx.kind, tx.exchange, tx.trade_id, tx.order_ref, tx.reason, NOW.replace(tzinfo=None)])
        for p in tx.postings:
            con.execute("INSERT INTO ledger_posting VALUES (?, ?, ?, ?)", [tx_id, p.account, p.currency, p.amount])
    naive = naive_postings / (time.perf_counter() - start)
    ratio = batched / naive
    print(f"\nledger postings/s: batched {batched:,.0f} ({postings} postings), naive {naive:,.0f} "
          f"({naive_postings} postings), ratio {ratio:,.1f}x (targets >= 100,000/s and >= 50x)")
    assert batched > naive
