"""The simulator's accounts survive a restart when it has a state file (the embedded ``sim``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from hrkernel_sim.persist import SnapshotError
from hrkernel_sim.server import SimServer

from .conftest import TOKEN, FakeClock, make_config

ROOT = Path(__file__).resolve().parents[2]
anyio = pytest.mark.anyio


async def _place(sim: SimServer, **order: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=5,
                                 headers={"Authorization": f"Token {TOKEN}"}) as c:
        response = await c.post("/market/orders/add", json=order)
        return response.json()  # type: ignore[no-any-return]


@anyio
async def test_balances_orders_and_trades_are_read_back_after_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sim-paper.json"
    clock = FakeClock()
    async with SimServer(make_config(), clock=clock, state_file=str(state)) as first:
        filled = await _place(first, type="buy", execution="market", srcCurrency="btc", dstCurrency="rls",
                              amount="0.001", clientOrderId="c1")
        assert filled["status"] == "ok", filled
        resting = await _place(first, type="sell", execution="limit", srcCurrency="btc", dstCurrency="rls",
                               amount="0.002", price="120000000000", clientOrderId="c2")
        assert resting["status"] == "ok", resting
        before = (first.state.engine.balances["alice"], first.state.engine.blocked["alice"],
                  sorted(first.state.engine.active), len(first.state.engine.trades))
        assert before[0]["btc"] != Decimal("0.5")  # the fill moved the balance
    assert state.exists()

    async with SimServer(make_config(), clock=clock, state_file=str(state)) as second:
        engine = second.state.engine
        assert (engine.balances["alice"], engine.blocked["alice"], sorted(engine.active),
                len(engine.trades)) == before
        # The resting order is still there to cancel, and new ids do not collide with old ones.
        again = await _place(second, type="buy", execution="market", srcCurrency="btc", dstCurrency="rls",
                             amount="0.001", clientOrderId="c3")
        assert int(again["order"]["id"]) > max(engine.orders) - 1  # type: ignore[index]
        assert len(engine.orders) == 3


@anyio
async def test_without_a_state_file_every_start_is_a_fresh_account(tmp_path: Path) -> None:
    async with SimServer(make_config(), clock=FakeClock()) as first:
        await _place(first, type="buy", execution="market", srcCurrency="btc", dstCurrency="rls",
                     amount="0.001", clientOrderId="c1")
    async with SimServer(make_config(), clock=FakeClock()) as second:
        assert second.state.engine.balances["alice"]["btc"] == Decimal("0.5")
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_state_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    state = tmp_path / "sim-paper.json"
    state.write_text("{not json")
    with pytest.raises(SnapshotError, match="sim-paper.json: not a simulator state file"):
        SimServer(make_config(), state_file=str(state))


def test_the_embedded_default_trades_on_two_runs_in_a_row(
    kernel_process: Callable[..., object], tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    """`hrkernel run hr.toml` twice with the same data_dir, a signal from `hrkernel signal` each
    time: the second start reconciles without drift and trades (it used to find a fresh
    simulator account, see drift and halt)."""
    shutil.copy(ROOT / "hr.toml", tmp_path / "hr.toml")  # the embedded default, unchanged
    for run in (1, 2):
        port = str(unused_port())
        kernel = kernel_process(tmp_path / "hr.toml", env={"HRKERNEL_DASHBOARD_PORT": port}, cwd=tmp_path)
        kernel.wait_for("orders_trading_enabled", timeout=30)  # type: ignore[attr-defined]
        reconciled = kernel.wait_for("reconciled", timeout=5, exchange="paper")  # type: ignore[attr-defined]
        if run == 2:  # the first run books the opening balances; after that nothing moved
            assert reconciled["drift"] == [], reconciled
        env = {k: v for k, v in os.environ.items() if not k.startswith("HRKERNEL_")}
        sent = subprocess.run([sys.executable, "-m", "hrkernel", "signal", "buy", "BTCIRT", "0.001"],
                              cwd=tmp_path, env=env, text=True, capture_output=True, timeout=60)
        assert sent.returncode == 0 and "accepted" in sent.stdout, sent.stderr
        placed = kernel.wait_for("order_placed", timeout=20, exchange="paper")  # type: ignore[attr-defined]
        assert placed["status"] == "filled"
        kernel.signal(signal.SIGTERM)  # type: ignore[attr-defined]
        assert kernel.wait(timeout=20) == 0  # type: ignore[attr-defined]
    assert (tmp_path / ".hrkernel" / "sim-paper.json").exists()
