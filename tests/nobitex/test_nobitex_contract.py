"""Contract tests: the Nobitex adapter against the Nobitex simulator over real HTTP on loopback,
for every operation of ``hrkernel.exchange.Exchange`` and every error mapping the simulator can
produce (its fault injection, rate limits and business rules). Ground truth is the simulator's
admin log (``/_sim/orders``, ``/_sim/requests``), never the adapter's own view."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hrkernel.exchange import OrderRequest, OrderStatus, OrderType, Side
from hrkernel.exchange import errors as ex
from hrkernel.resilience import BreakerState

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SIM_TOKEN = "contract-token-0001"


async def mid(admin, symbol: str = "BTCIRT") -> Decimal:
    return Decimal((await admin.get(f"/_sim/markets/{symbol}")).json()["mid"])


async def script(admin, endpoint: str, kind: str, count: int = 1) -> None:
    response = await admin.post("/_sim/faults/script", json={"endpoint": endpoint, "kind": kind, "count": count})
    assert response.status_code == 200, response.text


async def sim_orders(admin, **filters) -> list[dict]:
    return (await admin.get("/_sim/orders", params=filters)).json()["orders"]


def resting_buy(price: Decimal, cid: str | None, amount: str = "0.001") -> OrderRequest:
    # 10% under the market: inside Nobitex's ±30% band, far from any ask.
    return OrderRequest(symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT, amount=Decimal(amount),
                        price=price * Decimal("0.9"), client_order_id=cid)


async def test_markets_come_from_v2_options(sim, make_exchange):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN)
    async with exchange:
        markets = {m.symbol: m for m in await exchange.markets()}
        assert await exchange.ping() > 0
    btc = markets["BTCIRT"]
    assert (btc.base, btc.quote, btc.amount_step, btc.price_step, btc.min_notional) == (
        "BTC", "RLS", Decimal("0.000001"), Decimal("10"), Decimal("3000000"))
    assert markets["BTCUSDT"].quote == "USDT" and markets["BTCUSDT"].min_notional == Decimal("11")


async def test_resting_order_lifecycle_place_get_list_cancel(sim, sim_admin, make_exchange):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN, instance_id="hr-a")
    async with exchange:
        placed = await exchange.place_order(resting_buy(await mid(sim_admin), "life-1"), fencing_token=7)
        assert placed.status is OrderStatus.OPEN and placed.client_order_id == "life-1"
        assert placed.filled_amount == 0 and placed.amount == Decimal("0.001")
        assert (await exchange.get_order(exchange_id=placed.exchange_id)).exchange_id == placed.exchange_id
        assert (await exchange.get_order(client_order_id="life-1")).exchange_id == placed.exchange_id
        assert [o.exchange_id for o in await exchange.list_open_orders("BTCIRT")] == [placed.exchange_id]
        assert placed.exchange_id in [o.exchange_id for o in await exchange.list_open_orders()]
        balances = {b.currency: b for b in await exchange.balances()}
        assert balances["RLS"].blocked > 0 and balances["RLS"].available < balances["RLS"].total
        canceled = await exchange.cancel_order(client_order_id="life-1")
        assert canceled.status is OrderStatus.CANCELED
        assert await exchange.list_open_orders("BTCIRT") == []
        # Nobitex: a Canceled order is invisible to status-by-clientOrderId ...
        with pytest.raises(ex.OrderNotFoundError):
            await exchange.get_order(client_order_id="life-1")
        # ... but find_order_by_client_id still resolves it.
        found = await exchange.find_order_by_client_id("life-1", symbol="BTCIRT")
        assert found is not None and found.exchange_id == placed.exchange_id
        assert found.status is OrderStatus.CANCELED
        assert await exchange.find_order_by_client_id("never-placed") is None
    [record] = await sim_orders(sim_admin, clientOrderId="life-1")
    assert record["instance"] == "hr-a" and str(record["fencing_token"]) == "7"


async def test_marketable_order_fills_with_fees_and_fills_match_the_order(sim, sim_admin, make_exchange):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN)
    async with exchange:
        before = {b.currency: b.total for b in await exchange.balances()}
        price = await mid(sim_admin) * Decimal("1.05")
        order = await exchange.place_order(OrderRequest(
            symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT, amount=Decimal("0.002"), price=price,
            client_order_id="fill-1"))
        order = await exchange.get_order(exchange_id=order.exchange_id)
        assert order.status is OrderStatus.FILLED and order.filled_amount == Decimal("0.002")
        assert order.average_price is not None and order.average_price <= price
        fills = await exchange.order_fills(order)
        assert fills and sum(f.amount for f in fills) == order.filled_amount
        assert all(f.order_id == order.exchange_id and f.symbol == "BTCIRT" for f in fills)
        assert sum(f.fee for f in fills) == order.fee and order.fee > 0
        assert fills[0].fee_currency == "BTC"
        assert {f.trade_id for f in fills} <= {f.trade_id for f in await exchange.recent_fills()}
        after = {b.currency: b.total for b in await exchange.balances()}
        assert after["BTC"] - before["BTC"] == order.filled_amount - order.fee
        with pytest.raises(ex.OrderNotCancelableError):
            await exchange.cancel_order(exchange_id=order.exchange_id)
        # A filled order is found by client id although status-by-clientOrderId cannot see it.
        found = await exchange.find_order_by_client_id("fill-1")
        assert found is not None and found.status is OrderStatus.FILLED


async def test_market_data_book_trades_stats(sim, make_exchange):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN)
    async with exchange:
        book = await exchange.order_book("BTCIRT")
        trades = await exchange.recent_trades("BTCIRT")
        stats = await exchange.market_stats("BTCIRT")
    assert book.bids and book.asks and book.bids[0].price < book.asks[0].price
    assert book.bids == sorted(book.bids, key=lambda level: -level.price)
    assert book.asks == sorted(book.asks, key=lambda level: level.price)
    assert all(t.symbol == "BTCIRT" for t in trades)
    assert stats.symbol == "BTCIRT" and stats.best_bid is not None and stats.best_ask is not None
    assert stats.is_closed is False


async def test_refusals_map_to_typed_errors(sim, sim_admin, make_exchange):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN)
    async with exchange:
        price = await mid(sim_admin)
        await exchange.place_order(resting_buy(price, "dup-1"))
        with pytest.raises(ex.DuplicateClientOrderIdError) as dup:
            await exchange.place_order(resting_buy(price, "dup-1", amount="0.002"))
        assert dup.value.code == "DuplicateClientOrderId"
        with pytest.raises(ex.InvalidOrderError) as bad:
            await exchange.place_order(OrderRequest(symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT,
                                                    amount=Decimal("0.001"), price=price * 2))
        assert bad.value.code == "BadPrice"
        with pytest.raises(ex.InsufficientBalanceError) as poor:
            await exchange.place_order(resting_buy(price, "poor-1", amount="100"))
        assert poor.value.code == "OverValueOrder"
        with pytest.raises(ex.OrderNotFoundError) as missing:
            await exchange.get_order(exchange_id="987654321")
        assert missing.value.status == 404
        with pytest.raises(ex.OrderNotFoundError):
            await exchange.cancel_order(exchange_id="987654321")
    assert len(await sim_orders(sim_admin, clientOrderId="dup-1")) == 1
    assert exchange.breaker.state is BreakerState.CLOSED  # refusals never trip it


async def test_wrong_token_is_an_authentication_error(sim, make_exchange):
    exchange, _ = make_exchange(sim.base_url, token="not-a-token")
    async with exchange:
        with pytest.raises(ex.AuthenticationError) as info:
            await exchange.balances()
    assert info.value.status == 401 and info.value.exchange_message


@pytest.mark.parametrize(("kind", "error"), [
    ("error_500", ex.ExchangeUnavailableError),
    ("error_502", ex.ExchangeUnavailableError),
    ("error_503", ex.ExchangeUnavailableError),
    ("error_429", ex.RateLimitedError),
    ("hang", ex.ExchangeTimeoutError),
])
async def test_each_fault_on_a_read_maps_to_its_error(sim, sim_admin, make_exchange, kind, error):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN, retry_attempts=1)
    await script(sim_admin, "wallets_list", kind)
    async with exchange:
        with pytest.raises(ex.ExchangeError) as info:
            await exchange.balances()
        assert type(info.value) is error
        if kind == "error_429":
            assert info.value.retry_after == 5  # the simulator's backOff
        if kind == "error_502":
            assert "502 Bad Gateway" in (info.value.raw or "")  # an HTML body, kept raw
        if kind == "hang":
            assert info.value.raw is None
        if kind != "error_429":
            assert len(await exchange.balances()) >= 1  # next call goes through


async def test_reads_are_retried_through_transient_faults(sim, sim_admin, make_exchange):
    exchange, clock = make_exchange(sim.base_url, token=SIM_TOKEN, retry_attempts=4)
    await script(sim_admin, "orders_list", "error_500")
    await script(sim_admin, "orders_list", "error_502")
    await script(sim_admin, "orders_list", "error_503")
    async with exchange:
        assert await exchange.list_open_orders() == []
    rows = (await sim_admin.get("/_sim/requests", params={"endpoint": "orders_list"})).json()["requests"]
    assert [r["fault"] for r in rows] == ["error_500", "error_502", "error_503", None]
    assert len(clock.sleeps) == 3


@pytest.mark.parametrize("kind", ["error_500", "hang"])
async def test_placement_is_never_retried(sim, sim_admin, make_exchange, kind):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN, retry_attempts=5)
    await script(sim_admin, "orders_add", kind)
    async with exchange:
        price = await mid(sim_admin)
        # Neither a hang nor a 500 proves the order was not placed.
        with pytest.raises(ex.UnknownOutcomeError):
            await exchange.place_order(resting_buy(price, f"once-{kind}"))
        # The simulator injected both before placing anything: resolution says "no order".
        assert await exchange.find_order_by_client_id(f"once-{kind}") is None
    rows = (await sim_admin.get("/_sim/requests", params={"endpoint": "orders_add"})).json()["requests"]
    assert len(rows) == 1


async def test_accept_then_drop_is_unknown_outcome_resolved_by_client_id_with_one_order(
        sim, sim_admin, make_exchange):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN, instance_id="hr-drop")
    await script(sim_admin, "orders_add", "drop_after_accept")
    async with exchange:
        price = await mid(sim_admin)
        with pytest.raises(ex.UnknownOutcomeError) as info:
            await exchange.place_order(resting_buy(price, "drop-1"), fencing_token=11)
        assert info.value.client_order_id == "drop-1"
        found = await exchange.find_order_by_client_id("drop-1", symbol="BTCIRT")
        assert found is not None and found.status is OrderStatus.OPEN
    [record] = await sim_orders(sim_admin, clientOrderId="drop-1")
    assert record["id"] == int(found.exchange_id)
    assert record["instance"] == "hr-drop" and str(record["fencing_token"]) == "11"
    adds = (await sim_admin.get("/_sim/requests", params={"endpoint": "orders_add"})).json()["requests"]
    assert len(adds) == 1 and adds[0]["fault"] == "drop_after_accept"


async def test_simulator_rate_limit_429_backoff_is_honoured(sim, sim_admin, make_exchange):
    """Local counting off: the simulator's own 20/min on /market/stats answers 429 with backOff,
    after which the adapter keeps off that endpoint instead of hammering it."""
    exchange, clock = make_exchange(sim.base_url, token=SIM_TOKEN, rate_limit=False, retry_attempts=1)
    async with exchange:
        for _ in range(20):
            await exchange.market_stats("BTCIRT")
            clock.advance(2)  # past the 1 s market-data cache
        with pytest.raises(ex.RateLimitedError) as info:
            await exchange.market_stats("ETHIRT")
        assert info.value.retry_after and info.value.retry_after > 0
        with pytest.raises(ex.RateLimitedError, match="next slot"):
            await exchange.market_stats("ETHIRT")
    rows = (await sim_admin.get("/_sim/requests", params={"endpoint": "stats"})).json()["requests"]
    assert len(rows) == 21  # the second refusal never left the adapter


async def test_local_limit_stops_before_the_simulator_would(sim, sim_admin, make_exchange):
    exchange, clock = make_exchange(sim.base_url, token=SIM_TOKEN, rate_limit_max_wait=0)
    async with exchange:
        for _ in range(20):
            await exchange.market_stats("BTCIRT")
            clock.advance(2)
        stale = await exchange.market_stats("BTCIRT")  # limited: the cached value is served
        assert stale.symbol == "BTCIRT" and exchange.market_data_cache.metrics().stale_serves == 1
        with pytest.raises(ex.RateLimitedError, match="local rate limit"):
            await exchange.market_stats("ETHIRT")  # nothing cached to fall back on
    rows = (await sim_admin.get("/_sim/requests", params={"endpoint": "stats"})).json()["requests"]
    assert len(rows) == 20 and all(r["status"] == 200 for r in rows)


async def test_breaker_opens_on_downtime_and_market_data_is_served_stale(sim, sim_admin, make_exchange):
    exchange, clock = make_exchange(sim.base_url, token=SIM_TOKEN, retry_attempts=1, breaker_failure_threshold=3)
    async with exchange:
        book = await exchange.order_book("BTCIRT")
        await script(sim_admin, "orderbook", "error_503", count=10)
        await script(sim_admin, "wallets_list", "error_503", count=10)
        clock.advance(2)
        assert await exchange.order_book("BTCIRT") is book  # stale fallback
        for _ in range(3):
            with pytest.raises(ex.ExchangeUnavailableError):
                await exchange.balances()
        assert exchange.breakers["account"].state is BreakerState.OPEN
        assert exchange.breaker is exchange.breakers["account"]  # the worst one is the one shown
        with pytest.raises(ex.ExchangeUnavailableError, match="circuit breaker"):
            await exchange.balances()
        assert await exchange.order_book("BTCIRT") is book  # still served while open


async def test_503s_on_the_order_book_only_leave_balances_and_trading_working(sim, sim_admin, make_exchange):
    """One breaker per endpoint group: the public order book failing (here until its breaker
    opens) refuses neither account reads nor placing and cancelling orders."""
    exchange, clock = make_exchange(sim.base_url, token=SIM_TOKEN, retry_attempts=1, breaker_failure_threshold=3)
    async with exchange:
        price = (await exchange.order_book("BTCIRT")).bids[0].price * Decimal("0.95")
        await exchange.markets()
        await script(sim_admin, "orderbook", "error_503", count=100)
        for _ in range(3):
            clock.advance(400)  # past the cache's stale window: every read goes out and fails
            with pytest.raises(ex.ExchangeUnavailableError):
                await exchange.order_book("BTCIRT")
        assert exchange.breaker.state is BreakerState.OPEN
        assert {b.currency for b in await exchange.balances()} >= {"RLS", "BTC"}
        order = await exchange.place_order(resting_buy(price / Decimal("0.9"), "during-book-outage"))
        assert (await exchange.cancel_order(exchange_id=order.exchange_id)).status is OrderStatus.CANCELED
        assert exchange.breakers["market_data"].state is BreakerState.OPEN
        assert exchange.breakers["account"].state is exchange.breakers["trading"].state is BreakerState.CLOSED
    rows = (await sim_admin.get("/_sim/requests", params={"endpoint": "orderbook"})).json()["requests"]
    assert [r["status"] for r in rows] == [200, 503, 503, 503]  # the open breaker sent no more


async def test_cancel_by_id_and_the_cancel_all_kill_switch(sim, sim_admin, make_exchange):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN)
    async with exchange:
        price = await mid(sim_admin)
        first = await exchange.place_order(resting_buy(price, "k-1"))
        await exchange.place_order(resting_buy(price, "k-2", amount="0.002"))
        await exchange.place_order(resting_buy(price, "k-3", amount="0.003"))
        canceled = await exchange.cancel_order(exchange_id=first.exchange_id, fencing_token=5)
        assert canceled.status is OrderStatus.CANCELED and canceled.exchange_id == first.exchange_id
        assert len(await exchange.list_open_orders("BTCIRT")) == 2
        await exchange.cancel_all("BTCIRT", fencing_token=5)
        assert await exchange.list_open_orders("BTCIRT") == []
    statuses = {o["clientOrderId"]: o["status"] for o in await sim_orders(sim_admin)}
    assert statuses == {"k-1": "Canceled", "k-2": "Canceled", "k-3": "Canceled"}
    rows = (await sim_admin.get("/_sim/requests")).json()["requests"]
    fenced = {r["endpoint"]: r["fencing_token"] for r in rows if r["endpoint"] in ("orders_cancel", "orders_cancel_old")}
    assert fenced == {"orders_cancel": "5", "orders_cancel_old": "5"}
