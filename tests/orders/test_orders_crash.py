"""Crash recovery with a real SIGKILL: a worker process is killed at each phase boundary (via the
test-only fault point ``HRKERNEL_FAULT_POINT``), then started again without it. Afterwards the
simulator has exactly one order per signal, the journal has a terminal state for every order,
and the ledger equals the simulator's balances."""

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


async def _worker(db: Path, sim: Any, signal_id: str, price: Decimal, fault: str | None) -> Any:
    env = {"HRKERNEL_FAULT_POINT": fault} if fault else {"HRKERNEL_FAULT_POINT": ""}
    import os

    full_env = {**os.environ, **env}
    return await anyio.run_process([sys.executable, str(WORKER), str(db), sim.base_url, SIM_TOKEN, signal_id, "buy",
                                    str(price)], env=full_env, check=False)


@pytest.mark.parametrize("fault", ["after_prepared", "after_submitting", "after_accept", "after_acked", "mid_verify"])
async def test_sigkill_at_each_phase_boundary_recovers_to_one_order_and_a_matching_ledger(
    sim: Any, sim_admin: Any, tmp_path: Path, fault: str
) -> None:
    db = tmp_path / "orders.duckdb"
    m = Decimal((await sim_admin.get("/_sim/markets/BTCIRT")).json()["mid"])
    price = (m * Decimal("1.02") / 10).to_integral_value() * 10  # crossing: fills at once
    crashed = await _worker(db, sim, "sig-crash", price, fault)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()[-2000:]
    recovered = await _worker(db, sim, "sig-crash", price, None)
    assert recovered.returncode == 0, recovered.stderr.decode()[-2000:]

    orders = (await sim_admin.get("/_sim/orders")).json()["orders"]
    assert len(orders) == 1 and orders[0]["status"] == "Done", orders
    con = duckdb.connect(str(db))
    journal, ledger = OrderJournal(con), Ledger(con)
    records = journal.query()
    assert [r.state for r in records] == [OrderState.VERIFIED]
    assert records[0].exchange_order_id == str(orders[0]["id"])
    wallets = (await sim_admin.get("/_sim/balances")).json()["balances"]["default"]
    on_exchange = {c.upper(): Decimal(v["balance"]) for c, v in wallets.items() if Decimal(v["balance"])}
    assert {c: v for c, v in ledger.venue_balances("nobitex").items() if v} == on_exchange
    history = [e.state for e in journal.history(records[0].client_order_id)]
    assert history[0] is OrderState.PREPARED and history[-1] is OrderState.VERIFIED
    con.close()
