"""The whole order path in a running kernel: TradingView webhook → bus → pipeline → exchange.

A real `hrkernel run` subprocess trades on the embedded simulator (exchange type `sim`) over
real HTTP; the simulator's admin log is the ground truth for what reached the exchange.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

SECRET = "wh-secret-7d1f"




@pytest.fixture
def trading_kernel(
    kernel_process: Callable[..., object], tmp_path: Path, unused_port: Callable[[], int]
) -> tuple[object, str, str]:
    web, sim = unused_port(), unused_port()
    config = tmp_path / "hr.toml"
    config.write_text(
        f"""
[kernel]
data_dir = "{tmp_path / 'data'}"
[dashboard]
port = {web}
[webhook]
enabled = true
secret = "${{HR_WEBHOOK_SECRET}}"
exchange = "paper"
[exchanges.paper]
type = "sim"
[exchanges.paper.simulator]
port = {sim}
"""
    )
    kernel = kernel_process(config, env={"HR_WEBHOOK_SECRET": SECRET}, cwd=tmp_path)
    kernel.wait_for("ready", timeout=20)
    kernel.wait_for("orders_trading_enabled", timeout=20)
    return kernel, f"http://127.0.0.1:{web}", f"http://127.0.0.1:{sim}"


def sim_orders(sim: str) -> list[dict[str, object]]:
    response = httpx.get(f"{sim}/_sim/orders", headers={"X-Sim-Admin-Token": "sim-admin"}, timeout=5)
    response.raise_for_status()
    body = response.json()
    return body["orders"] if isinstance(body, dict) else body


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError("condition not met")


def test_a_tradingview_signal_becomes_exactly_one_order_even_when_delivered_twice(
    trading_kernel: tuple[object, str, str],
) -> None:
    kernel, web, sim = trading_kernel
    alert = {"secret": SECRET, "ticker": "NOBITEX:BTCIRT", "action": "buy", "amount": "0.001", "id": "e2e-1"}
    first = httpx.post(f"{web}/webhooks/tradingview", json=alert, timeout=5)
    assert first.status_code == 200, first.text
    wait_until(lambda: len(sim_orders(sim)) == 1)
    again = httpx.post(f"{web}/webhooks/tradingview", json=alert, timeout=5)
    assert again.status_code == 200
    time.sleep(1.0)
    orders = sim_orders(sim)
    assert len(orders) == 1, orders
    kernel.signal(signal.SIGTERM)
    assert kernel.wait(timeout=15) == 0


def test_a_bad_signal_is_refused_and_reaches_no_exchange(trading_kernel: tuple[object, str, str]) -> None:
    kernel, web, sim = trading_kernel
    wrong = httpx.post(f"{web}/webhooks/tradingview",
                       json={"secret": "nope", "ticker": "BTCIRT", "action": "buy", "amount": "1"}, timeout=5)
    assert wrong.status_code == 401
    tiny = httpx.post(f"{web}/webhooks/tradingview",
                      json={"secret": SECRET, "ticker": "BTCIRT", "action": "buy", "amount": "0.0000001", "id": "t"},
                      timeout=5)
    assert tiny.status_code == 200  # accepted by the intake, refused by the pipeline's checks
    kernel.wait_for("signal_rejected", timeout=10)
    assert sim_orders(sim) == []
    kernel.signal(signal.SIGTERM)
    assert kernel.wait(timeout=15) == 0


def test_a_signal_accepted_before_a_crash_is_traded_exactly_once_after_restart(
    kernel_process: Callable[..., object], tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    """SIGKILL after the webhook answered 200 but before the order was journaled: the inbox
    replays the signal on restart and the exchange gets exactly one order."""
    import subprocess
    import sys

    sim_port, web = unused_port(), unused_port()
    sim_proc = subprocess.Popen([sys.executable, "-m", "hrkernel", "sim", "serve", "--port", str(sim_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sim = f"http://127.0.0.1:{sim_port}"
        wait_until(lambda: _up(sim))
        config = tmp_path / "hr.toml"
        config.write_text(
            f"""
[kernel]
data_dir = "{tmp_path / 'data'}"
[dashboard]
port = {web}
[webhook]
enabled = true
secret = "${{HR_WEBHOOK_SECRET}}"
exchange = "main"
[exchanges.main]
type = "nobitex"
token = "${{HR_SIM_TOKEN}}"
base_url = "{sim}"
"""
        )
        env = {"HR_WEBHOOK_SECRET": SECRET, "HR_SIM_TOKEN": "sim-token-default"}
        doomed = kernel_process(config, env={**env, "HRKERNEL_FAULT_POINT": "signal_received"}, cwd=tmp_path)
        doomed.wait_for("orders_trading_enabled", timeout=20)
        alert = {"secret": SECRET, "ticker": "BTCIRT", "action": "buy", "amount": "0.001", "id": "crash-1"}
        assert httpx.post(f"http://127.0.0.1:{web}/webhooks/tradingview", json=alert, timeout=5).status_code == 200
        assert doomed.wait(timeout=10) == -9
        assert sim_orders(sim) == []

        kernel = kernel_process(config, env=env, cwd=tmp_path)
        kernel.wait_for("orders_trading_enabled", timeout=20)
        wait_until(lambda: len(sim_orders(sim)) == 1)
        again = httpx.post(f"http://127.0.0.1:{web}/webhooks/tradingview", json=alert, timeout=5)
        assert again.json()["status"] == "duplicate"
        time.sleep(1.0)
        assert len(sim_orders(sim)) == 1
        kernel.signal(signal.SIGTERM)
        assert kernel.wait(timeout=15) == 0
    finally:
        sim_proc.kill()
        sim_proc.wait(10)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/options", timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def test_a_local_process_cannot_pose_as_tradingview_through_x_forwarded_for(
    kernel_process: Callable[..., object], tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    web = unused_port()
    config = tmp_path / "hr.toml"
    config.write_text(
        f'[kernel]\ndata_dir = "{tmp_path / "data"}"\n[dashboard]\nport = {web}\n'
        '[webhook]\nenabled = true\nsecret = "${HR_WEBHOOK_SECRET}"\nallowlist = true\n'
    )
    kernel = kernel_process(config, env={"HR_WEBHOOK_SECRET": SECRET}, cwd=tmp_path)
    kernel.wait_for("ready", timeout=20)
    alert = {"secret": SECRET, "ticker": "BTCIRT", "action": "buy", "amount": "0.001", "id": "spoof"}
    spoofed = httpx.post(f"http://127.0.0.1:{web}/webhooks/tradingview", json=alert,
                         headers={"X-Forwarded-For": "52.89.214.238"}, timeout=5)
    assert spoofed.status_code == 403, spoofed.text
    kernel.signal(signal.SIGTERM)
    assert kernel.wait(timeout=15) == 0
