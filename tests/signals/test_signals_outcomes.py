"""Every signal has an outcome an operator can see: accepted, ordered, refused (why), through
`hrkernel signals`, /api/signals and the alerts; stale signals and signals under the kill switch
are refused and recorded, not traded later. A real kernel subprocess on the embedded simulator."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.helpers.process import hr, wait_until

ADMIN = {"X-Sim-Admin-Token": "sim-admin"}


@pytest.fixture
def kernel(kernel_process: Callable[..., object], tmp_path: Path, unused_port: Callable[[], int]) -> tuple[object, Path, str, str]:
    web, sim = unused_port(), unused_port()
    config = tmp_path / "hr.toml"
    config.write_text(f'[kernel]\ndata_dir = "{tmp_path / "data"}"\n[dashboard]\nport = {web}\n'
                      f'[exchanges.paper]\ntype = "sim"\n[exchanges.paper.simulator]\nport = {sim}\n'
                      '[orders]\nsignal_max_age = "30s"\n')
    k = kernel_process(config, cwd=tmp_path)
    k.wait_for("orders_trading_enabled", timeout=30)  # type: ignore[attr-defined]
    return k, config, f"http://127.0.0.1:{web}", f"http://127.0.0.1:{sim}"


def outcomes(config: Path) -> dict[str, dict[str, object]]:
    out = hr("signals", str(config), "--json", cwd=config.parent)
    assert out.returncode == 0, out.stderr
    return {row["signal_id"]: row for row in json.loads(out.stdout)}


def sim_orders(sim: str) -> int:
    return len(httpx.get(f"{sim}/_sim/orders", headers=ADMIN, timeout=5).json()["orders"])


def test_a_refusal_after_the_200_is_recorded_shown_and_alerted(kernel: tuple[object, Path, str, str]) -> None:
    k, config, web, _ = kernel
    ok = hr("signal", "buy", "BTCIRT", "0.001", "--id", "good", str(config), cwd=config.parent)
    tiny = hr("signal", "buy", "BTCIRT", "0.0000001", "--id", "tiny", str(config), cwd=config.parent)
    assert ok.returncode == 0 and tiny.returncode == 0 and "accepted" in tiny.stdout
    wait_until(lambda: outcomes(config).get("-:tiny", {}).get("status") == "refused")
    wait_until(lambda: outcomes(config).get("-:good", {}).get("status") == "ordered")
    rows = outcomes(config)
    assert "rounds down to 0" in str(rows["-:tiny"]["reason"])
    assert str(rows["-:good"]["client_order_id"]).startswith("hr")
    text = hr("signals", str(config), cwd=config.parent).stdout
    assert "-:tiny  buy BTCIRT 0.0000001  refused: nothing to buy: the amount rounds down to 0" in text
    api = httpx.get(f"{web}/api/signals", timeout=5).json()["data"]
    assert {r["signal_id"]: r["status"] for r in api} == {"-:tiny": "refused", "-:good": "ordered"}

    def alerted() -> bool:
        alerts = httpx.get(f"{web}/api/alerts", timeout=5).json()["data"]["alerts"]
        return any(a["title"] == "signal refused after it was accepted" and a["level"] == "warning"
                   and a["context"].get("signal_id") == "-:tiny" for a in alerts)
    wait_until(alerted)


def test_a_stale_signal_is_refused_with_its_age(kernel: tuple[object, Path, str, str]) -> None:
    k, config, web, sim = kernel
    token = (config.parent / "data" / "admin.token").read_text().strip()
    sent = (datetime.now(UTC) - timedelta(seconds=120)).isoformat()  # within the webhook's max_lag
    r = httpx.post(f"{web}/api/signals", headers={"Authorization": f"Bearer {token}"}, timeout=5,
                   json={"ticker": "BTCIRT", "action": "buy", "amount": "0.001", "id": "old", "time": sent})
    assert r.status_code == 200, r.text
    wait_until(lambda: outcomes(config).get("-:old", {}).get("status") == "refused")
    assert "stale: the signal is 12" in str(outcomes(config)["-:old"]["reason"])
    assert sim_orders(sim) == 0


def test_signals_under_the_kill_switch_are_refused_not_traded_later(kernel: tuple[object, Path, str, str]) -> None:
    k, config, web, sim = kernel
    token = (config.parent / "data" / "admin.token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{web}/api/killswitch", json={"on": True, "reason": "incident"}, headers=auth).status_code == 200
    hr("signal", "buy", "BTCIRT", "0.001", "--id", "during", str(config), cwd=config.parent)
    wait_until(lambda: outcomes(config).get("-:during", {}).get("status") == "refused")
    assert "kill switch is on (incident)" in str(outcomes(config)["-:during"]["reason"])
    assert httpx.post(f"{web}/api/killswitch", json={"on": False}, headers=auth).status_code == 200
    hr("signal", "buy", "BTCIRT", "0.001", "--id", "after", str(config), cwd=config.parent)
    wait_until(lambda: outcomes(config).get("-:after", {}).get("status") == "ordered")
    wait_until(lambda: sim_orders(sim) == 1)
    time.sleep(1.0)
    assert sim_orders(sim) == 1  # the refused one never went out
