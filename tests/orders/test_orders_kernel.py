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
