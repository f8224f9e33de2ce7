"""A signal delivered again after its order was adopted (by a new leader from the exchange, or as
an orphan) finds the order under its client order id: acknowledged, nothing placed, and the
router keeps consuming (it used to raise JournalError out of its subscription)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from hrkernel.bus.events import SignalAction, SignalEvent
from hrkernel.exchange import OrderRequest, OrderType, Side
from hrkernel.orders.journal import OrderRecord, OrderState
from hrkernel.orders.pipeline import client_order_id_for
from hrkernel.orders.routing import SignalRouter

pytestmark = pytest.mark.anyio


class Delivery:
    def __init__(self, signal_id: str, price: Decimal) -> None:
        self.event = SignalEvent(time=datetime.now(UTC), signal_id=signal_id, source="test", exchange="nobitex",
                                 symbol="BTCIRT", action=SignalAction.BUY, amount=Decimal("0.001"),
                                 order_type="limit", price=price, received_at=datetime.now(UTC))
        self.acked = anyio.Event()

    async def ack(self) -> None:
        self.acked.set()


async def test_a_redelivered_signal_of_an_adopted_order_is_acknowledged_without_a_second_order(
    make_pipeline: Any, sim_admin: Any
) -> None:
    pipeline = make_pipeline()
    mid = Decimal((await sim_admin.get("/_sim/markets/BTCIRT")).json()["mid"])
    price = (mid * Decimal("0.9") / 10).to_integral_value() * 10
    coid = client_order_id_for("nobitex", "sig-adopted")
    exchange = pipeline.exchanges["nobitex"]
    placed = await exchange.place_order(OrderRequest(symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT,
                                                     amount=Decimal("0.001"), price=price, client_order_id=coid))
    await pipeline.journal.create(OrderRecord(
        client_order_id=coid, signal_id=f"adopted:nobitex:{placed.exchange_id}", exchange="nobitex", symbol="BTCIRT",
        base="BTC", quote="IRT", side="buy", type="limit", amount=Decimal("0.001"), price=price,
        state=OrderState.ACKED, exchange_order_id=placed.exchange_id, attempts=1, reason="adopted"))
    router = SignalRouter(bus=None, orders=SimpleNamespace(pipeline=pipeline), topic="signals", exchanges=["nobitex"])
    again = Delivery("sig-adopted", price)
    async with anyio.create_task_group() as tg:
        await router._handle(again, tg)
        with anyio.fail_after(10):
            await again.acked.wait()
    assert len((await sim_admin.get("/_sim/orders")).json()["orders"]) == 1
    assert [e.state for e in pipeline.journal.history(coid)][0] is OrderState.ACKED
    assert OrderState.SUBMITTING not in [e.state for e in pipeline.journal.history(coid)]
    assert router.stats["duplicates"] == 1
