"""Orders, ledger and the kill switch on the dashboard, read from a real order pipeline with its
DuckDB journal and ledger (embedded dashboard over real HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from hrkernel.kernel import PluginComponent
from hrkernel.ledger.ledger import Ledger
from hrkernel.orders.journal import OrderJournal, OrderRecord, OrderState
from hrkernel.orders.pipeline import TransactionVerificationPipeline
from hrkernel.web.app import StandaloneHost, create_health_dashboard

TOKEN = "orders-test-token"


def record(n: int, state: OrderState) -> OrderRecord:
    return OrderRecord(
        client_order_id=f"hr-{n}", signal_id=f"sig-{n}", exchange="nobitex", symbol="BTCIRT", base="btc",
        quote="rls", side="buy", type="limit", amount=Decimal("0.001"), price=Decimal("6000000000"), state=state,
    )


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[tuple[str, TransactionVerificationPipeline]]:
    journal = OrderJournal(tmp_path / "journal.sqlite")
    ledger = Ledger(str(tmp_path / "ledger.duckdb"))
    pipeline = TransactionVerificationPipeline(exchanges={}, journal=journal, ledger=ledger)
    for n, state in enumerate([OrderState.PREPARED, OrderState.VERIFIED, OrderState.VERIFIED, OrderState.REJECTED]):
        await journal.create(record(n, state))
    ledger.deposit("nobitex", "rls", Decimal("100000000000.5"))
    host = StandaloneHost()
    host.add(PluginComponent("orders", "orders", pipeline, "test"))
    web = create_health_dashboard(host, port=0, token=TOKEN)
    await web.initialize()
    await web.start()
    try:
        yield web.url, pipeline
    finally:
        await web.stop()
        journal.close()
        ledger.close()


@pytest.mark.anyio
async def test_recent_orders_with_states_and_counts(dashboard: tuple[str, Any]) -> None:
    url, _ = dashboard
    async with httpx.AsyncClient(base_url=url) as client:
        data = (await client.get("/api/orders", params={"limit": 3})).json()["data"]
        assert data["counts"] == {"PREPARED": 1, "VERIFIED": 2, "REJECTED": 1}
        assert [o["client_order_id"] for o in data["orders"]] == ["hr-3", "hr-2", "hr-1"]  # newest first
        amount = data["orders"][0]["amount"]
        assert isinstance(amount, str) and Decimal(amount) == Decimal("0.001")  # exact, never a float
        assert data["halted"] is False
        metrics = (await client.get("/metrics")).text
        assert 'hrkernel_orders{state="VERIFIED"} 2.0' in metrics
        # Three finished orders (2 VERIFIED, 1 REJECTED; the PREPARED one is still open).
        assert 'hrkernel_order_latency_seconds_count{phase="total"} 3.0' in metrics


@pytest.mark.anyio
async def test_ledger_balances_are_exact_decimals(dashboard: tuple[str, Any]) -> None:
    url, _ = dashboard
    async with httpx.AsyncClient(base_url=url) as client:
        area = (await client.get("/api/ledger")).json()
    assert area["configured"] is True
    balances = {(b["account"], b["currency"]): b["balance"] for b in area["data"]["balances"]}
    assert Decimal(balances[("nobitex:rls", "rls")]) == Decimal("100000000000.5")


@pytest.mark.anyio
async def test_kill_switch_halts_and_resumes_the_pipeline(dashboard: tuple[str, Any]) -> None:
    url, pipeline = dashboard
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.post("/api/killswitch", json={"on": True})).status_code == 401
        on = await client.post("/api/killswitch", json={"on": True, "reason": "exchange incident"}, headers=auth)
        assert on.status_code == 200 and on.json()["result"]["halted"] is True
        assert pipeline.halts == {"kill_switch": "exchange incident"}
        assert (await client.get("/api/orders")).json()["data"]["halts"] == {"kill_switch": "exchange incident"}
        off = await client.post("/api/killswitch", json={"on": False}, headers=auth)
        assert off.json()["result"]["halted"] is False and pipeline.halts == {}
        audit = (await client.get("/api/audit")).json()["data"]
        assert [(e["action"], e["outcome"]) for e in audit] == [("kill_switch", "ok"), ("kill_switch", "ok"), ("kill_switch", "refused")]
