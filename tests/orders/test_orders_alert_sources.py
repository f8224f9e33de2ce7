"""The alert source of an order-path alert is the one its caller names, never guessed from the
words of the message."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hrkernel.orders.component import OrdersComponent
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.journal import OrderRecord, OrderState
from hrkernel.orders.reconcile import StateReconciliation
from hrkernel.orders.watch import AUTH_REFUSED

pytestmark = pytest.mark.anyio


class Sink:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_alert(self, **alert: Any) -> None:
        self.sent.append(alert)


def _component(tmp_path: Path, sink: Sink) -> OrdersComponent:
    return OrdersComponent(OrdersSection(), db_path=tmp_path / "orders.duckdb", exchanges={}, lease=None, alerts=sink)


async def test_the_named_source_is_used_and_a_message_mentioning_drift_is_not_reconciliation(tmp_path: Path) -> None:
    sink = Sink()
    component = _component(tmp_path, sink)
    await component._alert("warning", "order hr1 not placed: price drift too large", {"exchange": "n"})
    await component._alert("critical", "balance drift beyond tolerance on n: USDT",
                           {"exchange": "n", "source": "reconciliation"})
    await component._alert("error", "replication history lost: standby wiped, rebuilds on takeover", {"reason": "x"})
    assert [a["source"] for a in sink.sent] == ["orders", "reconciliation", "orders"]
    assert sink.sent[1]["context"] == {"exchange": "n"}  # the source is not part of the alert's context


async def test_an_exchange_alert_is_fingerprinted_by_exchange(tmp_path: Path) -> None:
    sink = Sink()
    await _component(tmp_path, sink)._alert("critical", AUTH_REFUSED,
                                            {"exchange": "n", "order": "hr1", "error": "401", "source": "exchange"})
    [alert] = sink.sent
    assert (alert["source"], alert["title"], alert["message"]) == ("exchange", AUTH_REFUSED, "n: order hr1: 401")
    assert alert["fingerprint_keys"] == ["exchange"] and alert["context"] == {"exchange": "n"}


async def _mid(admin: Any) -> Decimal:
    return Decimal((await admin.get("/_sim/markets/BTCIRT")).json()["mid"])


async def test_reconciliation_names_itself_as_the_source_of_drift_but_not_of_a_failed_order(
        make_pipeline, sim_admin) -> None:
    raised: list[tuple[str, dict[str, Any]]] = []
    pipeline = make_pipeline(seed=False, visibility_window=0.05, prepared_max_age=0.05,
                             alert=lambda level, msg, details: raised.append((msg, details)))
    recon = StateReconciliation(pipeline)
    await recon.reconcile("nobitex")  # the opening balance
    await sim_admin.put("/_sim/balances/default", json={"usdt": "20000"})
    m = await _mid(sim_admin)
    await pipeline.journal.create(OrderRecord(
        client_order_id="hrnever0000000000000000000000001", signal_id="sig", exchange="nobitex", symbol="BTCIRT",
        base="BTC", quote="RLS", side="buy", type="limit", amount=Decimal("0.001"),
        price=(m * Decimal("1.02") / 10).to_integral_value() * 10, state=OrderState.UNKNOWN, attempts=1))
    await asyncio.sleep(0.1)
    await recon.reconcile("nobitex")
    sources = {msg.split(" ")[0] + " " + msg.split(" ")[1]: details.get("source") for msg, details in raised}
    assert sources == {"balance drift": "reconciliation", "order hrnever0000000000000000000000001": None}, raised
