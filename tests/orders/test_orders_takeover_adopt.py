"""A new leader adopts the orders its predecessor placed after the last replicated row, through
the exchange's rate limits: the look-up is retried, not skipped (a skipped look-up leaves the
predecessor's fills out of the ledger, as a chaos run with Redis cut off found)."""

from __future__ import annotations

from typing import Any

import pytest
import structlog.testing

from hrkernel.exchange.errors import ExchangeUnavailableError, RateLimitedError
from hrkernel.orders import component as orders_component
from hrkernel.orders.component import OrdersComponent
from hrkernel.orders.journal import OrderState
from hrkernel.orders.reconcile import StateReconciliation

from .test_orders_pipeline import buy, mid, price_at

pytestmark = pytest.mark.anyio


class Refusing:
    """The exchange, whose first ``refusals`` fill reads raise ``error``."""

    def __init__(self, inner: Any, error: Exception, refusals: int) -> None:
        self.inner, self.error, self.left, self.calls = inner, error, refusals, 0

    async def recent_fills(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise self.error
        return await self.inner.recent_fills(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _successor_after_a_fill(make_pipeline: Any, sim_admin: Any) -> tuple[Any, Any]:
    """B opens its ledger from the exchange, then A places and fills an order B never hears of."""
    b = make_pipeline(db="b.duckdb", seed=False)
    await StateReconciliation(b).reconcile_all()
    a = make_pipeline(db="a.duckdb")
    placed = await a.submit(buy("unpublished", price_at(await mid(sim_admin), "1.02")))
    assert placed.state is OrderState.VERIFIED and b.journal.get(placed.client_order_id) is None
    component = OrdersComponent.__new__(OrdersComponent)
    component.pipeline = b
    return component, placed


async def test_rate_limited_lookups_are_retried_and_the_order_is_adopted(make_pipeline, sim_admin) -> None:
    component, placed = await _successor_after_a_fill(make_pipeline, sim_admin)
    b = component.pipeline
    flaky = Refusing(b.exchanges["nobitex"], RateLimitedError("429", retry_after=0.05), refusals=2)
    b.exchanges["nobitex"] = flaky
    with structlog.testing.capture_logs() as logs:
        await component._adopt_unreplicated_orders()
    assert flaky.calls == 3
    assert [e["event"] for e in logs if "unreplicated" in e["event"]] == [
        "orders_unreplicated_orders_retry", "orders_unreplicated_orders_retry", "orders_unreplicated_order_adopted"]
    adopted = b.journal.get(placed.client_order_id)
    assert adopted is not None and adopted.state is OrderState.ACKED


async def test_an_outage_past_the_deadline_fails_the_takeover_instead_of_trading_on(
        make_pipeline, sim_admin, monkeypatch: pytest.MonkeyPatch) -> None:
    component, placed = await _successor_after_a_fill(make_pipeline, sim_admin)
    b = component.pipeline
    b.exchanges["nobitex"] = Refusing(b.exchanges["nobitex"], ExchangeUnavailableError("down"), refusals=1000)
    monkeypatch.setattr(orders_component, "ADOPT_RETRY_FOR", 0.3)
    with pytest.raises(ExchangeUnavailableError):
        await component._adopt_unreplicated_orders()
    assert b.journal.get(placed.client_order_id) is None
