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


BURSTS = (1, 10, 50, 5000)
"""Fills per write: one fill, a small and a larger burst, a catch-up after an outage."""


def _row_by_row(con: duckdb.DuckDBPyConnection, txs: list, first_id: int) -> None:
    """The honest baseline: the same rows, inserted one statement each, in ONE transaction."""
    con.execute("BEGIN TRANSACTION")
    for tx_id, tx in enumerate(txs, first_id):
        con.execute("INSERT INTO ledger_tx VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [tx_id, tx.kind, tx.exchange, tx.trade_id, tx.order_ref, tx.reason, NOW.replace(tzinfo=None)])
        for p in tx.postings:
            con.execute("INSERT INTO ledger_posting VALUES (?, ?, ?, ?)", [tx_id, p.account, p.currency, p.amount])
    con.execute("COMMIT")


def test_bench_ledger_postings_per_burst_size(tmp_path: Path) -> None:
    """Postings/s at 1, 10, 50 and 5,000 fills per write: ``post_many`` (one transaction, columnar
    insert) against row-by-row inserts in one transaction, each on its own file database, same
    fills. Writes ``bench/results/ledger.json`` (ratios for ``python bench/report.py``)."""
    import json

    rows = []
    for size in BURSTS:
        writes = max(3, min(200, 20_000 // (size * 3)))  # enough postings to time, bounded run time
        ledger = Ledger(str(tmp_path / f"ours-{size}.duckdb"))
        txs = [fill_transaction("nobitex", "BTC", "IRT", f) for f in _fills(size * writes, f"o{size}-")]
        postings = sum(len(t.postings) for t in txs)
        start = time.perf_counter()
        for i in range(0, len(txs), size):
            ledger.post_many(txs[i: i + size])
        ours = postings / (time.perf_counter() - start)
        assert ledger.unbalanced_transactions() == []
        con = duckdb.connect(str(tmp_path / f"rows-{size}.duckdb"))
        con.execute(SCHEMA)
        base_txs = [fill_transaction("nobitex", "BTC", "IRT", f) for f in _fills(size * writes, f"r{size}-")]
        start = time.perf_counter()
        for i in range(0, len(base_txs), size):
            _row_by_row(con, base_txs[i: i + size], i + 1)
        base = postings / (time.perf_counter() - start)
        con.close()
        rows.append({"label": f"ledger postings/s, {size} fill(s) per write: post_many vs row-by-row in one transaction",
                     "ours": f"{ours:,.0f}/s", "peer": f"{base:,.0f}/s", "ratio": round(ours / base, 2),
                     "target": "", "met": None})
        print(f"\n{size:>5} fills/write: post_many {ours:,.0f} postings/s, row-by-row {base:,.0f}/s, "
              f"ratio {ours / base:.2f}x ({writes} writes)")
    out = Path(__file__).resolve().parent / "results" / "ledger.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"ratios": rows}, indent=2) + "\n")
