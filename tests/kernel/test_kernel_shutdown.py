"""The graceful shutdown sequence in real `hrkernel run` processes trading on the Nobitex simulator
(a separate `hrkernel sim serve` process, so the exchange outlives the kernel and shows what was
left on it): each cancel policy with a real resting order, a cancel stage that times out against
a hung exchange, a leader handing over to a live standby, and the emergency cancel-all."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.process import sim_process, wait_until

SECRET = "wh-secret-shutdown"
DASH_TOKEN = "dash-token-shutdown-1"
ADMIN = {"X-Sim-Admin-Token": "sim-admin"}


@pytest.fixture
def sim(unused_port: Callable[[], int]) -> Iterator[str]:
    with sim_process(unused_port()) as url:
        yield url


def sim_orders(sim: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{sim}/_sim/orders", headers=ADMIN, timeout=5).json()
    return body["orders"] if isinstance(body, dict) else body


def _status(order: dict[str, Any]) -> str:
    return str(order.get("status", "")).lower()


def write_config(tmp_path: Path, name: str, sim: str, web: int, *, shutdown: str = "", ha: str = "",
                 webhook: bool = True) -> Path:
    config = tmp_path / f"{name}.toml"
    config.write_text(f"""
[kernel]
instance_id = "{name}"
data_dir = "{tmp_path / name}"
[dashboard]
port = {web}
token = "{DASH_TOKEN}"
[webhook]
enabled = {"true" if webhook else "false"}
secret = "{SECRET}"
exchange = "main"
[exchanges.main]
type = "nobitex"
token = "sim-token-default"
base_url = "{sim}"
rate_limit = false
[orders]
reconcile_interval = "1s"
[health.checks.duckdb_writable]
enabled = false
[shutdown]
{shutdown}
{ha}
""")
    return config


def place_resting_buy(web: int, sim: str, signal_id: str) -> dict[str, Any]:
    """A limit buy 5% under the market through the kernel's webhook; returns it once the exchange has it."""
    mid = Decimal(str(httpx.get(f"{sim}/_sim/markets/BTCIRT", headers=ADMIN, timeout=5).json()["mid"]))
    price = int(mid * Decimal("0.95")) // 10_000 * 10_000
    alert = {"secret": SECRET, "ticker": "BTCIRT", "action": "buy", "amount": "0.001", "order_type": "limit",
             "price": str(price), "id": signal_id}
    answer = httpx.post(f"http://127.0.0.1:{web}/webhooks/tradingview", json=alert, timeout=5)
    assert answer.status_code == 200, answer.text
    wait_until(lambda: any(_status(o) == "active" for o in sim_orders(sim)))
    return next(o for o in sim_orders(sim) if _status(o) == "active")


def stages(kernel: Any) -> dict[str, dict[str, Any]]:
    return {e["stage"]: e for e in kernel.events if e.get("event") == "shutdown_stage"}


def stop(kernel: Any, timeout: float = 60) -> dict[str, dict[str, Any]]:
    kernel.signal(signal.SIGTERM)
    assert kernel.wait(timeout=timeout) == 0, kernel.output()
    return stages(kernel)


def journal_states(config: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "hrkernel", "orders", "list", "--config", str(config), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [r["state"] for r in json.loads(out.stdout)]


@pytest.mark.parametrize("policy", ["always", "unless_standby"])
def test_a_resting_order_is_cancelled_on_shutdown_when_no_standby_takes_over(
    policy: str, sim: str, kernel_process: Callable[..., Any], tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    web = unused_port()
    config = write_config(tmp_path, "hr-a", sim, web, shutdown=f'cancel_orders = "{policy}"')
    kernel = kernel_process(config, cwd=tmp_path)
    kernel.wait_for("orders_trading_enabled", timeout=30)
    resting = place_resting_buy(web, sim, f"rest-{policy}")

    done = stop(kernel)

    assert [_status(o) for o in sim_orders(sim) if o["id"] == resting["id"]] == ["canceled"]
    assert done["cancel_orders"]["outcome"] == "ok"
    assert "done=1" in done["cancel_orders"]["detail"]
    order = [e["stage"] for e in kernel.events if e.get("event") == "shutdown_stage"]
    assert order == ["stop_intake", "cancel_orders", "close_positions", "flush", "release_and_close"]
    assert done["close_positions"]["outcome"] == "skipped"
    assert all(done[s]["outcome"] == "ok" for s in ("stop_intake", "flush", "release_and_close"))
    # The cancel was verified before the journal was flushed: nothing is left open in it.
    assert journal_states(config) == ["VERIFIED"]


def test_policy_never_leaves_the_resting_order_on_the_exchange(
    sim: str, kernel_process: Callable[..., Any], tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    web = unused_port()
    config = write_config(tmp_path, "hr-a", sim, web, shutdown='cancel_orders = "never"')
    kernel = kernel_process(config, cwd=tmp_path)
    kernel.wait_for("orders_trading_enabled", timeout=30)
    resting = place_resting_buy(web, sim, "rest-never")

    done = stop(kernel)

    assert [_status(o) for o in sim_orders(sim) if o["id"] == resting["id"]] == ["active"]
    assert done["cancel_orders"]["outcome"] == "skipped" and "never" in done["cancel_orders"]["detail"]


def test_a_cancel_stage_stuck_on_a_hung_exchange_times_out_and_shutdown_goes_on(
    sim: str, kernel_process: Callable[..., Any], tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    web = unused_port()
    config = write_config(tmp_path, "hr-a", sim, web, shutdown='cancel_timeout = "1s"\nstep_timeout = "2s"')
    kernel = kernel_process(config, cwd=tmp_path)
    kernel.wait_for("orders_trading_enabled", timeout=30)
    resting = place_resting_buy(web, sim, "rest-hung")
    # Every cancel request hangs on the exchange side (held unanswered).
    httpx.put(f"{sim}/_sim/faults", headers=ADMIN, json={"endpoints": {"orders_cancel": {"hang": 1.0}}},
              timeout=5).raise_for_status()

    began = time.monotonic()
    done = stop(kernel)

    assert done["cancel_orders"]["outcome"] == "timeout"
    assert 0.9 <= done["cancel_orders"]["duration_ms"] / 1000 < 5
    # The stages after it still ran: the journal was flushed and the lease released.
    assert done["flush"]["outcome"] == "ok" and done["release_and_close"]["outcome"] == "ok"
    assert time.monotonic() - began < 30
    assert [_status(o) for o in sim_orders(sim) if o["id"] == resting["id"]] == ["active"]
    assert any(e.get("event") == "shutdown_stage" and e.get("level") == "error" for e in kernel.events)


def test_a_leader_with_a_live_standby_leaves_its_orders_and_the_standby_cancels_them_later(
    sim: str, redis_server: Any, kernel_process: Callable[..., Any], tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    ha = f"""[ha]
backend = "redis"
redis_url = "{redis_server.url}"
key_prefix = "sd"
lease_ttl = "1s"
renew_interval = "200ms"
margin = "300ms"
"""
    web_a, web_b = unused_port(), unused_port()
    leader = kernel_process(write_config(tmp_path, "hr-a", sim, web_a, ha=ha), cwd=tmp_path)
    leader.wait_for("orders_trading_enabled", timeout=30)
    standby_config = write_config(tmp_path, "hr-b", sim, web_b, ha=ha, webhook=False,
                                  shutdown='cancel_orders = "always"')
    standby = kernel_process(standby_config, cwd=tmp_path)
    standby.wait_for("ready", timeout=30)
    resting = place_resting_buy(web_a, sim, "rest-ha")

    done = stop(leader)

    assert done["cancel_orders"]["outcome"] == "skipped"
    assert "live standby hr-b" in done["cancel_orders"]["detail"]
    assert [_status(o) for o in sim_orders(sim) if o["id"] == resting["id"]] == ["active"]
    # The standby takes over with the replicated journal and manages the order...
    standby.wait_for("trading_enabled", timeout=30)
    time.sleep(1.5)  # a reconciliation pass or two: the order is known, so it is not an orphan
    assert [_status(o) for o in sim_orders(sim) if o["id"] == resting["id"]] == ["active"]
    # ...and, leader now with nobody behind it, cancels it when it stops.
    done = stop(standby)
    assert done["cancel_orders"]["outcome"] == "ok", done
    assert [_status(o) for o in sim_orders(sim) if o["id"] == resting["id"]] == ["canceled"]


def test_cancel_all_from_the_cli_is_token_protected_and_audited(
    sim: str, kernel_process: Callable[..., Any], tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    web = unused_port()
    config = write_config(tmp_path, "hr-a", sim, web, shutdown='cancel_orders = "never"')
    kernel = kernel_process(config, cwd=tmp_path)
    kernel.wait_for("orders_trading_enabled", timeout=30)
    # The order-execution health check runs in every kernel that trades.
    kernel.wait_for("health_status", check="orders_execution", status="healthy", timeout=15)
    resting = place_resting_buy(web, sim, "rest-cli")

    refused = httpx.post(f"http://127.0.0.1:{web}/api/orders/cancel-all", json={}, timeout=10,
                         headers={"Authorization": "Bearer wrong-token-123"})
    assert refused.status_code == 403
    assert [_status(o) for o in sim_orders(sim) if o["id"] == resting["id"]] == ["active"]

    out = subprocess.run([sys.executable, "-m", "hrkernel", "orders", "cancel-all", str(config), "--yes",
                          "--reason", "test emergency"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "cancelled 1" in out.stdout
    assert DASH_TOKEN not in out.stdout + out.stderr
    assert [_status(o) for o in sim_orders(sim) if o["id"] == resting["id"]] == ["canceled"]

    entries = httpx.get(f"http://127.0.0.1:{web}/api/audit", timeout=5).json()["data"]
    seen = [(e["action"], e["outcome"]) for e in entries]
    assert ("orders_cancel_all", "ok") in seen and ("orders_cancel_all", "refused") in seen
    stop(kernel)
    assert DASH_TOKEN not in kernel.output()


def test_close_positions_flattens_what_this_kernel_bought_with_a_market_order(
    sim: str, kernel_process: Callable[..., Any], tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    web = unused_port()
    config = write_config(tmp_path, "hr-a", sim, web, shutdown='cancel_orders = "always"\nclose_positions = true')
    kernel = kernel_process(config, cwd=tmp_path)
    kernel.wait_for("orders_trading_enabled", timeout=30)
    alert = {"secret": SECRET, "ticker": "BTCIRT", "action": "buy", "amount": "0.002", "id": "pos-1"}
    assert httpx.post(f"http://127.0.0.1:{web}/webhooks/tradingview", json=alert, timeout=5).status_code == 200
    wait_until(lambda: [_status(o) for o in sim_orders(sim)] == ["done"])

    done = stop(kernel)

    assert done["close_positions"]["outcome"] == "ok" and "done=1" in done["close_positions"]["detail"], done
    sells = [o for o in sim_orders(sim) if str(o.get("type", "")).lower() == "sell"]
    assert len(sells) == 1 and Decimal(str(sells[0]["matchedAmount"])) == Decimal("0.002"), sim_orders(sim)
