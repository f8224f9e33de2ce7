"""A signal's strategy owns what it bought: `close` sells that strategy's position (or a
percentage of it), not the account's balance. A real kernel subprocess on the embedded simulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.helpers.process import hr, wait_until

ADMIN = {"X-Sim-Admin-Token": "sim-admin"}


@pytest.fixture
def kernel(kernel_process: Callable[..., object], tmp_path: Path, unused_port: Callable[[], int]) -> tuple[object, Path, str]:
    web, sim = unused_port(), unused_port()
    config = tmp_path / "hr.toml"
    config.write_text(f'[kernel]\ndata_dir = "{tmp_path / "data"}"\n[dashboard]\nport = {web}\n'
                      f'[exchanges.paper]\ntype = "sim"\n[exchanges.paper.simulator]\nport = {sim}\n')
    k = kernel_process(config, cwd=tmp_path)
    k.wait_for("orders_trading_enabled", timeout=30)  # type: ignore[attr-defined]
    return k, config, f"http://127.0.0.1:{sim}"


def sells(sim: str) -> list[Decimal]:
    orders = httpx.get(f"{sim}/_sim/orders", headers=ADMIN, timeout=5).json()["orders"]
    return [Decimal(str(o["amount"])) for o in orders if o["type"] == "sell"]


def buys(sim: str) -> int:
    orders = httpx.get(f"{sim}/_sim/orders", headers=ADMIN, timeout=5).json()["orders"]
    return sum(1 for o in orders if o["type"] == "buy" and o["status"] == "Done")


def credited(config: Path) -> int:
    out = hr("signals", str(config), "--json", cwd=config.parent)
    return sum(1 for row in json.loads(out.stdout) if row["filled"]) if out.returncode == 0 else 0


def test_close_sells_the_strategys_position_not_the_account(kernel: tuple[object, Path, str]) -> None:
    k, config, sim = kernel
    cwd = config.parent
    assert hr("signal", "buy", "BTCIRT", "0.002", "--strategy", "alpha", str(config), cwd=cwd).returncode == 0
    assert hr("signal", "buy", "BTCIRT", "0.003", "--strategy", "beta", str(config), cwd=cwd).returncode == 0
    assert hr("signal", "buy", "BTCIRT", "0.001", str(config), cwd=cwd).returncode == 0
    wait_until(lambda: buys(sim) == 3)
    wait_until(lambda: credited(config) == 3)  # the router credits fills once verification returned
    out = hr("signal", "close", "BTCIRT", "--strategy", "alpha", str(config), cwd=cwd)
    assert out.returncode == 0, out.stderr
    wait_until(lambda: len(sells(sim)) == 1)
    assert sells(sim) == [Decimal("0.002")]  # alpha's 0.002, not the account's ~1.006 BTC
    out = hr("signal", "close", "BTCIRT", "50%", "--strategy", "beta", str(config), cwd=cwd)
    assert out.returncode == 0, out.stderr
    wait_until(lambda: len(sells(sim)) == 2)
    assert sells(sim)[1] == Decimal("0.0015")
    hr("signal", "close", "BTCIRT", "--strategy", "alpha", "--id", "again", str(config), cwd=cwd)
    hr("signal", "close", "BTCIRT", "--strategy", "gamma", "--id", "never", str(config), cwd=cwd)
    k.wait_for("signal_rejected", timeout=10, signal_id="alpha:again")  # type: ignore[attr-defined]
    rejected = k.wait_for("signal_rejected", timeout=10, signal_id="gamma:never")  # type: ignore[attr-defined]
    assert "nothing to close: strategy 'gamma' holds no BTC" in str(rejected["reason"])
    assert len(sells(sim)) == 2
