"""Reconciliation failures are critical alerts and make the ``orders`` health check unhealthy:
an exchange plugin that returns the wrong types (a real adapter on the simulator, wrapped by a
plugin with that bug), start-up stays halted until a reconciliation completes, then the alert is
resolved and the check is healthy again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from hrkernel.alerts import AlertSystem
from hrkernel.alerts.config import AlertsSection
from hrkernel.orders.component import OrdersComponent
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.errors import ExchangeContractError
from hrkernel.orders.reconcile import checked_list
from hrkernel.orders.watch import CONTRACT_BROKEN, OrdersHealth
from hrkernel.types import Duration, HealthStatus

pytestmark = pytest.mark.anyio

SIM_TOKEN = "orders-token-0001"
"""The token the ``exchange`` fixture's adapter sends (tests/orders/conftest.py)."""


class BalancesAsADict:
    """An exchange plugin with a bug: ``balances()`` returns ``{currency: total}`` instead of a
    list of Balance, until ``fixed`` (everything else is the real adapter)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fixed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def balances(self) -> Any:
        real = await self.inner.balances()
        return real if self.fixed else {b.currency: str(b.total) for b in real}


def test_a_wrong_type_names_the_exchange_the_method_and_what_came_back() -> None:
    with pytest.raises(ExchangeContractError, match=r"'nobitex': balances\(\) returned a dict, expected a list of int"):
        checked_list({"BTC": 1}, int, "nobitex", "balances")
    with pytest.raises(ExchangeContractError, match="a list holding str"):
        checked_list([1, "2"], int, "nobitex", "balances")


async def test_a_plugin_returning_wrong_types_is_a_critical_alert_and_unhealthy_until_fixed(
    exchange: Any, tmp_path: Path
) -> None:
    plugin = BalancesAsADict(exchange)
    alerts = AlertSystem(AlertsSection(channels={}, group_wait=Duration(0)), channels={}, data_dir=tmp_path)
    component = OrdersComponent(OrdersSection(reconcile_interval=60.0), db_path=tmp_path / "orders.duckdb",
                                exchanges={"nobitex": plugin}, lease=None, alerts=alerts)
    health = OrdersHealth(component)
    async with alerts, anyio.create_task_group() as tg:
        await component.start(tg)
        recon = component.reconciliation
        assert recon is not None and component.pipeline is not None
        with anyio.fail_after(10):
            while "nobitex" not in recon.failed:
                await anyio.sleep(0.02)
        assert "startup" in component.pipeline.halts and not recon.startup_done  # safe: no trading
        [firing] = await alerts.query(status="firing")
        assert (firing["source"], firing["level"], firing["title"]) == ("exchange", "critical", CONTRACT_BROKEN)
        assert "balances() returned a dict" in firing["message"]
        result = await health.check()
        assert result.status == HealthStatus.UNHEALTHY and CONTRACT_BROKEN in result.detail

        plugin.fixed = True
        with anyio.fail_after(15):  # the start-up retry comes after a growing delay (1 s, 2 s, ...)
            while not recon.startup_done:
                await anyio.sleep(0.05)
        assert component.pipeline.halts == {}
        assert await alerts.query(status="firing") == []
        assert [r["status"] for r in await alerts.query()] == ["resolved"]
        assert (await health.check()).status == HealthStatus.HEALTHY
        await component.stop()
        tg.cancel_scope.cancel()



async def test_an_order_refused_for_authentication_is_a_critical_exchange_alert(sim: Any, sim_admin: Any,
                                                                              tmp_path: Path) -> None:
    from decimal import Decimal

    import duckdb

    from hrkernel.exchange import Side
    from hrkernel.ledger import Ledger
    from hrkernel.orders.journal import OrderJournal, OrderState
    from hrkernel.orders.pipeline import Signal, TransactionVerificationPipeline
    from hrkernel.orders.watch import AUTH_REFUSED
    from hrkernel_nobitex.config import NobitexConfig
    from hrkernel_nobitex.exchange import NobitexExchange

    wrong = NobitexExchange(NobitexConfig(token="not-the-sim-token-1", base_url=sim.base_url, rate_limit=False,
                                          timeout=Duration(2.0), breaker_failure_threshold=1000),
                            instance_id="hr-refused")
    raised: list[tuple[str, str, dict[str, Any]]] = []
    con = duckdb.connect(str(tmp_path / "orders.duckdb"))
    ledger = Ledger(con)
    ledger.deposit("nobitex", "RLS", Decimal("100000000000"), reason="opening balance")
    pipeline = TransactionVerificationPipeline(
        exchanges={"nobitex": wrong}, journal=(journal := OrderJournal(tmp_path / "orders.journal.sqlite")), ledger=ledger, config=OrdersSection(),
        alert=lambda level, title, details: raised.append((level, title, details)))
    async with wrong:
        m = Decimal((await sim_admin.get("/_sim/markets/BTCIRT")).json()["mid"])
        rec = await pipeline.submit(Signal(signal_id="refused", exchange="nobitex", symbol="BTCIRT", side=Side.BUY,
                                           amount=Decimal("0.0001"), price=(m * Decimal("0.97") / 10).to_integral_value() * 10))
    con.close()
    journal.close()
    assert rec.state == OrderState.REJECTED and "AuthenticationError" in (rec.reason or "")
    [(level, title, details)] = raised
    assert (level, title, details["exchange"]) == ("critical", AUTH_REFUSED, "nobitex")
    assert "not-the-sim-token-1" not in str(details)


async def test_a_token_revoked_while_trading_is_alerted_and_unhealthy_until_it_works_again(
    exchange: Any, sim_admin: Any, tmp_path: Path
) -> None:
    from hrkernel.orders.watch import AUTH_REFUSED

    alerts = AlertSystem(AlertsSection(channels={}, group_wait=Duration(0)), channels={}, data_dir=tmp_path)
    component = OrdersComponent(OrdersSection(reconcile_interval=Duration(0.3)), db_path=tmp_path / "orders.duckdb",
                                exchanges={"nobitex": exchange}, lease=None, alerts=alerts)
    health = OrdersHealth(component)
    async with alerts, anyio.create_task_group() as tg:
        await component.start(tg)
        recon = component.reconciliation
        assert recon is not None
        with anyio.fail_after(10):
            while not recon.startup_done:
                await anyio.sleep(0.02)
        assert (await health.check()).status == HealthStatus.HEALTHY
        # The operator rotates the token in the exchange's panel: the kernel's one is now refused.
        assert (await sim_admin.put("/_sim/accounts/default/token", json={"token": "rotated-0002"})).status_code == 200
        with anyio.fail_after(10):
            while "nobitex" not in recon.failed:
                await anyio.sleep(0.02)
        [firing] = await alerts.query(status="firing")
        assert (firing["source"], firing["level"], firing["title"]) == ("exchange", "critical", AUTH_REFUSED)
        assert (await health.check()).status == HealthStatus.UNHEALTHY
        assert (await sim_admin.put("/_sim/accounts/default/token", json={"token": SIM_TOKEN})).status_code == 200
        with anyio.fail_after(10):
            while recon.failed:
                await anyio.sleep(0.02)
        assert await alerts.query(status="firing") == []
        assert (await health.check()).status == HealthStatus.HEALTHY
        await component.stop()
        tg.cancel_scope.cancel()


class PlacementAsADict:
    """An exchange plugin whose ``place_order`` places the order for real but returns a dict."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def place_order(self, request: Any, **kwargs: Any) -> Any:
        order = await self.inner.place_order(request, **kwargs)
        return {"id": order.exchange_id, "status": "new"}


async def test_a_placement_answered_with_the_wrong_type_is_alerted_and_looked_up(
    exchange: Any, sim_admin: Any, tmp_path: Path
) -> None:
    from decimal import Decimal

    import duckdb

    from hrkernel.exchange import Side
    from hrkernel.ledger import Ledger
    from hrkernel.orders.journal import OrderJournal, OrderState
    from hrkernel.orders.pipeline import Signal, TransactionVerificationPipeline

    from .conftest import BALANCES, fast_config

    raised: list[tuple[str, str, dict[str, Any]]] = []
    con = duckdb.connect(str(tmp_path / "orders.duckdb"))
    ledger = Ledger(con)
    for ccy, amount in BALANCES.items():
        ledger.deposit("nobitex", ccy.upper(), Decimal(amount), reason="opening balance")
    pipeline = TransactionVerificationPipeline(
        exchanges={"nobitex": PlacementAsADict(exchange)}, journal=(journal := OrderJournal(tmp_path / "orders.journal.sqlite")), ledger=ledger,
        config=fast_config(), alert=lambda level, title, details: raised.append((level, title, details)))
    m = Decimal((await sim_admin.get("/_sim/markets/BTCIRT")).json()["mid"])
    rec = await pipeline.submit(Signal(signal_id="dict", exchange="nobitex", symbol="BTCIRT", side=Side.BUY,
                                       amount=Decimal("0.0001"), price=(m * Decimal("0.97") / 10).to_integral_value() * 10))
    con.close()
    journal.close()
    assert [(lvl, title) for lvl, title, _ in raised] == [("critical", CONTRACT_BROKEN)]
    assert "place_order() returned a dict, expected an Order" in raised[0][2]["error"]
    # The order did land: the look-up found it, so it is followed like any other, never re-sent.
    assert rec.state in (OrderState.ACKED, OrderState.VERIFIED) and rec.exchange_order_id
    assert len((await sim_admin.get("/_sim/orders")).json()["orders"]) == 1
