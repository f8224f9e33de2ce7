"""A small process for the crash-recovery tests: start-up reconciliation, then one signal.

    python orders_crash_worker.py DB SIM_URL TOKEN SIGNAL_ID SIDE PRICE [MODE]

DB is the ledger's DuckDB file; the journal is ``orders.journal.sqlite`` beside it.

MODE ``fused`` (the default) sends the signal with ``pipeline.submit`` (PREPARED and SUBMITTING
journaled in one commit); ``two-step`` with ``create_transaction`` then ``execute_transaction``
(PREPARED committed on its own first, as for an order that waits for an execution slot).

With ``HRKERNEL_FAULT_POINT`` set it SIGKILLs itself at that point (see hrkernel.orders.faults).
Prints the order's final record as JSON on success.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import anyio
import duckdb
import msgspec

from hrkernel.exchange import Side
from hrkernel.ledger import Ledger
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.journal import OrderJournal
from hrkernel.orders.pipeline import Signal, TransactionVerificationPipeline
from hrkernel.orders.reconcile import StateReconciliation
from hrkernel.types import Duration
from hrkernel_nobitex.config import NobitexConfig
from hrkernel_nobitex.exchange import NobitexExchange


async def main(db: str, url: str, token: str, signal_id: str, side: str, price: str, mode: str = "fused") -> None:
    con = duckdb.connect(db)
    journal = OrderJournal(Path(db).with_name("orders.journal.sqlite"))
    exchange = NobitexExchange(NobitexConfig(token=token, base_url=url, rate_limit=False, timeout=Duration(1.0)),
                               instance_id="crash-worker")
    config = OrdersSection(visibility_window=Duration(0.2), lookup_backoff=Duration(0.02), poll_initial=Duration(0.02),
                           poll_max=Duration(0.1), verify_deadline=Duration(3.0), max_open_orders=100)
    async with exchange:
        pipeline = TransactionVerificationPipeline(exchanges={"nobitex": exchange}, journal=journal,
                                                   ledger=Ledger(con), config=config)
        pipeline.halt("startup", "start-up reconciliation")
        await StateReconciliation(pipeline).reconcile_on_startup()
        signal = Signal(signal_id=signal_id, exchange="nobitex", symbol="BTCIRT", side=Side(side),
                        amount=Decimal("0.001"), price=Decimal(price))
        if mode == "fused":
            rec = await pipeline.submit(signal)
        else:
            rec = await pipeline.execute_transaction(await pipeline.create_transaction(signal))
        print(msgspec.json.encode(rec).decode(), flush=True)
    journal.close()
    con.close()


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:8])
