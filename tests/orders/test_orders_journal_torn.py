"""A torn or corrupt last record: a process journals orders one by one and is SIGKILLed, then the
end of its write-ahead log is cut short (a write torn by the crash) or has a byte flipped (a
sector that came back wrong). On reopening, the last transaction — never acknowledged, its COMMIT
frame is the damaged one — is dropped and reported (``journal_torn_tail``); every order before
it is there, whole, ``seq`` gap-free, and the journal takes the next order at the next seq."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest
import structlog

from hrkernel.orders.journal import OrderJournal, OrderRecord, OrderState
from hrkernel.orders.journal_wal import wal_frames

pytestmark = pytest.mark.anyio

ORDERS = 12

_WORKER = f"""
import os, signal, sys
from decimal import Decimal
import anyio
from hrkernel.orders.journal import OrderJournal, OrderRecord, OrderState

async def main() -> None:
    journal = OrderJournal(sys.argv[1])
    acked = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for i in range({ORDERS}):
        await journal.create(OrderRecord(
            client_order_id=f"hr{{i:04d}}", signal_id=f"sig-{{i}}", exchange="x", symbol="BTCIRT", base="BTC",
            quote="IRT", side="buy", type="limit", amount=Decimal("0.001"), price=Decimal("100"),
            state=OrderState.PREPARED), then=OrderState.SUBMITTING, attempts=1, fencing_token=1)
        os.write(acked, f"hr{{i:04d}}\\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)  # no close: the WAL stays as the crash left it

anyio.run(main)
"""


def _crash(tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / "j.sqlite"
    done = subprocess.run([sys.executable, "-c", _WORKER, str(path), str(tmp_path / "acked")], capture_output=True,
                          timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    acked = (tmp_path / "acked").read_text().split()
    assert len(acked) == ORDERS
    return path, acked


def _tear(wal: Path) -> None:
    with wal.open("r+b") as f:
        f.truncate(wal.stat().st_size - 100)


def _flip_last_frame(wal: Path) -> None:
    with wal.open("r+b") as f:
        f.seek(wal.stat().st_size - 50)  # inside the page of the last frame (the commit frame)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("damage", [_tear, _flip_last_frame], ids=["torn", "corrupt"])
async def test_a_torn_or_corrupt_last_record_is_reported_and_dropped_and_nothing_before_it_is_lost(
        tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    path, acked = _crash(tmp_path)
    wal = Path(f"{path}-wal")
    frames = wal_frames(path)
    assert frames is not None and frames.frames >= ORDERS and frames.partial_bytes == 0
    damage(wal)

    with structlog.testing.capture_logs() as logs:
        journal = OrderJournal(path)
    try:
        warned = [e for e in logs if e["event"] == "journal_torn_tail"]
        assert len(warned) == 1 and warned[0]["dropped_frames"] >= 1 and warned[0]["dropped_bytes"] > 0, logs
        journaled = [r.client_order_id for r in journal.query(limit=100)]
        # the damaged transaction was the last order's (never acknowledged had the crash come a
        # moment earlier); every order before it is there, whole
        assert journaled == acked[:-1]
        for coid in journaled:
            assert [e.state for e in journal.history(coid)] == [OrderState.PREPARED, OrderState.SUBMITTING]
        assert journal.get(acked[-1]) is None
        rec = await journal.create(OrderRecord(
            client_order_id="hr-next", signal_id="sig-next", exchange="x", symbol="BTCIRT", base="BTC", quote="IRT",
            side="buy", type="limit", amount=D("0.001"), price=D("100"), state=OrderState.PREPARED))
        assert rec.state is OrderState.PREPARED
    finally:
        journal.close()
    con = sqlite3.connect(path)
    try:
        seqs = [r[0] for r in con.execute("SELECT seq FROM order_events ORDER BY seq")]
    finally:
        con.close()
    assert seqs == list(range(1, 2 * (ORDERS - 1) + 2))


def test_a_wal_left_whole_by_a_crash_is_replayed_without_a_report(tmp_path: Path) -> None:
    path, acked = _crash(tmp_path)
    assert wal_frames(tmp_path / "none.sqlite") is None
    with structlog.testing.capture_logs() as logs:
        journal = OrderJournal(path)
    try:
        assert not [e for e in logs if e["event"] == "journal_torn_tail"], logs
        assert [r.client_order_id for r in journal.query(limit=100)] == acked
    finally:
        journal.close()
