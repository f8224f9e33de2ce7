"""The orders component in a real `hrkernel run` against the simulator over HTTP: start-up
reconciliation opens the ledger and enables trading; the CLI reads the journal and reconciles."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

pytestmark = pytest.mark.anyio

SIM_TOKEN = "orders-token-0001"


def _config(tmp_path: Path, base_url: str) -> Path:
    cfg = tmp_path / "hr.toml"
    cfg.write_text(f"""
[kernel]
instance_id = "hr-orders"
data_dir = "{tmp_path / 'data'}"

[dashboard]
enabled = false

[exchanges.nobitex]
type = "nobitex"
token = "{SIM_TOKEN}"
base_url = "{base_url}"
rate_limit = false

[orders]
reconcile_interval = "1s"
orphan_policy = "adopt"
""")
    return cfg


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hrkernel", *args], capture_output=True, text=True, timeout=60)


async def test_kernel_reconciles_on_startup_then_the_cli_reads_it(sim: Any, kernel_process: Any, tmp_path: Path) -> None:
    cfg = _config(tmp_path, sim.base_url)
    proc = kernel_process(cfg)
    event = await anyio.to_thread.run_sync(lambda: proc.wait_for("orders_trading_enabled", timeout=30))
    assert event
    await anyio.to_thread.run_sync(lambda: proc.wait_for("reconciled", timeout=10))
    proc.signal(signal.SIGTERM)
    assert await anyio.to_thread.run_sync(lambda: proc.wait(timeout=20)) == 0

    listed = await anyio.to_thread.run_sync(lambda: _cli("orders", "list", "--config", str(cfg)))
    assert listed.returncode == 0 and "no orders" in listed.stdout, listed.stderr
    dry = await anyio.to_thread.run_sync(lambda: _cli("reconcile", str(cfg), "--dry-run"))
    assert dry.returncode == 0, dry.stderr
    assert "nobitex: DRY RUN" in dry.stdout and "clean" in dry.stdout, dry.stdout
    # --json: stdout is the report alone (it parses); the log lines went to stderr.
    as_json = await anyio.to_thread.run_sync(lambda: _cli("reconcile", str(cfg), "--dry-run", "--json"))
    assert as_json.returncode == 0, as_json.stderr
    [report] = json.loads(as_json.stdout)
    assert report["exchange"] == "nobitex" and report["dry_run"] is True and report["discrepancies"] == []
    assert '"reconciled"' in as_json.stderr or "reconciled" in as_json.stderr
    missing = await anyio.to_thread.run_sync(lambda: _cli("orders", "show", "nope", "--config", str(cfg)))
    assert missing.returncode == 1 and "no order 'nope'" in missing.stderr


async def test_the_cli_reads_the_journal_while_the_kernel_runs(sim: Any, sim_admin: Any, exchange: Any,
                                                               kernel_process: Any, tmp_path: Path,
                                                               unused_port: Any, monkeypatch: Any) -> None:
    """`orders list|show` work with `hrkernel run` up (the kernel holds the journal file
    exclusively, unix-excl VFS: the CLI finds it locked and asks the kernel's API), and
    `reconcile --dry-run` asks the running kernel (it holds the ledger's DuckDB file)."""
    import json
    import os
    from decimal import Decimal

    from hrkernel.exchange import OrderRequest, OrderType, Side

    cfg = _config(tmp_path, sim.base_url)
    port = unused_port()
    cfg.write_text(cfg.read_text().replace("[dashboard]\nenabled = false",
                                           f'[dashboard]\nport = {port}\ntoken = "${{DASH_TOKEN}}"'))
    token_env = {"DASH_TOKEN": "dash-token-for-the-cli-test"}
    monkeypatch.setenv("DASH_TOKEN", token_env["DASH_TOKEN"])  # the CLI runs read the same config
    proc = kernel_process(cfg, env=token_env)
    assert await anyio.to_thread.run_sync(lambda: proc.wait_for("orders_trading_enabled", timeout=30))
    mid = Decimal((await sim_admin.get("/_sim/markets/BTCIRT")).json()["mid"])
    resting = await exchange.place_order(OrderRequest(
        symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT, amount=Decimal("0.001"),
        price=(mid * Decimal("0.95") / 10).to_integral_value() * 10, client_order_id="operator-placed-1"))
    # the running kernel's reconciliation (every second) adopts it into the journal
    for _ in range(200):
        listed = await anyio.to_thread.run_sync(lambda: _cli("orders", "list", "--json", "--config", str(cfg)))
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        if rows:
            break
        await anyio.sleep(0.1)
    assert [r["exchange_order_id"] for r in rows] == [resting.exchange_id]
    shown = await anyio.to_thread.run_sync(lambda: _cli("orders", "show", resting.exchange_id, "--json",
                                                        "--config", str(cfg)))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["order"]["state"] == "ACKED"
    assert [e["state"] for e in json.loads(shown.stdout)["history"]][-1] == "ACKED"
    # the file itself is the kernel's alone while it runs: that is why the CLI asked the kernel
    import sqlite3

    from hrkernel.orders.journal_store import connect, is_locked
    with pytest.raises(sqlite3.OperationalError) as locked:
        connect(tmp_path / "data" / "orders.journal.sqlite", readonly=True).execute("SELECT 1 FROM orders")
    assert is_locked(locked.value)
    text = await anyio.to_thread.run_sync(lambda: _cli("orders", "show", resting.exchange_id, "--config", str(cfg)))
    assert text.returncode == 0 and "history:" in text.stdout and resting.exchange_id in text.stdout, text.stderr
    missing = await anyio.to_thread.run_sync(lambda: _cli("orders", "show", "nope", "--config", str(cfg)))
    assert missing.returncode == 1 and "no order 'nope'" in missing.stderr, missing.stderr
    dry = await anyio.to_thread.run_sync(lambda: subprocess.run(
        [sys.executable, "-m", "hrkernel", "reconcile", str(cfg), "--dry-run", "--json"], capture_output=True,
        text=True, timeout=90, env={**os.environ, **token_env}))
    assert dry.returncode == 0, dry.stderr[-2000:]
    (report,) = json.loads(dry.stdout)
    assert report["dry_run"] is True and report["exchange"] == "nobitex"
    assert resting.exchange_id in report["open_orders"] and report["orphans"] == []  # it knows the adopted order
    assert proc.proc.poll() is None  # the kernel was never disturbed
    proc.signal(signal.SIGTERM)
    assert await anyio.to_thread.run_sync(lambda: proc.wait(timeout=20)) == 0
