"""An operator at the terminal: signals, deposits/withdrawals and drift acknowledgement through a
running kernel (`hrkernel run` subprocess on the embedded simulator), authenticated by the local
admin token the kernel created under data_dir."""

from __future__ import annotations

import json
import signal
import stat
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.helpers.process import hr

ADMIN = {"X-Sim-Admin-Token": "sim-admin"}


@pytest.fixture
def paper_kernel(kernel_process: Callable[..., object], tmp_path: Path,
                 unused_port: Callable[[], int]) -> tuple[object, Path, str]:
    web, sim = unused_port(), unused_port()
    config = tmp_path / "hr.toml"
    config.write_text(
        f"""
[kernel]
data_dir = "{tmp_path / 'data'}"
[dashboard]
port = {web}
[exchanges.paper]
type = "sim"
[exchanges.paper.simulator]
port = {sim}
[orders]
reconcile_interval = "1s"
"""
    )
    kernel = kernel_process(config, cwd=tmp_path)
    kernel.wait_for("orders_trading_enabled", timeout=30)  # type: ignore[attr-defined]
    return kernel, config, f"http://127.0.0.1:{sim}"


def sim_btc(sim: str) -> Decimal:
    body = httpx.get(f"{sim}/_sim/balances", headers=ADMIN, timeout=5).json()
    return Decimal(body["balances"]["default"]["btc"]["balance"])


def test_a_signal_from_the_terminal_trades_once_and_shows_in_orders(
    paper_kernel: tuple[object, Path, str],
) -> None:
    kernel, config, sim = paper_kernel
    data = config.parent / "data"
    token_file = data / "admin.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    sent = hr("signal", "buy", "BTCIRT", "0.001", "--id", "t-1", str(config), cwd=config.parent)
    assert sent.returncode == 0, sent.stderr
    assert "accepted" in sent.stdout
    kernel.wait_for("order_placed", timeout=20, exchange="paper")  # type: ignore[attr-defined]
    again = hr("signal", "buy", "BTCIRT", "0.001", "--id", "t-1", "--config", str(config), cwd=config.parent)
    assert again.returncode == 0 and "duplicate" in again.stdout, again
    bad = hr("signal", "buy", "BTCIRT", "0.001", "--price", "-5", str(config), cwd=config.parent)
    assert bad.returncode == 2 and "--price" in bad.stderr
    orders = hr("orders", "list", str(config), cwd=config.parent)  # the kernel holds the db: asked via HTTP
    assert orders.returncode == 0, orders.stderr
    lines = [line for line in orders.stdout.splitlines() if "paper:BTCIRT" in line]
    assert len(lines) == 1 and "VERIFIED" in lines[0] and "buy 0.001 @ market filled 0.001" in lines[0], orders.stdout
    token = token_file.read_text().strip()
    kernel.signal(signal.SIGTERM)  # type: ignore[attr-defined]
    assert kernel.wait(timeout=20) == 0  # type: ignore[attr-defined]
    assert token not in kernel.output()  # type: ignore[attr-defined]
    gone = hr("signal", "buy", "BTCIRT", "0.001", str(config), cwd=config.parent)
    assert gone.returncode == 1 and "no running kernel" in gone.stderr


def test_a_wrong_token_is_refused(paper_kernel: tuple[object, Path, str]) -> None:
    kernel, config, _ = paper_kernel
    url = (config.parent / "data" / "web.url").read_text().strip()
    answer = httpx.post(f"{url}/api/signals", json={"ticker": "BTCIRT", "action": "buy", "amount": "1"},
                        headers={"Authorization": "Bearer guessed"}, timeout=5)
    assert answer.status_code == 403
    assert httpx.post(f"{url}/api/ledger/deposit", json={}, timeout=5).status_code == 401


def test_acknowledged_drift_is_booked_and_does_not_halt_again(paper_kernel: tuple[object, Path, str]) -> None:
    kernel, config, sim = paper_kernel
    cwd = config.parent
    nothing = hr("reconcile", "--ack", str(config), cwd=cwd)
    assert nothing.returncode == 0 and nothing.stdout.strip() == "no drift to acknowledge", nothing
    # Someone moved 1 BTC into the account behind the kernel's back.
    before = sim_btc(sim)
    httpx.put(f"{sim}/_sim/balances/default", json={"btc": str(before + 1)}, headers=ADMIN, timeout=5)
    kernel.wait_for("orders_halted", timeout=20, key="drift")  # type: ignore[attr-defined]
    acked = hr("reconcile", "--ack", str(config), cwd=cwd)
    assert acked.returncode == 0, acked.stderr
    assert "paper BTC +1" in acked.stdout, acked.stdout
    kernel.wait_for("orders_resumed", timeout=10, key="drift")  # type: ignore[attr-defined]
    # Several reconciliations later (1 s apart) trading is still on: the difference was booked.
    time.sleep(3.5)
    events = list(kernel.events)  # type: ignore[attr-defined]
    resumed = max(i for i, e in enumerate(events) if e.get("event") == "orders_resumed" and e.get("key") == "drift")
    after = [e for e in events[resumed:] if e.get("event") == "orders_halted" and e.get("key") == "drift"]
    assert after == [], after
    assert any(e.get("event") == "reconciled" and e.get("drift") == [] for e in events[resumed:])
    second = hr("reconcile", "--ack", str(config), cwd=cwd)
    assert second.stdout.strip() == "no drift to acknowledge"


def test_deposits_and_withdrawals_move_ledger_and_paper_account_together(
    paper_kernel: tuple[object, Path, str],
) -> None:
    kernel, config, sim = paper_kernel
    cwd = config.parent
    before = sim_btc(sim)
    out = hr("ledger", "deposit", "paper", "BTC", "0.25", "--reason", "from cold wallet", str(config), cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert "deposit booked on paper: 0.25 BTC" in out.stdout
    assert sim_btc(sim) == before + Decimal("0.25")
    out = hr("ledger", "withdraw", "paper", "BTC", "0.5", "--reason", "to cold wallet", str(config), cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert sim_btc(sim) == before - Decimal("0.25")
    too_much = hr("ledger", "withdraw", "paper", "BTC", "1000", "--reason", "x", str(config), cwd=cwd)
    assert too_much.returncode == 2 and "cannot withdraw 1000" in too_much.stderr
    no_reason = hr("ledger", "deposit", "paper", "BTC", "1", str(config), cwd=cwd)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    # Reconciliations after the transfers find nothing to halt on.
    time.sleep(2.5)
    assert not [e for e in kernel.events if e.get("event") == "orders_halted" and e.get("key") == "drift"]  # type: ignore[attr-defined]


def test_status_shows_the_kernels_state_and_why_then_down_when_it_stops(
    paper_kernel: tuple[object, Path, str],
) -> None:
    kernel, config, _ = paper_kernel
    cwd = config.parent
    out = hr("status", str(config), cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert "state: trading" in out.stdout and "open orders: 0" in out.stdout
    assert "balances: paper 1 BTC" in out.stdout and "exchange:paper" in out.stdout  # breakers named after the config id
    url = (cwd / "data" / "web.url").read_text().strip()
    token = (cwd / "data" / "admin.token").read_text().strip()
    httpx.post(f"{url}/api/killswitch", json={"on": True, "reason": "night"}, timeout=5,
               headers={"Authorization": f"Bearer {token}"})
    out = hr("status", "--config", str(config), cwd=cwd)
    assert "state: halted (kill_switch: night)" in out.stdout, out.stdout
    kernel.signal(signal.SIGTERM)  # type: ignore[attr-defined]
    assert kernel.wait(timeout=20) == 0  # type: ignore[attr-defined]
    out = hr("status", str(config), "--json", cwd=cwd)
    assert json.loads(out.stdout)["kernel"]["state"] == "down"


def test_drift_acknowledged_while_the_kernel_is_stopped_is_booked_and_the_next_start_trades(
    kernel_process: Callable[..., object], paper_kernel: tuple[object, Path, str],
) -> None:
    kernel, config, sim = paper_kernel
    cwd = config.parent
    before = sim_btc(sim)
    httpx.put(f"{sim}/_sim/balances/default", json={"btc": str(before + Decimal('0.5'))}, headers=ADMIN, timeout=5)
    kernel.wait_for("orders_halted", timeout=20, key="drift")  # type: ignore[attr-defined]
    kernel.signal(signal.SIGTERM)  # type: ignore[attr-defined]
    assert kernel.wait(timeout=20) == 0  # type: ignore[attr-defined]
    acked = hr("reconcile", "--ack", str(config), cwd=cwd)
    assert acked.returncode == 0, acked.stderr
    assert "booked in" in acked.stdout and "paper BTC +0.5" in acked.stdout, acked.stdout
    assert hr("reconcile", "--ack", str(config), cwd=cwd).stdout.strip() == "no drift to acknowledge"
    again = kernel_process(config, cwd=cwd)  # the simulated account kept the extra 0.5 BTC
    again.wait_for("orders_trading_enabled", timeout=30)  # type: ignore[attr-defined]
    reconciled = again.wait_for("reconciled", timeout=10, exchange="paper")  # type: ignore[attr-defined]
    assert reconciled["drift"] == [], reconciled
