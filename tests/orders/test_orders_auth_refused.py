"""An exchange that refuses the kernel's token: a real `hrkernel run` against the simulator over
HTTP with a wrong token raises a critical alert, stays halted, and is never reported healthy."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import anyio
import duckdb
import httpx
import pytest

pytestmark = pytest.mark.anyio

WRONG_TOKEN = "wrong-token-7f3e2d1c"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, base_url: str, port: int) -> Path:
    cfg = tmp_path / "hr.toml"
    cfg.write_text(f"""
[kernel]
instance_id = "hr-refused"
data_dir = "{tmp_path / 'data'}"

[health]
default_interval = "200ms"

[ha.health]
hysteresis = 1

[dashboard]
host = "127.0.0.1"
port = {port}

[alerts]
group_wait = "0s"

[exchanges.nobitex]
type = "nobitex"
token = "${{NOBITEX_TOKEN}}"
base_url = "{base_url}"
rate_limit = false

[orders]
reconcile_interval = "1s"
""")
    return cfg


async def _get(url: str) -> Any:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
        response.raise_for_status()
        return response.json()


async def test_a_refused_token_raises_a_critical_alert_and_the_kernel_is_not_healthy(
    sim: Any, kernel_process: Any, clean_env: dict[str, str], tmp_path: Path
) -> None:
    port = _free_port()
    cfg = _config(tmp_path, sim.base_url, port)
    proc = kernel_process(cfg, env={**clean_env, "NOBITEX_TOKEN": WRONG_TOKEN})
    await anyio.to_thread.run_sync(lambda: proc.wait_for("ready", timeout=30))
    base = f"http://127.0.0.1:{port}"
    status: dict[str, Any] = {}
    components: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = await _get(f"{base}/api/status")
        if status.get("health") == "unhealthy":
            break
        await anyio.sleep(0.2)
    # The one overall state (hrkernel.web.status): halted (start-up reconciliation never
    # finished), naming the unhealthy orders check; the worst health-check status is `health`.
    assert status.get("health") == "unhealthy", status
    assert status.get("overall") == "halted", status
    assert "health check orders unhealthy" in status["why"], status
    components = (await _get(f"{base}/api/components"))["data"]
    orders = next(c for c in components if c["name"] == "orders")
    assert orders["health"] == "unhealthy", orders
    assert "refused" in orders["detail"] and WRONG_TOKEN not in orders["detail"], orders
    proc.signal(signal.SIGTERM)
    assert await anyio.to_thread.run_sync(lambda: proc.wait(timeout=20)) == 0
    with duckdb.connect(str(tmp_path / "data" / "alerts.duckdb"), read_only=True) as db:
        rows = db.execute("SELECT source, level, title, message FROM alerts").fetchall()
    critical = [r for r in rows if r[1] == "critical" and r[0] == "exchange"]
    assert critical, rows
    assert any("refused" in r[2] for r in critical), critical
    assert WRONG_TOKEN not in json.dumps(rows)
    assert "orders_trading_enabled" not in proc.output()  # still halted: safe
