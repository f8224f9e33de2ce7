"""Throughput on the default limits: a burst of signals waits for room instead of failing.

The signal router (16 execution slots by default) and the pipeline with the default
``max_open_orders`` (20) and ``open_orders_wait`` against the simulator over HTTP. Before, a burst
of 40 signals left about half its orders FAILED with "20 open orders already": orders merely
waiting for an execution slot counted as open, and each held its slot through verification.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from hrkernel.bus.events import SignalAction, SignalEvent
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.journal import OrderState
from hrkernel.orders.routing import SignalRouter
from hrkernel.types import Duration

pytestmark = pytest.mark.anyio


class Delivery:
    def __init__(self, event: SignalEvent) -> None:
        self.event = event
        self.acked = anyio.Event()

    async def ack(self) -> None:
        self.acked.set()


async def test_a_burst_of_100_signals_ends_with_no_order_failed_for_a_transient_reason(
        make_pipeline: Any, sim_admin: Any) -> None:
    defaults = OrdersSection()
    pipeline = make_pipeline(max_open_orders=defaults.max_open_orders, open_orders_wait=defaults.open_orders_wait,
                             verify_deadline=Duration(20.0), poll_initial=Duration(0.05), poll_max=Duration(0.2))
    router = SignalRouter(bus=None, orders=SimpleNamespace(pipeline=pipeline), topic="signals", exchanges=["nobitex"])
    mid = Decimal((await sim_admin.get("/_sim/markets/BTCIRT")).json()["mid"])
    price = (mid * Decimal("1.02") / 10).to_integral_value() * 10  # crossing: fills on placement
    deliveries = [Delivery(SignalEvent(
        time=datetime.now(UTC), signal_id=f"burst-{i}", source="test", exchange="nobitex", symbol="BTCIRT",
        action=SignalAction.BUY, amount=Decimal("0.0001"), order_type="limit", price=price,
        received_at=datetime.now(UTC))) for i in range(100)]
    most_on_exchange = 0

    async def watch() -> None:
        nonlocal most_on_exchange
        while True:
            most_on_exchange = max(most_on_exchange, pipeline.gate.count("nobitex"))
            await anyio.sleep(0.005)

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            async with anyio.create_task_group() as orders:
                for d in deliveries:
                    orders.start_soon(router._handle, d, orders)
            tg.cancel_scope.cancel()
    records = pipeline.journal.query(limit=1000)
    assert len(records) == 100
    failed = [(r.client_order_id, r.reason) for r in records if r.state is OrderState.FAILED]
    assert failed == []
    assert all(r.state is OrderState.VERIFIED for r in records), {r.state for r in records}
    assert len((await sim_admin.get("/_sim/orders")).json()["orders"]) == 100
    assert 0 < most_on_exchange <= defaults.max_open_orders


async def test_an_order_that_finds_no_room_within_the_wait_is_refused_with_the_reason(
        make_pipeline: Any, sim_admin: Any) -> None:
    from hrkernel.exchange import Side
    from hrkernel.orders.errors import OrderRejectedError
    from hrkernel.orders.pipeline import Signal

    pipeline = make_pipeline(max_open_orders=1, open_orders_wait=Duration(0.3))
    mid = Decimal((await sim_admin.get("/_sim/markets/BTCIRT")).json()["mid"])
    resting = (mid * Decimal("0.95") / 10).to_integral_value() * 10  # rests on the book: stays open
    first = await pipeline.submit(Signal(signal_id="rest-1", exchange="nobitex", symbol="BTCIRT", side=Side.BUY,
                                         amount=Decimal("0.001"), price=resting))
    assert first.state is OrderState.ACKED
    started = anyio.current_time()
    with pytest.raises(OrderRejectedError, match=r"max_open_orders = 1\) for 0.3 s \(\[orders\] open_orders_wait"):
        await pipeline.submit(Signal(signal_id="rest-2", exchange="nobitex", symbol="BTCIRT", side=Side.BUY,
                                     amount=Decimal("0.001"), price=resting))
    assert anyio.current_time() - started >= 0.3  # it waited before being refused
    refused = pipeline.journal.by_signal("rest-2")
    assert refused is not None and refused.state is OrderState.FAILED
    assert len((await sim_admin.get("/_sim/orders")).json()["orders"]) == 1
