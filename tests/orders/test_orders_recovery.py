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


class _Tenure:
    """A lease held since ``began`` (wall clock), with the HA component's promise about others."""

    token: int | None = 7

    def __init__(self, silent_since: Any) -> None:
        self._silent = silent_since

    def holds_with_margin(self) -> bool:
        return True

    def others_silent_since(self) -> Any:
        return self._silent


@pytest.mark.parametrize("others_silent_for", [None, 10.0])
async def test_an_order_no_instance_can_still_be_sending_waits_out_only_what_is_left_of_the_window(
    make_pipeline, sim_admin, others_silent_for: float | None
) -> None:
    """A signal accepted before this tenure began is journaled UNKNOWN and looked up first. Its
    visibility window counts from when another instance could last have sent it (the lease's
    promise), not from its journaling now: the whole window is waited only without that promise."""
    from datetime import UTC, datetime, timedelta

    silent = None if others_silent_for is None else datetime.now(UTC) - timedelta(seconds=others_silent_for)
    pipeline = make_pipeline(lease=_Tenure(silent), visibility_window=Duration(3.0))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    pipeline._sleep = sleep
    rec = await pipeline.create_transaction(await resting_buy(sim_admin, "before-tenure"))
    rec = await pipeline.journal.record(rec.client_order_id, OrderState.UNKNOWN, reason="accepted before this tenure")
    done = await pipeline.execute_transaction(rec)
    assert done.state is OrderState.ACKED and done.attempts == 1  # looked up, absent, placed once
    waited_window = [s for s in slept if s > 1.0]
    if others_silent_for is None:
        assert waited_window and waited_window[0] == pytest.approx(3.0, abs=0.3)
    else:
        assert waited_window == []  # 10 s since anyone could send: "not found" is final at once
