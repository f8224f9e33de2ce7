"""In-flight recovery against the simulator over real HTTP: it runs beside trading once start-up
reconciliation is done, its orders stay reserved, and their own signal waits for it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import pytest

from hrkernel.exchange import Side
from hrkernel.orders.errors import OrderRejectedError
from hrkernel.orders.journal import OrderRecord, OrderState
from hrkernel.orders.pipeline import Signal
from hrkernel.orders.reconcile import StateReconciliation
from hrkernel.types import Duration

pytestmark = pytest.mark.anyio


async def resting_buy(admin: Any, signal_id: str) -> Signal:
    mid = Decimal((await admin.get("/_sim/markets/BTCIRT")).json()["mid"])
    price = (mid * Decimal("0.95") / 10).to_integral_value() * 10
    return Signal(signal_id=signal_id, exchange="nobitex", symbol="BTCIRT", side=Side.BUY, amount=Decimal("0.001"),
                  price=price)


async def test_startup_recovery_runs_beside_trading_and_its_orders_stay_reserved(make_pipeline, sim_admin) -> None:
    pipeline = make_pipeline(max_open_orders=1, verify_deadline=Duration(0.5), open_orders_wait=Duration(0.2))
    resting = await pipeline.submit(await resting_buy(sim_admin, "resting"))
    assert resting.state is OrderState.ACKED  # open on the exchange after its verify deadline: in flight
    coid = resting.client_order_id
    calls: list[str] = []
    execute = pipeline.execute_claimed

    async def traced(tx: OrderRecord) -> OrderRecord:
        calls.append("enter")
        try:
            return await execute(tx)
        finally:
            calls.append("exit")

    pipeline.execute_claimed = traced  # type: ignore[method-assign]
    pipeline.halt("startup", "start-up reconciliation not finished")
    recon = StateReconciliation(pipeline)
    async with anyio.create_task_group() as tg:
        [report] = await recon.reconcile_on_startup(recover_in=tg)
        # Trading resumed with the order still to recover; reconciliation left it to recovery.
        assert pipeline.halts == {} and pipeline.busy(coid) and calls == []
        assert report.changed == []
        # Reserved: it counts against max_open_orders while recovery works on it.
        # (A new order to be sent waits open_orders_wait for room, then is refused.)
        with pytest.raises(OrderRejectedError, match=r"1 orders on nobitex or being sent \(\[orders\] max_open_orders = 1\)"):
            await pipeline.create_transaction(await resting_buy(sim_admin, "new"), submit=True)
        # Its own signal again: executed only after recovery resolved it, never beside it.
        again = await pipeline.execute_transaction(resting)
    assert calls == ["enter", "exit", "enter", "exit"]
    assert again.client_order_id == coid and not pipeline.busy(coid)
