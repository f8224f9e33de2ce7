"""Start-up grace of health checks, in a real `hrkernel run` whose data source polls a separate
`hrkernel sim serve` process with its market feed silenced (so the source has no data at all)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.process import sim_process
from tests.helpers.process import wait_until as _wait

ADMIN = {"X-Sim-Admin-Token": "sim-admin"}


@pytest.fixture
def silent_sim(unused_port: Callable[[], int]) -> Iterator[str]:
    with sim_process(unused_port()) as url:
        httpx.post(f"{url}/_sim/markets/BTCIRT", headers=ADMIN, json={"feed": "silent"}, timeout=5).raise_for_status()
        yield url


def _config(tmp_path: Path, sim: str, web: int, health: str = "") -> Path:
    config = tmp_path / "hr.toml"
    config.write_text(f"""
[kernel]
data_dir = "{tmp_path / 'data'}"
[dashboard]
port = {web}
[health]
default_interval = "200ms"
{health}
[health.checks.duckdb_writable]
enabled = false
[exchanges.main]
type = "nobitex"
token = "sim-token-default"
base_url = "{sim}"
rate_limit = false
[orders]
enabled = false
[datasources.market]
type = "nobitex"
exchange = "main"
symbols = ["BTCIRT"]
interval = "200ms"
max_age = "2s"
""")
    return config


def _reports(kernel: Any, check: str) -> list[str]:
    return [e["status"] for e in kernel.events if e.get("event") == "health_status" and e.get("check") == check]


def test_a_data_source_without_data_yet_is_not_reported_during_its_startup_grace(
    silent_sim: str, kernel_process: Callable[..., Any], tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    web = unused_port()
    kernel = kernel_process(_config(tmp_path, silent_sim, web), cwd=tmp_path)  # default grace: 30s
    kernel.wait_for("ready", timeout=30)
    starting = kernel.wait_for("health_check_starting", check="datasource:market", timeout=10)
    assert starting["detail"] == "no data received yet"
    time.sleep(2.0)  # ten check intervals with no data
    assert _reports(kernel, "datasource:market") == []
    ready = httpx.get(f"http://127.0.0.1:{web}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    assert "health check failing" not in kernel.output()
    # The first data ends the grace at once: the check is reported healthy.
    httpx.post(f"{silent_sim}/_sim/markets/BTCIRT", headers=ADMIN, json={"feed": "live"}, timeout=5).raise_for_status()
    kernel.wait_for("health_status", check="datasource:market", status="healthy", timeout=15)


def test_past_its_grace_a_source_still_without_data_is_reported_unhealthy(
    silent_sim: str, kernel_process: Callable[..., Any], tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    web = unused_port()
    config = _config(tmp_path, silent_sim, web, health='startup_grace_for = { "datasource:market" = "1s" }')
    kernel = kernel_process(config, cwd=tmp_path)
    kernel.wait_for("ready", timeout=30)
    began = time.monotonic()
    kernel.wait_for("health_status", check="datasource:market", status="unhealthy", timeout=15)
    assert time.monotonic() - began < 10
    assert kernel.wait_for("health_check_starting", check="datasource:market")
    _wait(lambda: httpx.get(f"http://127.0.0.1:{web}/readyz", timeout=5).status_code == 503, timeout=10)
