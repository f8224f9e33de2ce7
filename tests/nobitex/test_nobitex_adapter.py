"""The Nobitex adapter against a scripted HTTP server on loopback: request shape, decoding of
the documented response examples, and every error mapping (docs-api `_market_trade.md`,
`_general_notes.md`; real failure samples from Nobitex's Postman collection)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import structlog

from hrkernel.exchange import Exchange, OrderRequest, OrderStatus, OrderType, Side
from hrkernel.exchange import errors as ex
from hrkernel.resilience import BreakerState

pytestmark = pytest.mark.anyio

TOKEN = "0123456789abcdef0123456789abcdef01234567"

# docs-api _market_trade.md, "ثبت سفارش" response (trailing comma removed).
ADD_OK = {"status": "ok", "order": {
    "type": "buy", "srcCurrency": "Bitcoin", "dstCurrency": "ریال", "price": "520000000", "amount": "0.6",
    "totalPrice": "312000000.0", "matchedAmount": 0, "unmatchedAmount": "0.6", "id": 25, "status": "Active",
    "partial": False, "fee": 0, "created_at": "2018-11-28T11:36:13.592827+00:00", "clientOrderId": "order1"}}
# docs-api _market_trade.md, order status response.
STATUS_OK = {"status": "ok", "order": {
    "unmatchedAmount": "3.0000000000", "fee": "0E-10", "matchedAmount": "0E-10", "partial": False,
    "price": "8500000.0000000000", "created_at": "2018-11-28T12:25:22.696029+00:00", "id": 5684,
    "srcCurrency": "Litecoin", "totalPrice": "25500000.00000000000000000000", "type": "sell",
    "dstCurrency": "\ufdfc", "isMyOrder": False, "status": "Active", "amount": "3.0000000000",
    "clientOrderId": "order1"}}


def limit_buy(cid: str = "order1", amount: str = "0.6", price: str = "520000000") -> OrderRequest:
    return OrderRequest(symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT, amount=Decimal(amount),
                        price=Decimal(price), client_order_id=cid)


async def test_nobitex_exchange_implements_the_contract(scripted, make_exchange):
    exchange, _ = make_exchange(scripted.base_url)
    assert isinstance(exchange, Exchange)


async def test_place_sends_documented_body_and_headers_and_decodes_the_doc_example(scripted, make_exchange):
    scripted.on("/market/orders/add", (200, ADD_OK))
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        order = await exchange.place_order(limit_buy(amount="0.60000079", price="520000007"), fencing_token=42)
    req = scripted.hits("/market/orders/add")[0]
    assert req.headers["authorization"] == f"Token {TOKEN}"
    assert req.headers["user-agent"] == "TraderBot/tests"
    assert req.headers["x-hr-instance"] == "hr-test"
    assert req.headers["x-hr-fencing-token"] == "42"
    # Amount rounded down to the 0.000001 step, a buy price down to the 10-rial step; strings.
    assert req.json() == {"type": "buy", "execution": "limit", "srcCurrency": "btc", "dstCurrency": "rls",
                          "amount": "0.600000", "price": "520000000", "clientOrderId": "order1"}
    assert order.exchange_id == "25" and order.client_order_id == "order1"
    assert order.status is OrderStatus.OPEN and order.symbol == "BTCIRT"
    assert order.amount == Decimal("0.6") and order.filled_amount == 0 and order.fee == 0
    assert order.price == Decimal("520000000") and order.fee_currency == "BTC"
    assert order.created_at is not None and order.created_at.year == 2018


async def test_sell_price_is_rounded_up_never_below_what_was_asked(scripted, make_exchange):
    scripted.on("/market/orders/add", (200, ADD_OK))
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        await exchange.place_order(OrderRequest(symbol="BTCIRT", side=Side.SELL, type=OrderType.LIMIT,
                                                amount=Decimal("0.01"), price=Decimal("520000001")))
    assert scripted.hits("/market/orders/add")[0].json()["price"] == "520000010"


async def test_status_decodes_0E_10_and_display_names(scripted, make_exchange):
    scripted.on("/market/orders/status", (200, STATUS_OK))
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        order = await exchange.get_order(exchange_id="5684")
        by_cid = await exchange.get_order(client_order_id="order1")
    reqs = scripted.hits("/market/orders/status")
    assert reqs[0].json() == {"id": 5684} and reqs[1].json() == {"clientOrderId": "order1"}
    assert order.symbol == "LTCIRT" and order.side is Side.SELL
    assert order.filled_amount == 0 and order.fee == 0 and order.amount == Decimal(3)
    assert by_cid == order


async def test_small_order_is_refused_locally_without_a_request(scripted, make_exchange):
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        with pytest.raises(ex.InvalidOrderError, match="below the minimum 3000000 RLS") as info:
            await exchange.place_order(limit_buy(amount="0.001", price="1000000"))
        with pytest.raises(ex.InvalidOrderError, match="rounds down to 0"):
            await exchange.place_order(limit_buy(amount="0.0000009"))
        with pytest.raises(ex.InvalidOrderError, match="out of range"):
            await exchange.place_order(limit_buy(amount="1E+40"))
        with pytest.raises(ex.InvalidOrderError, match="finite"):
            await exchange.place_order(limit_buy(price="NaN"))
        with pytest.raises(ex.InvalidOrderError, match="price must be > 0"):
            await exchange.place_order(limit_buy(price="-5"))
        with pytest.raises(ex.InvalidOrderError, match="1..32 characters"):
            await exchange.place_order(limit_buy(cid="x" * 33))
        with pytest.raises(ex.InvalidOrderError, match="no market"):
            await exchange.place_order(OrderRequest(symbol="DOGEIRT", side=Side.BUY, type=OrderType.MARKET,
                                                    amount=Decimal(1)))
    assert info.value.code == "SmallOrder"
    assert scripted.hits("/market/orders/add") == []


@pytest.mark.parametrize(("http", "body", "kind", "code"), [
    (200, {"status": "failed", "code": "OverValueOrder", "message": "Order Validation Failed"},
     ex.InsufficientBalanceError, "OverValueOrder"),
    (200, {"status": "failed", "code": "SmallOrder", "message": "Order Validation Failed"},
     ex.InvalidOrderError, "SmallOrder"),
    (200, {"status": "failed", "code": "BadPrice", "message": "Order Validation Failed"},
     ex.InvalidOrderError, "BadPrice"),
    (400, {"status": "failed", "code": "InvalidMarketPair", "message": "Market Validation Failed"},
     ex.InvalidOrderError, "InvalidMarketPair"),
    (200, {"status": "failed", "code": "DuplicateClientOrderId", "message": "dup", "clientOrderId": "order1"},
     ex.DuplicateClientOrderIdError, "DuplicateClientOrderId"),
    (200, {"status": "failed", "code": "SomethingNew", "message": "?"}, ex.InvalidOrderError, "SomethingNew"),
    (401, {"detail": "توکن غیر مجاز"}, ex.AuthenticationError, None),
    (429, {"status": "failed", "code": "TooManyRequests", "message": "wait", "backOff": 12, "limit": 300},
     ex.RateLimitedError, "TooManyRequests"),
    # A 5xx or garbage answer to a placement proves nothing (a gateway can fail after the origin
    # placed the order): unknown outcome, resolved by client order id.
    (500, {"status": "failed", "message": "internal"}, ex.UnknownOutcomeError, None),
    (503, "<html>maintenance</html>", ex.UnknownOutcomeError, None),
    (200, "<html>cloudflare</html>", ex.UnknownOutcomeError, None),
    (200, {"status": "ok", "orderz": {}}, ex.UnknownOutcomeError, None),
])
async def test_placement_failures_map_to_typed_errors(scripted, make_exchange, http, body, kind, code):
    scripted.on("/market/orders/add", (http, body))
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        with pytest.raises(ex.ExchangeError) as info:
            await exchange.place_order(limit_buy())
    assert type(info.value) is kind
    assert info.value.code == code and info.value.status == http and info.value.exchange == "nobitex"
    if kind is ex.UnknownOutcomeError:
        assert info.value.client_order_id == "order1"
    assert info.value.raw is not None and info.value.raw.startswith(body if isinstance(body, str) else "{")
    assert len(scripted.hits("/market/orders/add")) == 1  # never resent


async def test_429_backoff_keeps_the_endpoint_quiet_for_backoff_seconds(scripted, make_exchange):
    scripted.on("/market/orders/add",
                (429, {"status": "failed", "code": "TooManyRequests", "message": "wait", "backOff": 12}), (200, ADD_OK))
    exchange, clock = make_exchange(scripted.base_url)
    async with exchange:
        with pytest.raises(ex.RateLimitedError) as info:
            await exchange.place_order(limit_buy())
        assert info.value.retry_after == 12
        with pytest.raises(ex.RateLimitedError, match="next slot in 12.0s"):
            await exchange.place_order(limit_buy())
        assert len(scripted.hits("/market/orders/add")) == 1
        clock.advance(12)
        assert (await exchange.place_order(limit_buy())).exchange_id == "25"


async def test_reads_wait_out_a_short_backoff_then_succeed(scripted, make_exchange):
    scripted.on("/market/orders/status",
                (429, {"status": "failed", "code": "TooManyRequests", "message": "wait", "backOff": 1}), (200, STATUS_OK))
    exchange, clock = make_exchange(scripted.base_url)
    async with exchange:
        order = await exchange.get_order(exchange_id="5684")
    assert order.exchange_id == "5684"
    assert 1.0 in clock.sleeps


async def test_local_limits_follow_the_configured_table(scripted, make_exchange):
    from hrkernel.types import Duration
    from hrkernel_nobitex.config import EndpointLimit
    from hrkernel_nobitex.guards import WINDOW_MARGIN

    scripted.on("/market/orders/add", (200, ADD_OK))
    exchange, clock = make_exchange(scripted.base_url, rate_limits={"place": EndpointLimit(requests=2, per=Duration(600))})
    async with exchange:
        await exchange.place_order(limit_buy("a"))
        await exchange.place_order(limit_buy("b"))
        with pytest.raises(ex.RateLimitedError) as info:
            await exchange.place_order(limit_buy("c"))
        # The documented window plus the margin for the send's trip to the exchange.
        assert info.value.retry_after == pytest.approx(600 + WINDOW_MARGIN)
        clock.advance(600 + WINDOW_MARGIN)
        await exchange.place_order(limit_buy("d"))
    assert [r.json()["clientOrderId"] for r in scripted.hits("/market/orders/add")] == ["a", "b", "d"]


async def test_rate_limit_off_sends_everything(scripted, make_exchange):
    from hrkernel.types import Duration
    from hrkernel_nobitex.config import EndpointLimit

    scripted.on("/market/orders/add", (200, ADD_OK))
    exchange, _ = make_exchange(scripted.base_url, rate_limit=False,
                                rate_limits={"place": EndpointLimit(requests=1, per=Duration(600))})
    async with exchange:
        for cid in "abc":
            await exchange.place_order(limit_buy(cid))
    assert len(scripted.hits("/market/orders/add")) == 3


async def test_unknown_order_404_maps_to_order_not_found(scripted, make_exchange):
    scripted.on("/market/orders/status", (404, {"error": "NotFound", "message": "No Order matches the given query."}))
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        with pytest.raises(ex.OrderNotFoundError) as info:
            await exchange.get_order(exchange_id="999")
    assert info.value.code == "NotFound" and info.value.status == 404
    assert len(scripted.hits("/market/orders/status")) == 1  # a refusal is not retried


async def test_wrong_path_404_html_is_not_order_not_found(scripted, make_exchange):
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        with pytest.raises(ex.ExchangeError, match="wrong base_url") as info:
            await exchange.balances()
    assert type(info.value) is ex.ExchangeError and "Not Found" in (info.value.raw or "")


async def test_cancel_of_a_filled_order_is_not_cancelable(scripted, make_exchange):
    scripted.on("/market/orders/update-status", (200, {"status": "failed", "updatedStatus": "Done"}))
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        with pytest.raises(ex.OrderNotCancelableError) as info:
            await exchange.cancel_order(exchange_id="5684")
    assert info.value.current_status == "Done"
    assert scripted.hits("/market/orders/update-status")[0].json() == {"order": 5684, "status": "canceled"}


async def test_cancel_decodes_the_doc_example(scripted, make_exchange):
    scripted.on("/market/orders/update-status", (200, {"status": "ok", "updatedStatus": "Canceled", "order": {
        "amount": "60", "averagePrice": "0", "clientOrderId": None, "created_at": "2025-10-28T09:25:17.774332+00:00",
        "dstCurrency": "﷼", "execution": "Market", "fee": "0", "id": 5684, "market": "USDT-RLS", "matchedAmount": "0",
        "partial": False, "price": "market", "srcCurrency": "Tether", "status": "Canceled", "totalOrderPrice": "2550000",
        "totalPrice": "0", "tradeType": "Spot", "type": "sell", "unmatchedAmount": "60"}}))
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        order = await exchange.cancel_order(client_order_id="x1")
    assert order.status is OrderStatus.CANCELED and order.type is OrderType.MARKET
    assert order.symbol == "USDTIRT" and order.price is None and order.average_price is None
    assert scripted.hits("/market/orders/update-status")[0].json() == {"clientOrderId": "x1", "status": "canceled"}


async def test_garbage_body_is_an_error_that_keeps_the_truncated_raw_body(scripted, make_exchange):
    garbage = "<html>" + "x" * 5000 + "</html>"
    scripted.on("/market/orders/status", (200, garbage))
    scripted.on("/market/orders/list", (200, {"status": "ok", "orders": [{"id": "not", "status": 7}]}))
    exchange, _ = make_exchange(scripted.base_url, retry_attempts=1)
    async with exchange:
        with pytest.raises(ex.MalformedResponseError) as info:
            await exchange.get_order(exchange_id="1")
        with pytest.raises(ex.MalformedResponseError, match="documented shape"):
            await exchange.list_open_orders()
    raw = info.value.raw or ""
    assert raw.startswith("<html>xxx") and "more chars" in raw and len(raw) < 600


async def test_reads_retry_5xx_with_backoff_and_then_succeed(scripted, make_exchange):
    scripted.on("/market/orders/status", (502, "bad gateway"), (503, "unavailable"), (200, STATUS_OK))
    exchange, clock = make_exchange(scripted.base_url, retry_attempts=3)
    async with exchange:
        order = await exchange.get_order(exchange_id="5684")
    assert order.exchange_id == "5684"
    assert len(scripted.hits("/market/orders/status")) == 3 and len(clock.sleeps) == 2


async def test_read_that_hangs_times_out_and_is_retried(scripted, make_exchange):
    scripted.on("/market/orders/status", "hang", (200, STATUS_OK))
    exchange, _ = make_exchange(scripted.base_url, retry_attempts=2)
    async with exchange:
        order = await exchange.get_order(exchange_id="5684")
    assert order.exchange_id == "5684" and len(scripted.hits("/market/orders/status")) == 2


async def test_read_that_always_hangs_raises_timeout(scripted, make_exchange):
    scripted.on("/users/wallets/list", "hang")
    exchange, _ = make_exchange(scripted.base_url, retry_attempts=1)
    async with exchange:
        with pytest.raises(ex.ExchangeTimeoutError):
            await exchange.balances()


@pytest.mark.parametrize("fault", ["hang", "drop"])
async def test_placement_without_answer_is_unknown_outcome_and_never_resent(scripted, make_exchange, fault):
    scripted.on("/market/orders/add", fault)
    exchange, _ = make_exchange(scripted.base_url, retry_attempts=5)
    async with exchange:
        with pytest.raises(ex.UnknownOutcomeError) as info:
            await exchange.place_order(limit_buy("cid-7"))
    assert info.value.client_order_id == "cid-7"
    assert len(scripted.hits("/market/orders/add")) == 1


async def test_connection_refused_is_unavailable_not_unknown(make_exchange):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exchange, _ = make_exchange(f"http://127.0.0.1:{port}", retry_attempts=1)
    async with exchange:
        with pytest.raises(ex.ExchangeUnavailableError) as info:
            await exchange.place_order(limit_buy())
    # /v2/options (markets) failed first: nothing was ever sent, so the outcome is known.
    assert not isinstance(info.value, ex.UnknownOutcomeError)


async def test_breaker_ignores_refusals_but_opens_on_server_errors(scripted, make_exchange):
    scripted.on("/market/orders/add", (200, {"status": "failed", "code": "OverValueOrder", "message": "x"}))
    scripted.on("/market/orders/status", (500, "boom"))
    exchange, clock = make_exchange(scripted.base_url, retry_attempts=1, breaker_failure_threshold=3)
    async with exchange:
        for _ in range(6):
            with pytest.raises(ex.InsufficientBalanceError):
                await exchange.place_order(limit_buy())
        assert exchange.breaker.state is BreakerState.CLOSED
        for _ in range(3):
            with pytest.raises(ex.ExchangeUnavailableError):
                await exchange.get_order(exchange_id="1")
        assert exchange.breaker.state is BreakerState.OPEN
        with pytest.raises(ex.ExchangeUnavailableError, match="circuit breaker") as info:
            await exchange.get_order(exchange_id="1")
        assert info.value.retryable is False
    assert len(scripted.hits("/market/orders/status")) == 3  # the open breaker sent nothing


async def test_market_data_is_cached_and_served_stale_during_an_outage(scripted, make_exchange):
    book = {"status": "ok", "lastUpdate": 1644991756704, "lastTradePrice": "35650565900",
            "asks": [["1476091000", "1.016"], ["1479700000", "0.2561"]],
            "bids": [["1470001120", "0.126571"], ["1470000000", "0.818994"]]}
    scripted.on("/v3/orderbook/BTCIRT", (200, book), (500, "down"))
    exchange, clock = make_exchange(scripted.base_url, retry_attempts=1)
    async with exchange:
        first = await exchange.order_book("btcirt")
        assert await exchange.order_book("BTCIRT") is first  # within the 1 s TTL: no request
        assert len(scripted.hits("/v3/orderbook/BTCIRT")) == 1
        clock.advance(5)
        assert await exchange.order_book("BTCIRT") is first  # expired, exchange failing: stale
        assert exchange.market_data_cache.metrics().stale_serves == 1
        clock.advance(400)  # beyond stale_for (300 s): the failure shows
        with pytest.raises(ex.ExchangeUnavailableError):
            await exchange.order_book("BTCIRT")
    assert first.bids[0].price == Decimal("1470001120") and first.asks[0].price == Decimal("1476091000")
    assert first.last_trade_price == Decimal("35650565900") and first.timestamp is not None


async def test_public_trades_stats_balances_and_fills_decode_the_doc_examples(scripted, make_exchange):
    scripted.on("/v2/trades/BTCIRT", (200, {"status": "ok", "trades": [
        {"time": 1588689375067, "price": "1470000110", "volume": "0", "type": "sell"},
        {"time": 1588689360464, "price": "1470000110", "volume": "0.002", "type": "buy"}]}))
    scripted.on("/market/stats", (200, {"status": "ok", "stats": {"btc-rls": {
        "isClosed": False, "bestSell": "749976360", "bestBuy": "733059600", "volumeSrc": "0.2929480000",
        "volumeDst": "212724856.0678640000", "latest": "750350000", "mark": "747461987", "dayLow": "686021860",
        "dayHigh": "750350000", "dayOpen": "686021860", "dayClose": "750350000", "dayChange": "9.38"}}}))
    scripted.on("/users/wallets/list", (200, {"status": "ok", "wallets": [
        {"id": 2693280, "currency": "rls", "balance": "746212980", "blockedBalance": "0",
         "activeBalance": "746212980", "rialBalance": 746212980, "rialBalanceSell": 746212980,
         "depositAddress": None, "depositTag": None, "depositInfo": {}},
        {"id": 2, "currency": "btc", "balance": "0E-10", "blockedBalance": "0"}]}))
    scripted.on("/market/trades/list", (200, {"status": "ok", "trades": [
        {"id": 123412, "orderId": 1231222, "srcCurrency": "Tether", "dstCurrency": "﷼", "market": "USDT-RLS",
         "timestamp": "2022-07-05T09:57:38.560820+00:00", "type": "sell", "price": "316800", "amount": "57.3605",
         "total": "18171806.4", "fee": "27257.7096"}], "hasNext": False}))
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        trades = await exchange.recent_trades("BTCIRT")
        stats = await exchange.market_stats("BTCIRT")
        balances = await exchange.balances()
        fills = await exchange.recent_fills("USDTIRT")
        markets = await exchange.markets()
    assert [t.side for t in trades] == [Side.SELL, Side.BUY] and trades[1].amount == Decimal("0.002")
    assert trades[0].time.year == 2020
    assert scripted.hits("/market/stats")[0].query == {"srcCurrency": "btc", "dstCurrency": "rls"}
    assert stats.best_ask == Decimal("749976360") and stats.best_bid == Decimal("733059600")
    assert stats.last == Decimal("750350000") and stats.day_change_percent == Decimal("9.38")
    assert balances[0].currency == "RLS" and balances[0].available == Decimal("746212980")
    assert balances[1].total == 0 and balances[1].currency == "BTC"
    assert scripted.hits("/market/trades/list")[0].query == {"srcCurrency": "usdt", "dstCurrency": "rls"}
    fill = fills[0]
    assert (fill.trade_id, fill.order_id, fill.symbol, fill.side) == ("123412", "1231222", "USDTIRT", Side.SELL)
    assert fill.fee == Decimal("27257.7096") and fill.fee_currency == "RLS"
    btc = next(m for m in markets if m.symbol == "BTCIRT")
    assert (btc.base, btc.quote, btc.amount_step, btc.price_step, btc.min_notional) == (
        "BTC", "RLS", Decimal("0.000001"), Decimal("10"), Decimal("3000000"))
    usdt = next(m for m in markets if m.symbol == "BTCUSDT")
    assert usdt.quote == "USDT" and usdt.min_notional == Decimal("11")


async def test_find_order_by_client_id_looks_beyond_open_orders(scripted, make_exchange):
    """A Done order is invisible to status-by-clientOrderId; orders/list?status=all finds it."""
    done = dict(STATUS_OK["order"], status="Done", id=77, clientOrderId="late-1", matchedAmount="3")
    scripted.on("/market/orders/status", (404, {"error": "NotFound", "message": "No Order matches the given query."}))
    scripted.on("/market/orders/list", (200, {"status": "ok", "orders": [done]}))
    scripted.on("/market/trades/list", (200, {"status": "ok", "trades": []}))
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        found = await exchange.find_order_by_client_id("late-1")
        missing = await exchange.find_order_by_client_id("never")
    assert found is not None and found.exchange_id == "77" and found.status is OrderStatus.FILLED
    assert missing is None
    assert scripted.hits("/market/orders/list")[0].query["status"] == "all"


async def test_find_order_by_client_id_checks_orders_behind_recent_fills(scripted, make_exchange):
    other = dict(STATUS_OK["order"], status="Done", id=900, clientOrderId="zzz")

    def status(req):
        body = req.json()
        if body.get("id") == 900:
            return (200, {"status": "ok", "order": other})
        return (404, {"error": "NotFound", "message": "No Order matches the given query."})

    scripted.on("/market/orders/status", status)
    scripted.on("/market/orders/list", (200, {"status": "ok", "orders": []}))
    scripted.on("/market/trades/list", (200, {"status": "ok", "trades": [
        {"id": 1, "orderId": 900, "market": "LTC-RLS", "timestamp": "2022-07-05T09:57:38+00:00",
         "type": "sell", "price": "1", "amount": "1", "fee": "0"}]}))
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        found = await exchange.find_order_by_client_id("zzz")
    assert found is not None and found.exchange_id == "900"


async def test_token_never_appears_in_logs_or_errors(scripted, make_exchange):
    scripted.on("/market/orders/add", (401, {"detail": "توکن غیر مجاز"}))
    exchange, _ = make_exchange(scripted.base_url)
    with structlog.testing.capture_logs() as logs:
        async with exchange:
            with pytest.raises(ex.AuthenticationError) as info:
                await exchange.place_order(limit_buy())
            exchange.log.info("describe", **exchange.describe())
    assert TOKEN not in json.dumps(logs, default=str)
    assert TOKEN not in str(info.value) and TOKEN not in repr(exchange.describe())
    assert logs, "the adapter logs its start"


async def test_missing_token_is_an_authentication_error_before_any_request(scripted, make_exchange):
    exchange, _ = make_exchange(scripted.base_url, token="")
    async with exchange:
        with pytest.raises(ex.AuthenticationError, match="no token configured"):
            await exchange.balances()
    assert scripted.hits("/users/wallets/list") == []


async def test_cancel_by_client_id_without_an_order_in_the_answer_finds_the_canceled_order(scripted, make_exchange):
    canceled = dict(STATUS_OK["order"], status="Canceled", id=31, clientOrderId="c-31")
    scripted.on("/market/orders/update-status", (200, {"status": "ok", "updatedStatus": "Canceled"}))
    scripted.on("/market/orders/status", (404, {"error": "NotFound", "message": "No Order matches the given query."}))
    scripted.on("/market/orders/list", (200, {"status": "ok", "orders": [canceled]}))
    scripted.on("/market/trades/list", (200, {"status": "ok", "trades": []}))
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        order = await exchange.cancel_order(client_order_id="c-31")
    assert order.exchange_id == "31" and order.status is OrderStatus.CANCELED
    assert len(scripted.hits("/market/orders/update-status")) == 1


async def test_a_connection_that_failed_is_replaced_not_reused(scripted, make_exchange):
    scripted.on("/market/orders/status", "drop", (200, STATUS_OK))
    exchange, _ = make_exchange(scripted.base_url, retry_attempts=2)
    async with exchange:
        assert (await exchange.get_order(exchange_id="5684")).exchange_id == "5684"
        metrics = exchange.pool.metrics()
    assert metrics.replaced == 1 and metrics.size == 1


async def test_pool_maintenance_runs_in_the_kernels_task_group_and_stops_on_aclose(scripted, make_exchange):
    import anyio

    exchange, _ = make_exchange(scripted.base_url)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await exchange.start(tg)
            assert len(await exchange.markets()) == 3
            await exchange.aclose()
    assert not exchange.started


@pytest.mark.parametrize(("http", "body"), [(500, {"status": "failed"}), (503, "<html>down</html>"), (200, "<html>")])
async def test_the_same_answers_to_a_read_are_plain_unavailability(scripted, make_exchange, http, body):
    scripted.on("/market/orders/status", (http, body))
    exchange, _ = make_exchange(scripted.base_url, retry_attempts=1)
    async with exchange:
        with pytest.raises(ex.ExchangeUnavailableError) as info:
            await exchange.get_order(exchange_id="1")
    assert info.value.status == http and info.value.raw


async def test_market_order_minimum_is_checked_against_the_book(scripted, make_exchange):
    scripted.on("/v3/orderbook/BTCIRT", (200, {"status": "ok", "lastUpdate": 1, "asks": [["1000000000", "1"]],
                                               "bids": [["990000000", "1"]]}))
    scripted.on("/market/orders/add", (200, ADD_OK))
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        with pytest.raises(ex.InvalidOrderError, match="below the minimum"):
            # 0.002 BTC at the best ask of 1,000,000,000 Rial = 2,000,000 Rial < 3,000,000
            await exchange.place_order(OrderRequest(symbol="BTCIRT", side=Side.BUY, type=OrderType.MARKET,
                                                    amount=Decimal("0.002")))
        await exchange.place_order(OrderRequest(symbol="BTCIRT", side=Side.BUY, type=OrderType.MARKET,
                                                amount=Decimal("0.004")))
    body = scripted.hits("/market/orders/add")[0].json()
    assert body["execution"] == "market" and "price" not in body and body["amount"] == "0.004000"


async def test_a_long_backoff_on_a_read_is_not_waited_out(scripted, make_exchange):
    scripted.on("/market/orders/status",
                (429, {"status": "failed", "code": "TooManyRequests", "message": "wait", "backOff": 30}), (200, STATUS_OK))
    exchange, clock = make_exchange(scripted.base_url, retry_attempts=3)
    async with exchange:
        with pytest.raises(ex.RateLimitedError) as info:
            await exchange.get_order(exchange_id="5684")
    assert info.value.retry_after == 30 and clock.sleeps == []
    assert len(scripted.hits("/market/orders/status")) == 1


async def test_calls_refused_by_an_open_breaker_spend_no_rate_slots(scripted, make_exchange):
    """The chaos demo's look-ups, retried against an open breaker, used up the token's budget
    without sending anything and then waited ~50 s for slots once the exchange was back."""
    from hrkernel.types import Duration
    from hrkernel_nobitex.config import EndpointLimit

    scripted.on("/market/orders/add", (200, ADD_OK))
    exchange, _clock = make_exchange(scripted.base_url, rate_limits={"place": EndpointLimit(requests=2, per=Duration(600))})
    async with exchange:
        exchange.breakers["trading"].force_open(reason="test")
        for coid in ("x", "y", "z"):
            with pytest.raises(ex.ExchangeUnavailableError, match="circuit breaker"):
                await exchange.place_order(limit_buy(coid))
        exchange.breakers["trading"].reset()
        await exchange.place_order(limit_buy("a"))
        await exchange.place_order(limit_buy("b"))  # both slots still there
    assert [r.json()["clientOrderId"] for r in scripted.hits("/market/orders/add")] == ["a", "b"]
