"""The documents' order API — EnhancedNobitexAdapter, ConnectionPool, TransactionVerificationPipeline,
StateReconciliation — against the Nobitex simulator over real HTTP."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from hrkernel.bus.memory import MemoryBus
from hrkernel.compat import (
    ConnectionPool,
    EnhancedNobitexAdapter,
    StateReconciliation,
    TransactionVerificationPipeline,
)
from hrkernel.exchange import OrderRequest, OrderType, Side
from hrkernel.orders.journal import OrderState

from .conftest import SIM_TOKEN, adapter_config

pytestmark = pytest.mark.anyio


async def test_adapter_from_the_documents_config_authenticates_with_api_key_as_token(sim: Any, sim_admin: httpx.AsyncClient) -> None:
    pool = ConnectionPool(name="nobitex", create_client_func=httpx.AsyncClient,
                          config={"min_connections": 1, "max_connections": 3, "connection_timeout": 4,
                                  "idle_timeout": 30})
    adapter = EnhancedNobitexAdapter(config={**adapter_config(sim.base_url), "connection_pool": pool})
    try:
        await adapter.initialize()
        # A private call: the simulator accepts only its account's token.
        balances = {b.currency: b.total for b in await adapter.balances()}
        assert balances["BTC"] == Decimal("1")
        assert adapter.config.token == SIM_TOKEN
        assert adapter.config.max_connections == 3 and adapter.config.connect_timeout == 4
        # The secret is never sent: Nobitex has no request signing.
        requests = (await sim_admin.get("/_sim/requests")).json()
        sent = str(requests)
        assert "not-used-by-nobitex" not in sent
        assert await adapter.is_healthy()
    finally:
        await adapter.close()


def test_adapter_config_refuses_a_secret_without_a_key_and_unknown_keys() -> None:
    with pytest.raises(ValueError, match="Nobitex authenticates with a token"):
        EnhancedNobitexAdapter(config={"api_secret": "s3cret-value"})
    with pytest.raises(ValueError, match="unknown key\\(s\\) passphrase"):
        EnhancedNobitexAdapter(config={"api_key": "k", "passphrase": "p"})
    with pytest.raises(ValueError) as caught:
        EnhancedNobitexAdapter(config={"api_key": "tok-123456", "token": "other-token"})
    assert "tok-123456" not in str(caught.value) and "other-token" not in str(caught.value)


async def test_base_quote_symbols_name_the_same_market(adapter: Any) -> None:
    market = await adapter.market("BTC/USDT")
    assert market.symbol == "BTCUSDT" and market.quote == "USDT"
    assert await adapter.list_open_orders("BTC/USDT") == []
    assert (await adapter.order_book("BTC/USDT")).symbol == "BTCUSDT"
    assert (await adapter.recent_trades("btc-usdt")) is not None
    assert (await adapter.market_stats("BTC/IRT")).symbol == "BTCIRT"


async def test_pipeline_from_the_documents_places_verifies_and_reports_true(adapter: Any) -> None:
    bus = MemoryBus()
    await bus.connect()
    events: list[Any] = []

    async def collect() -> None:
        async with bus.subscribe("orders", "test") as sub:
            async for delivery in sub:
                events.append(delivery.event)
                await delivery.ack()

    pipeline = TransactionVerificationPipeline(exchange_adapter=adapter, message_bus=bus,
                                               verification_timeout=5, max_retries=2)
    assert pipeline.config.verify_deadline == 5 and pipeline.config.submit_attempts == 2
    async with anyio.create_task_group() as tg:
        tg.start_soon(collect)
        await anyio.sleep(0)
        tx = await pipeline.create_transaction(type="market_buy", symbol="BTC/USDT", amount=0.001, exchange="nobitex")
        # The float became the Decimal the caller wrote, not 0.001000000000000000020816...
        assert tx.amount == Decimal("0.001") and str(tx.amount) == "0.001"
        assert tx.symbol == "BTCUSDT" and tx.state is OrderState.PREPARED
        assert await pipeline.execute_transaction(tx) is True
        rec = pipeline.last_result
        assert rec is not None and rec.state is OrderState.VERIFIED and rec.filled_amount == Decimal("0.001")
        assert pipeline.record(tx) == rec
        with anyio.fail_after(5):
            while len(events) < 2:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert [e.state for e in events] == ["PREPARED", "VERIFIED"]
    assert all(e.client_order_id == tx.client_order_id for e in events)
    # The fill is in the ledger: it agrees with the exchange's own balance.
    on_exchange = {b.currency: b.total for b in await adapter.balances()}
    ledger = pipeline.ledger.venue_balances("nobitex")
    assert ledger["BTC"] == on_exchange["BTC"] > Decimal("1")
    assert ledger["USDT"] == on_exchange["USDT"] < Decimal("10000")
    await bus.aclose()


async def test_a_refused_transaction_returns_false_with_its_reason(adapter: Any) -> None:
    pipeline = TransactionVerificationPipeline(exchange_adapter=adapter, verification_timeout=2, max_retries=1)
    tx = await pipeline.create_transaction(type="market_buy", symbol="BTCUSDT", amount=500.0, exchange="nobitex")
    assert tx.state is OrderState.FAILED and tx.reason
    assert await pipeline.execute_transaction(tx) is False
    assert pipeline.last_result is not None and pipeline.last_result.reason == tx.reason
    with pytest.raises(ValueError, match="transaction type must be"):
        await pipeline.create_transaction(type="stop_buy", symbol="BTCUSDT", amount=0.001)
    with pytest.raises(ValueError, match="amount: expected a finite number"):
        await pipeline.create_transaction(type="market_buy", symbol="BTCUSDT", amount=float("nan"))


async def test_startup_reconciliation_cancels_an_orphan_and_reports_in_the_documents_shape(
    adapter: Any, redis_server: Any, sim_admin: httpx.AsyncClient,
) -> None:
    # An order placed outside the pipeline (no journal row): an orphan, resting below the market.
    book = await adapter.order_book("BTCUSDT")
    orphan = await adapter.place_order(OrderRequest(
        symbol="BTCUSDT", side=Side.BUY, type=OrderType.LIMIT, amount=Decimal("0.001"),
        price=(book.bids[0].price * Decimal("0.95")).quantize(Decimal("0.01"))))
    cache = aioredis.Redis.from_url(redis_server.url)
    try:
        pipeline = TransactionVerificationPipeline(exchange_adapter=adapter)
        report = await StateReconciliation(adapter, pipeline.database, cache).reconcile_on_startup()
        assert report.open_orders_found == 1 and report.orders_cancelled == 1
        assert report.positions_synced == 3  # opening balances of RLS, USDT, BTC
        assert report.balance_drift == {"BTC": Decimal("1"), "RLS": Decimal("100000000000"), "USDT": Decimal("10000")}
        assert report.discrepancies == []
        assert await adapter.list_open_orders() == []
        cancelled = await adapter.get_order(exchange_id=orphan.exchange_id)
        assert cancelled.status.value == "canceled"
        assert b'"orders_cancelled":1' in await cache.get(StateReconciliation.CACHE_KEY)
        # Reconciliation and pipeline share the database's one journal and ledger: trading goes on.
        tx = await pipeline.create_transaction(type="market_sell", symbol="BTC/USDT", amount=0.002)
        assert await pipeline.execute_transaction(tx) is True
    finally:
        await cache.aclose()


async def test_the_kernels_own_pipeline_takes_base_quote_signals(adapter: Any) -> None:
    from hrkernel.orders.pipeline import Signal

    kernel_pipeline = TransactionVerificationPipeline(exchange_adapter=adapter, verification_timeout=5).pipeline
    for balance in await adapter.balances():
        kernel_pipeline.ledger.deposit("nobitex", balance.currency, balance.total, reason="opening balance")
    rec = await kernel_pipeline.submit(Signal(signal_id="s-slash", exchange="nobitex", symbol="btc/usdt",
                                              side=Side.BUY, type=OrderType.MARKET, amount=Decimal("0.001")))
    assert rec.symbol == "BTCUSDT" and rec.state is OrderState.VERIFIED


def test_testnet_and_the_pools_sizing_map_onto_the_adapters_config() -> None:
    from hrkernel_nobitex.compat import nobitex_config

    pool = ConnectionPool(name="p", create_client_func=httpx.AsyncClient,
                          config={"max_connections": 7, "idle_timeout": 12, "connection_timeout": 3})
    config = nobitex_config({"api_key": "tok", "testnet": True, "connection_pool": pool, "timeout": 4})
    assert config.base_url == "https://testnetapiv2.nobitex.ir" and config.token == "tok"
    assert (config.max_connections, config.idle_timeout, config.connect_timeout, config.timeout) == (7, 12, 3, 4)
