"""A small process for the group-commit crash tests: rounds of 16 concurrent orders, forever.

    python journal_crash_worker.py JOURNAL LOG_DIR

Each order is journaled PREPARED+SUBMITTING (awaited: durable), then written to ``acked`` (the
journal said it is durable), then "sent": written to ``sent``. Both files are appended with
``O_APPEND`` by this process and so survive its SIGKILL (the page cache is the kernel's). The
test kills it (``HRKERNEL_FAULT_POINT=journal_group_*``, or SIGKILL from outside at any moment)
and then compares the files with the journal.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from pathlib import Path

import anyio

from hrkernel.orders.journal import OrderJournal, OrderRecord, OrderState

CONCURRENT = 16


async def main(journal_path: str, log_dir: str) -> None:
    journal = OrderJournal(journal_path)
    acked = os.open(Path(log_dir) / "acked", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sent = os.open(Path(log_dir) / "sent", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    async def order(i: int) -> None:
        coid = f"hr{i:030d}"
        await journal.create(OrderRecord(
            client_order_id=coid, signal_id=f"sig-{i}", exchange="x", symbol="BTCIRT", base="BTC", quote="IRT",
            side="buy", type="limit", amount=Decimal("0.001"), price=Decimal("100"), state=OrderState.PREPARED),
            then=OrderState.SUBMITTING, attempts=1, fencing_token=1)
        os.write(acked, f"{coid}\n".encode())
        os.write(sent, f"{coid}\n".encode())  # the request leaves only after the durable write

    for r in range(1000):
        async with anyio.create_task_group() as tg:
            for k in range(CONCURRENT):
                tg.start_soon(order, r * CONCURRENT + k)
    journal.close()


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:3])
