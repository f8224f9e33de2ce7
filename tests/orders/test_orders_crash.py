"""Crash recovery with a real SIGKILL: a worker process is killed at each phase boundary (via the
test-only fault point ``HRKERNEL_FAULT_POINT``), then started again without it. Afterwards the
simulator has exactly one order per signal, the journal has a terminal state for every order,
and the ledger equals the simulator's balances.

Both ways an order is journaled are covered: ``fused`` (PREPARED and SUBMITTING in one commit,
the path of an order sent at once) and ``two-step`` (PREPARED committed first, SUBMITTING later)."""

from __future__ import annotations

import signal
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import duckdb
import pytest

from hrkernel.ledger import Ledger
from hrkernel.orders.journal import OrderJournal, OrderState

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).with_name("orders_crash_worker.py")
SIM_TOKEN = "orders-token-0001"


async def _worker(db: Path, sim: Any, signal_id: str, price: Decimal, fault: str | None, mode: str = "fused") -> Any:
    env = {"HRKERNEL_FAULT_POINT": fault} if fault else {"HRKERNEL_FAULT_POINT": ""}
    import os

    full_env = {**os.environ, **env}
    return await anyio.run_process([sys.executable, str(WORKER), str(db), sim.base_url, SIM_TOKEN, signal_id, "buy",
                                    str(price), mode], env=full_env, check=False)


@pytest.mark.parametrize(("fault", "mode"), [
    ("after_prepared", "two-step"), ("after_submitting", "two-step"), ("after_submitting", "fused"),
    ("after_accept", "fused"), ("after_acked", "fused"), ("mid_verify", "fused"),
])
async def test_sigkill_at_each_phase_boundary_recovers_to_one_order_and_a_matching_ledger(
    sim: Any, sim_admin: Any, tmp_path: Path, fault: str, mode: str
) -> None:
    db = tmp_path / "orders.duckdb"
    m = Decimal((await sim_admin.get("/_sim/markets/BTCIRT")).json()["mid"])
    price = (m * Decimal("1.02") / 10).to_integral_value() * 10  # crossing: fills at once
    crashed = await _worker(db, sim, "sig-crash", price, fault, mode)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()[-2000:]
    if fault in ("after_prepared", "after_submitting"):
        # Killed before the request left: journaled, nothing on the exchange.
        assert (await sim_admin.get("/_sim/orders")).json()["orders"] == []
        journal = OrderJournal.reader(tmp_path / "orders.journal.sqlite")
        (left,) = journal.query()
        history = journal.history(left.client_order_id)
        journal.close()
        if fault == "after_prepared":
            assert [e.state for e in history] == [OrderState.PREPARED]
        else:
            assert [e.state for e in history] == [OrderState.PREPARED, OrderState.SUBMITTING]
            # fused: one commit wrote both events (same time); two-step: two commits
            assert (history[0].at == history[1].at) is (mode == "fused")
    recovered = await _worker(db, sim, "sig-crash", price, None, mode)
    assert recovered.returncode == 0, recovered.stderr.decode()[-2000:]

    orders = (await sim_admin.get("/_sim/orders")).json()["orders"]
    assert len(orders) == 1 and orders[0]["status"] == "Done", orders
    con = duckdb.connect(str(db))
    journal, ledger = OrderJournal.reader(tmp_path / "orders.journal.sqlite"), Ledger(con)
    records = journal.query()
    assert [r.state for r in records] == [OrderState.VERIFIED]
    assert records[0].exchange_order_id == str(orders[0]["id"])
    wallets = (await sim_admin.get("/_sim/balances")).json()["balances"]["default"]
    on_exchange = {c.upper(): Decimal(v["balance"]) for c, v in wallets.items() if Decimal(v["balance"])}
    assert {c: v for c, v in ledger.venue_balances("nobitex").items() if v} == on_exchange
    history = journal.history(records[0].client_order_id)
    assert history[0].state is OrderState.PREPARED and history[-1].state is OrderState.VERIFIED
    if fault == "after_submitting":
        # SUBMITTING found after the crash: looked up by client order id first, and sent again
        # only because the exchange said it had no such order (never a blind resubmission).
        submits = [e for e in history if e.state is OrderState.SUBMITTING]
        assert [e.attempt for e in submits] == [1, 2]
        assert submits[1].reason is not None and "exchange has no order" in submits[1].reason
    con.close()
