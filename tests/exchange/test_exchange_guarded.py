"""The kernel's exchange wrapper (``hrkernel.exchange.guarded``): an exchange plugin without
resilience of its own gets a breaker, timeout and read retries per endpoint group and a health
entry; a plugin that breaks the contract at run time is named in a critical alert. Against the
Nobitex simulator over real HTTP, faults injected by the simulator."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from hrkernel.alerts import AlertSystem
from hrkernel.alerts.config import AlertsSection
from hrkernel.exchange import OrderRequest, OrderStatus, OrderType, Side
from hrkernel.exchange import errors as ex
from hrkernel.exchange.guarded import ExchangeResilience, GroupPolicy, GuardedExchange
from hrkernel.ha.health import _component_check
from hrkernel.kernel.assembly import contract_alert
from hrkernel.kernel.component import PluginComponent
from hrkernel.resilience import BreakerState
from hrkernel.types import Duration, HealthStatus
from hrkernel_nobitex.config import NobitexConfig
from hrkernel_nobitex.exchange import NobitexExchange

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SIM_TOKEN = "contract-token-0001"


class ThirdParty(NobitexExchange):
    """An adapter that brings no resilience of its own (its breakers never open, no retries)."""

    brings_own_resilience = False


def bare(sim: Any, **overrides: Any) -> ThirdParty:
    options: dict[str, Any] = {"token": SIM_TOKEN, "base_url": sim.base_url, "bot_name": "guarded",
                               "retry_attempts": 1, "breaker_failure_threshold": 1_000_000,
                               # no cache to serve a stale book: every read reaches the simulator
                               "market_data_ttl": Duration(0.001), "stale_for": Duration(0)}
    return ThirdParty(NobitexConfig(**(options | overrides)))


def layer(**groups: GroupPolicy) -> ExchangeResilience:
    return ExchangeResilience(**groups)


async def script(sim: Any, endpoint: str, kind: str, count: int) -> None:
    sim.state.faults.add_scripted(endpoint, kind, count)


def resting(price: Decimal, cid: str) -> OrderRequest:
    return OrderRequest(symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT, amount=Decimal("0.001"),
                        price=price, client_order_id=cid)


async def test_a_failing_order_book_opens_only_the_market_data_breaker(sim):
    quick = GroupPolicy(failure_threshold=3, retry_attempts=3, reset_timeout=Duration(60))
    guarded = GuardedExchange(bare(sim), exchange_id="tp", plugin="third-party", config=layer(market_data=quick))
    assert guarded.guarded and set(guarded.breakers) == {"market_data", "account", "trading"}
    await guarded.start()
    try:
        price = (await guarded.order_book("BTCIRT")).bids[0].price * Decimal("0.95")
        await guarded.markets()
        await script(sim, "orderbook", "error_503", 100)
        with pytest.raises(ex.ExchangeUnavailableError):
            await guarded.order_book("BTCIRT")  # three attempts (read retries), three failures
        assert guarded.breakers["market_data"].state is BreakerState.OPEN
        with pytest.raises(ex.ExchangeUnavailableError, match="market_data circuit breaker is open"):
            await guarded.order_book("BTCIRT")
        # Account reads and trading go on.
        assert {b.currency for b in await guarded.balances()} >= {"RLS", "BTC"}
        order = await guarded.place_order(resting(price, "tp-1"))
        assert (await guarded.cancel_order(exchange_id=order.exchange_id)).status is OrderStatus.CANCELED
        assert guarded.breakers["account"].state is guarded.breakers["trading"].state is BreakerState.CLOSED
        # The dashboard's health entry, with no code in the plugin: unhealthy, naming the group.
        name, check = _component_check(PluginComponent("exchange:tp", "exchange", guarded, "third-party"))
        result = await check.check()
        assert name == "exchange:tp:breaker" and result.status is HealthStatus.UNHEALTHY
        assert "exchange:tp:market_data open" in result.detail
        assert guarded.describe()["resilience"] == {"market_data": "open", "account": "closed", "trading": "closed"}
    finally:
        await guarded.aclose()
    rows = [r for r in sim.state.requests if r["endpoint"] == "orderbook"]
    assert [r["status"] for r in rows] == [200, 503, 503, 503]  # open: nothing more was sent


async def test_a_hung_placement_is_an_unknown_outcome_and_a_hung_read_a_timeout(sim):
    fast = GroupPolicy(timeout=Duration(0.3))
    guarded = GuardedExchange(bare(sim), exchange_id="tp", plugin="third-party",
                              config=layer(trading=fast, account=GroupPolicy(timeout=Duration(0.3), retry_attempts=1)))
    await guarded.start()
    try:
        price = (await guarded.order_book("BTCIRT")).bids[0].price * Decimal("0.95")
        await guarded.markets()
        await script(sim, "orders_add", "hang", 1)
        with pytest.raises(ex.UnknownOutcomeError) as caught:
            await guarded.place_order(resting(price, "tp-hung"))
        assert caught.value.client_order_id == "tp-hung" and "0.3s" in str(caught.value)
        await script(sim, "wallets_list", "hang", 1)
        with pytest.raises(ex.ExchangeTimeoutError):
            await guarded.balances()
        assert await guarded.find_order_by_client_id("tp-hung") is None  # the hang executed nothing
    finally:
        await guarded.aclose()


async def test_trading_is_never_retried_by_the_wrapper(sim):
    guarded = GuardedExchange(bare(sim), exchange_id="tp", plugin="third-party",
                              config=layer(trading=GroupPolicy(retry_attempts=5)))
    await guarded.start()
    try:
        price = (await guarded.order_book("BTCIRT")).bids[0].price * Decimal("0.95")
        await guarded.markets()
        await script(sim, "orders_add", "error_503", 1)
        with pytest.raises(ex.UnknownOutcomeError):
            await guarded.place_order(resting(price, "tp-once"))
    finally:
        await guarded.aclose()
    assert len([r for r in sim.state.requests if r["endpoint"] == "orders_add"]) == 1


async def test_an_adapter_that_brings_its_own_keeps_it(sim):
    adapter = NobitexExchange(NobitexConfig(token=SIM_TOKEN, base_url=sim.base_url))
    guarded = GuardedExchange(adapter, exchange_id="nobitex", plugin="nobitex")
    assert not guarded.guarded and guarded.breakers == {} and guarded.breaker is adapter.breaker
    forced = GuardedExchange(adapter, exchange_id="nobitex", plugin="nobitex",
                             config=ExchangeResilience(mode="kernel"))
    assert forced.guarded and forced.breaker.name.startswith("exchange:nobitex:")
    assert GuardedExchange(bare(sim), exchange_id="x", plugin="p",
                           config=ExchangeResilience(mode="adapter")).guarded is False


class Broken(ThirdParty):
    """The issue's broken plugin: ``order_fills = None``, ``balances()`` raising, floats."""

    order_fills = None  # type: ignore[assignment]

    async def balances(self) -> Any:
        raise TypeError("'NoneType' object is not iterable")

    async def list_open_orders(self, symbol: str | None = None) -> Any:
        return None

    async def market(self, symbol: str) -> Any:
        real = await super().market(symbol)
        return real if symbol != "ETHIRT" else {"symbol": symbol}

    async def place_order(self, request: Any, *, fencing_token: int | None = None) -> Any:
        await super().place_order(request, fencing_token=fencing_token)
        return {"id": 1}


async def test_a_plugin_breaking_the_contract_raises_a_critical_alert_naming_it(sim, tmp_path: Path):
    async with AlertSystem(AlertsSection(), data_dir=tmp_path) as alerts:
        guarded = GuardedExchange(Broken(NobitexConfig(token=SIM_TOKEN, base_url=sim.base_url)),
                                  exchange_id="desk", plugin="acme-exchange", breach=contract_alert(alerts, "desk"))
        await guarded.start()
        try:
            for _ in range(2):  # the second time: the same error, no second alert
                with pytest.raises(ex.ContractViolationError, match="'acme-exchange'.*balances\\(\\) raised TypeError"):
                    await guarded.balances()
            with pytest.raises(ex.ContractViolationError, match="list_open_orders\\(\\): expected a list, got NoneType"):
                await guarded.list_open_orders()
            with pytest.raises(ex.ContractViolationError, match="order_fills\\(\\) raised TypeError"):
                await guarded.order_fills(None)
            price = (await guarded.order_book("BTCIRT")).bids[0].price * Decimal("0.95")
            # A placement that came back wrong may still have landed: unknown outcome, with its id.
            with pytest.raises(ex.UnknownOutcomeError, match="expected Order, got dict") as caught:
                await guarded.place_order(resting(price, "broken-1"))
            assert caught.value.client_order_id == "broken-1"
            assert guarded.breakers["account"].state is BreakerState.CLOSED  # a bug is not an outage
        finally:
            await guarded.aclose()
        with anyio.fail_after(5):
            await alerts.wait_idle()
        rows = await alerts.query(source="exchange")
    titles = sorted(r["title"] for r in rows)
    assert titles == sorted(f"exchange plugin broke the contract: desk.{m}"
                            for m in ("balances", "list_open_orders", "order_fills", "place_order"))
    assert all(r["level"] == "critical" and "acme-exchange" in r["message"] for r in rows)
    assert [r["count"] for r in rows if r["title"].endswith(".balances")] == [1]
