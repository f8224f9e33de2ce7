"""Reconciliation against the simulator over real HTTP: opening balances, orphans (cancel and
adopt), UNKNOWN past the visibility window, late fills, drift within and beyond tolerance, dry run."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from hrkernel.exchange import OrderRequest, OrderType, Side
from hrkernel.orders.errors import TradingHaltedError
from hrkernel.orders.journal import OrderRecord, OrderState
from hrkernel.orders.pipeline import Signal
from hrkernel.orders.reconcile import StateReconciliation

pytestmark = pytest.mark.anyio


async def mid(admin: Any) -> Decimal:
    return Decimal((await admin.get("/_sim/markets/BTCIRT")).json()["mid"])


def at(m: Decimal, factor: str) -> Decimal:
    return (m * Decimal(factor) / 10).to_integral_value() * 10


async def sim_orders(admin: Any, **q: str) -> list[dict[str, Any]]:
    return (await admin.get("/_sim/orders", params=q)).json()["orders"]


def _rec(coid: str, state: OrderState, m: Decimal, exchange_order_id: str | None = None) -> OrderRecord:
    return OrderRecord(client_order_id=coid, signal_id=f"sig-{coid}", exchange="nobitex", symbol="BTCIRT", base="BTC",
                       quote="RLS", side="buy", type="limit", amount=Decimal("0.001"), price=at(m, "1.02"),
                       state=state, exchange_order_id=exchange_order_id, attempts=1)


async def ledger_matches_exchange(pipeline: Any, exchange: Any) -> None:
    on_exchange = {b.currency: b.total for b in await exchange.balances() if b.total}
    ledger = {c: v for c, v in pipeline.ledger.venue_balances("nobitex").items() if v}
    assert ledger == on_exchange


async def test_startup_reconciliation_opens_the_ledger_and_gates_trading(make_pipeline, exchange, sim_admin) -> None:
    pipeline = make_pipeline(seed=False)
    pipeline.halt("startup", "start-up reconciliation not finished")
    with pytest.raises(TradingHaltedError, match="start-up"):
        await pipeline.create_transaction(Signal(signal_id="x", exchange="nobitex", symbol="BTCIRT", side=Side.BUY,
                                                 amount=Decimal("0.001"), price=at(await mid(sim_admin), "0.95")))
    recon = StateReconciliation(pipeline)
    [report] = await recon.reconcile_on_startup()
    assert {d.action for d in report.drift} == {"opening balance"} and report.clean
    assert pipeline.halts == {} and recon.startup_done
    await ledger_matches_exchange(pipeline, exchange)
    again = await recon.reconcile("nobitex")
    assert again.drift == [] and again.clean
    assert [r["exchange"] for r in recon.reports()] == ["nobitex", "nobitex"]


@pytest.mark.parametrize("policy", ["cancel", "adopt"])
async def test_orphans_are_cancelled_or_adopted_by_policy(make_pipeline, exchange, sim_admin, policy) -> None:
    pipeline = make_pipeline(orphan_policy=policy)
    placed = await exchange.place_order(OrderRequest(symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT,
                                                     amount=Decimal("0.001"), price=at(await mid(sim_admin), "0.95"),
                                                     client_order_id="stranger-1"))
    recon = StateReconciliation(pipeline)
    dry = await recon.reconcile("nobitex", dry_run=True)
    assert [o.action for o in dry.orphans] == [f"would {policy}"]
    assert (await sim_orders(sim_admin))[0]["status"] == "Active"
    report = await recon.reconcile("nobitex")
    assert [(o.exchange_id, o.action) for o in report.orphans] == [(placed.exchange_id, policy)]
    [sim_order] = await sim_orders(sim_admin)
    if policy == "cancel":
        assert sim_order["status"] == "Canceled"
        assert pipeline.journal.get("stranger-1") is None
    else:
        assert sim_order["status"] == "Active"
        rec = pipeline.journal.get("stranger-1")
        assert rec is not None and rec.state is OrderState.ACKED and rec.exchange_order_id == placed.exchange_id
        assert (await recon.reconcile("nobitex")).orphans == []


async def test_unknown_past_the_visibility_window_fails_and_is_never_resubmitted(make_pipeline, sim_admin) -> None:
    """An order proven never placed that is older than prepared_max_age is FAILED (with a warning
    alert), never sent late."""
    alerts: list[tuple[str, str]] = []
    pipeline = make_pipeline(visibility_window=0.05, prepared_max_age=0.05,
                             alert=lambda level, msg, details: alerts.append((level, msg)))
    m = await mid(sim_admin)
    await pipeline.journal.create(_rec("hrnever0000000000000000000000001", OrderState.UNKNOWN, m))
    await asyncio.sleep(0.1)
    report = await StateReconciliation(pipeline).reconcile("nobitex")
    rec = pipeline.journal.get("hrnever0000000000000000000000001")
    assert rec is not None and rec.state is OrderState.FAILED and "visibility window" in (rec.reason or "")
    assert [(c.before, c.after) for c in report.changed] == [("UNKNOWN", "FAILED")]
    assert await sim_orders(sim_admin) == []
    assert alerts and alerts[0][0] == "warning" and "never placed" in alerts[0][1]


async def test_a_young_order_proven_never_placed_is_sent_by_the_pipeline_not_dropped(make_pipeline, sim_admin) -> None:
    """A new leader's look-up proved an order absent, then it lost its lease margin before sending
    (seen after a Redis cut): reconciliation does not fail the signal's order, the pipeline sends
    it as its next attempt — once."""
    pipeline = make_pipeline(visibility_window=0.05)
    m = await mid(sim_admin)
    await pipeline.journal.create(_rec("hryoung000000000000000000000001", OrderState.UNKNOWN, m))
    await asyncio.sleep(0.1)
    report = await StateReconciliation(pipeline).reconcile("nobitex")
    rec = pipeline.journal.get("hryoung000000000000000000000001")
    assert rec is not None and rec.state is OrderState.VERIFIED and rec.attempts == 2, rec
    assert [c.note for c in report.changed] == ["never placed; sent by the pipeline"]
    assert [o["clientOrderId"] for o in await sim_orders(sim_admin)] == ["hryoung000000000000000000000001"]
    again = await StateReconciliation(pipeline).reconcile("nobitex")
    assert again.changed == [] and len(await sim_orders(sim_admin)) == 1


async def test_fills_missed_by_a_crash_are_posted_late_and_balances_agree(make_pipeline, exchange, sim_admin) -> None:
    pipeline = make_pipeline(seed=False)
    recon = StateReconciliation(pipeline)
    await recon.reconcile("nobitex")  # opening balance
    m = await mid(sim_admin)
    coid = "hrcrashed000000000000000000000001"[:32]
    rec = _rec(coid, OrderState.PREPARED, m)
    await pipeline.journal.create(rec)
    # the process "died" after the exchange filled the order and ACKED was journaled
    placed = await exchange.place_order(OrderRequest(symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT,
                                                     amount=rec.amount, price=rec.price, client_order_id=coid))
    await pipeline.journal.record(coid, OrderState.ACKED, exchange_order_id=placed.exchange_id)
    report = await recon.reconcile("nobitex")
    assert report.late_fills >= 1 and report.orphans == []
    assert pipeline.journal.get(coid).state is OrderState.VERIFIED  # type: ignore[union-attr]
    assert report.drift == [], report.drift
    await ledger_matches_exchange(pipeline, exchange)


async def test_drift_within_tolerance_is_adjusted_beyond_it_halts_until_acknowledged(make_pipeline, exchange,
                                                                                     sim_admin) -> None:
    alerts: list[tuple[str, str]] = []
    pipeline = make_pipeline(seed=False, balance_tolerance={"USDT": Decimal("1")},
                             alert=lambda level, msg, details: alerts.append((level, msg)))
    recon = StateReconciliation(pipeline)
    await recon.reconcile("nobitex")
    await sim_admin.put("/_sim/balances/default", json={"usdt": "10000.5"})
    report = await recon.reconcile("nobitex")
    assert [(d.currency, d.drift, d.action) for d in report.drift] == [("USDT", Decimal("0.5"), "adjusted")]
    [adj] = [t for t in pipeline.ledger.transactions() if t.kind == "adjustment"]
    assert "within tolerance" in (adj.reason or "")
    assert pipeline.halts == {}

    await sim_admin.put("/_sim/balances/default", json={"usdt": "9000", "btc": "1.5"})
    dry = await recon.reconcile("nobitex", dry_run=True)
    assert {d.action for d in dry.drift} == {"would alerted"} and pipeline.halts == {}
    report = await recon.reconcile("nobitex")
    assert {(d.currency, d.action) for d in report.drift} == {("USDT", "alerted"), ("BTC", "alerted")}
    assert alerts and alerts[-1][0] == "critical" and "USDT" in alerts[-1][1]
    assert "drift" in pipeline.halts and not report.clean
    with pytest.raises(TradingHaltedError, match="drift"):
        await pipeline.create_transaction(Signal(signal_id="y", exchange="nobitex", symbol="BTCIRT", side=Side.BUY,
                                                 amount=Decimal("0.001"), price=at(await mid(sim_admin), "0.95")))
    recon.acknowledge("test")
    assert pipeline.halts == {}


async def test_drift_from_an_order_in_flight_is_deferred_not_alerted_or_adjusted(make_pipeline, exchange, sim_admin) -> None:
    """An order the pipeline is working on has filled on the exchange, its fills not yet read:
    reconciliation running then sees the exchange ahead of the ledger. It neither adjusts, nor
    alerts, nor halts; once the pipeline posts the fills the drift is gone. A drift that outlasts
    `drift_defer_max` reconciliations with orders always in flight is acted on as usual."""
    alerts: list[tuple[str, str]] = []
    pipeline = make_pipeline(drift_defer_max=2, alert=lambda level, msg, details: alerts.append((level, msg)))
    recon = StateReconciliation(pipeline)
    assert (await recon.reconcile("nobitex")).drift == []

    async def filled_while_busy(signal_id: str) -> OrderRecord:
        tx = await pipeline.create_transaction(Signal(signal_id=signal_id, exchange="nobitex", symbol="BTCIRT",
                                                      side=Side.BUY, amount=Decimal("0.001"),
                                                      price=at(await mid(sim_admin), "1.02")))
        rec = await pipeline.journal.record(tx.client_order_id, OrderState.SUBMITTING, attempts=1)
        placed = await exchange.place_order(OrderRequest(symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT,
                                                         amount=rec.amount, price=rec.price,
                                                         client_order_id=rec.client_order_id))
        assert placed.filled_amount == rec.amount
        return rec

    rec = await filled_while_busy("busy")
    async with pipeline.order_lock(rec.client_order_id):  # the pipeline is verifying it right now
        for _ in range(2):
            report = await recon.reconcile("nobitex")
            assert report.drift and {d.action for d in report.drift} == {"deferred"}, report.drift
    assert alerts == [] and pipeline.halts == {} and not pipeline.ledger.has_kind("nobitex", "adjustment")
    assert (await pipeline.execute_transaction(rec)).state is OrderState.VERIFIED  # fills posted
    assert (await recon.reconcile("nobitex")).drift == []
    await ledger_matches_exchange(pipeline, exchange)

    stuck = await filled_while_busy("stuck")
    async with pipeline.order_lock(stuck.client_order_id):  # in flight three reconciliations running
        actions = [{d.action for d in (await recon.reconcile("nobitex")).drift} for _ in range(3)]
    assert actions == [{"deferred"}, {"deferred"}, {"alerted"}]
    assert alerts and alerts[0][0] == "critical" and "drift" in pipeline.halts
