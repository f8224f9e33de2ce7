"""The ``orders_execution`` health check against the simulator over HTTP, with the faults
injected on the exchange: a placement that hangs, an order whose status cannot be read."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import pytest

from hrkernel.exchange import Side
from hrkernel.orders.health import OrderExecutionCheck
from hrkernel.orders.pipeline import Signal
from hrkernel.types import HealthStatus

pytestmark = pytest.mark.anyio


async def _mid(admin: Any) -> Decimal:
    return Decimal((await admin.get("/_sim/markets/BTCIRT")).json()["mid"])


def _buy(signal_id: str, price: Decimal) -> Signal:
    return Signal(signal_id=signal_id, exchange="nobitex", symbol="BTCIRT", side=Side.BUY,
                  amount=Decimal("0.001"), price=(price / 10).to_integral_value() * 10)


def _check(pipeline: Any, **kw: Any) -> OrderExecutionCheck:
    options: dict[str, Any] = {"ack_bound": 0.3, "verify_deadline": 0.3, "backlog_max": 0}
    options.update(kw)
    return OrderExecutionCheck(lambda: pipeline, **options)


async def test_a_placement_not_acknowledged_within_the_bound_is_unhealthy(make_pipeline, sim_admin) -> None:
    pipeline = make_pipeline(submit_attempts=3)
    check = _check(pipeline)
    assert (await check.check()).status is HealthStatus.HEALTHY
    # Every placement request is held unanswered by the exchange.
    await sim_admin.put("/_sim/faults", json={"endpoints": {"orders_add": {"hang": 1.0}}})
    seen: list[Any] = []
    async with anyio.create_task_group() as tg:

        async def submit() -> None:
            try:
                await pipeline.submit(_buy("hang-1", await _mid(sim_admin) * Decimal("1.02")))
            except Exception:  # noqa: BLE001 - the outcome of the placement is not what is tested
                pass

        tg.start_soon(submit)
        with anyio.fail_after(10):
            while not seen or seen[-1].status is not HealthStatus.UNHEALTHY:
                seen.append(await check.check())
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert "not acknowledged within 0.3s" in seen[-1].detail


async def test_an_order_whose_status_cannot_be_read_is_a_verification_backlog(make_pipeline, sim_admin) -> None:
    pipeline = make_pipeline(verify_deadline=0.3)
    await sim_admin.put("/_sim/faults", json={"endpoints": {"orders_status": {"error_500": 1.0}}})
    rec = await pipeline.submit(_buy("blind-1", await _mid(sim_admin) * Decimal("1.02")))
    assert rec.unresolved
    result = await _check(pipeline).check()
    assert result.status is HealthStatus.DEGRADED and "1 unresolved" in result.detail
    await sim_admin.put("/_sim/faults", json={})
    done = await pipeline.execute_transaction(rec)  # readable again: verified, the backlog clears
    assert done.is_terminal, done
    assert (await _check(pipeline).check()).status is HealthStatus.HEALTHY
