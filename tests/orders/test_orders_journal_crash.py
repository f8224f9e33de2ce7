"""SIGKILL during a group commit with 16 orders in flight (a real process, a real kill).

Whatever moment the process dies at, every order the journal acknowledged (``create`` returned)
is in the journal, no order was sent without its record, and every journaled order is whole
(PREPARED and SUBMITTING, written in one transaction) with ``seq`` gap-free: a batch is durable
entirely or not at all. The fault points fire only in a batch of more than one write: a journal
that committed each order alone would never reach them and the tests would fail (the worker
runs out its rounds and exits 0 instead of dying)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("journal_crash_worker.py")


def _run(tmp_path: Path, fault: str | None, kill_after: float | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "HRKERNEL_FAULT_POINT": fault or ""}
    proc = subprocess.Popen([sys.executable, str(WORKER), str(tmp_path / "j.sqlite"), str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if kill_after is not None:
        deadline = time.monotonic() + 60
        acked = tmp_path / "acked"
        # killed once it has acknowledged orders for a while (mid-stream, at no chosen point)
        while time.monotonic() < deadline and (not acked.exists() or acked.stat().st_size < 34 * 16 * 5):
            time.sleep(0.01)
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _check(tmp_path: Path) -> tuple[set[str], set[str]]:
    """Every acknowledged or sent order is journaled and whole; seq gap-free. Returns (journaled, acked)."""
    acked = set((tmp_path / "acked").read_text().split()) if (tmp_path / "acked").exists() else set()
    sent = set((tmp_path / "sent").read_text().split()) if (tmp_path / "sent").exists() else set()
    con = sqlite3.connect(tmp_path / "j.sqlite")  # recovery is SQLite's: the WAL is replayed on open
    try:
        orders = {r[0]: r[1] for r in con.execute("SELECT client_order_id, state FROM orders")}
        events = con.execute("SELECT seq, client_order_id, state FROM order_events ORDER BY seq").fetchall()
    finally:
        con.close()
    assert acked <= set(orders), f"acknowledged but lost: {sorted(acked - set(orders))[:5]}"
    assert sent <= set(orders), f"sent without a journal record: {sorted(sent - set(orders))[:5]}"
    assert sent <= acked
    assert [e[0] for e in events] == list(range(1, len(events) + 1))
    per_order: dict[str, list[str]] = {}
    for _seq, coid, state in events:
        per_order.setdefault(coid, []).append(state)
    assert set(per_order) == set(orders)
    assert all(states == ["PREPARED", "SUBMITTING"] for states in per_order.values())
    assert all(state == "SUBMITTING" for state in orders.values())
    return set(orders), acked


@pytest.mark.parametrize("fault", ["journal_group_before_commit", "journal_group_after_commit"])
def test_sigkill_inside_a_group_commit_loses_nothing_acknowledged_and_leaves_no_half_batch(
        tmp_path: Path, fault: str) -> None:
    done = _run(tmp_path, fault)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    journaled, acked = _check(tmp_path)
    if fault == "journal_group_before_commit":
        # the batch being committed is gone entirely; nothing of it had been acknowledged
        assert journaled == acked
    else:
        # the batch committed and nobody was told: durable, never acknowledged, never sent
        assert len(journaled - acked) >= 2


def test_sigkill_at_any_moment_with_16_orders_in_flight_loses_nothing_acknowledged(tmp_path: Path) -> None:
    done = _run(tmp_path, None, kill_after=0.05)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    journaled, acked = _check(tmp_path)
    assert len(acked) >= 16 * 5 and len(journaled) - len(acked) <= 16 * 2
