"""Reading fills under Nobitex's ``/market/trades/list`` limit (30 requests a minute): the
adapter's shared, paced trades poll against the simulator over real HTTP **with the simulator's
rate limits on**, so a request over the limit really gets a 429. Ground truth (requests made,
trades that exist) comes from the simulator's admin log, never from the adapter."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import duckdb
import httpx
import pytest

from hrkernel.exchange import Order, OrderRequest, OrderStatus, OrderType, Side
from hrkernel.exchange import errors as ex
from hrkernel.ledger import Ledger
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.journal import OrderJournal, OrderState
from hrkernel.orders.pipeline import Signal, TransactionVerificationPipeline
from hrkernel.types import Amount, Duration

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TOKEN = "fills-token-0001"
BALANCES = {"rls": "1000000000000", "usdt": "10000", "btc": "1"}


@pytest.fixture
async def sim() -> Any:
    """The simulator with Nobitex's documented rate limits enforced (trades/list: 30 a minute)."""
    from hrkernel_sim.config import AccountConfig, SimConfig
    from hrkernel_sim.server import SimServer

    config = SimConfig(accounts={"default": AccountConfig(
        token=TOKEN, balances={k: Amount(v) for k, v in BALANCES.items()})}, walk_on_request=False)
    assert config.rate_limits.enabled and config.rate_limits.limits["trades_list"].limit == 30
    async with SimServer(config) as server:
        yield server


@pytest.fixture
async def admin(sim: Any) -> Any:
    async with httpx.AsyncClient(base_url=sim.base_url, headers=sim.admin_headers, timeout=5) as client:
        yield client


def exchange_for(sim: Any, **overrides: Any) -> Any:
    """The adapter as production runs it (real clock, its limiter on), pointed at ``sim``."""
    from hrkernel_nobitex.config import NobitexConfig
    from hrkernel_nobitex.exchange import NobitexExchange

    options: dict[str, Any] = {"token": TOKEN, "base_url": sim.base_url, "bot_name": "fills-tests", "pro": True}
    options.update(overrides)
    return NobitexExchange(NobitexConfig(**options), instance_id="hr-fills")


async def trades_list_requests(admin: Any) -> list[dict[str, Any]]:
    return (await admin.get("/_sim/requests", params={"endpoint": "trades_list"})).json()["requests"]


async def sim_trades(admin: Any) -> list[dict[str, Any]]:
    return [t for t in (await admin.get("/_sim/trades")).json()["trades"] if t["account"] == "default"]


async def crossing_price(admin: Any) -> Decimal:
    mid = Decimal((await admin.get("/_sim/markets/BTCIRT")).json()["mid"])
    return (mid * Decimal("1.02") / 10).to_integral_value() * 10


async def place_filled(exchange: Any, price: Decimal, n: int, prefix: str) -> list[Order]:
    orders = []
    for i in range(n):
        order = await exchange.place_order(OrderRequest(
            symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT, amount=Decimal("0.001"), price=price,
            client_order_id=f"{prefix}{i}"))
        assert order.status is OrderStatus.FILLED and order.filled_amount == Decimal("0.001")
        orders.append(order)
    return orders


def pipeline_for(tmp_path: Path, exchange: Any, alerts: list[tuple[str, str]]) -> TransactionVerificationPipeline:
    con = duckdb.connect(str(tmp_path / "orders.duckdb"))
    ledger = Ledger(con)
    for ccy, amount in BALANCES.items():
        ledger.deposit("nobitex", ccy.upper(), Decimal(amount), reason="opening balance")
    config = OrdersSection(visibility_window=Duration(0.05), lookup_backoff=Duration(0.05),
                           poll_initial=Duration(0.05), poll_max=Duration(0.5), verify_deadline=Duration(20.0),
                           max_open_orders=1000)
    return TransactionVerificationPipeline(
        exchanges={"nobitex": exchange}, journal=OrderJournal(tmp_path / "orders.journal.sqlite"), ledger=ledger, config=config,
        alert=lambda level, message, details: alerts.append((level, message)))


async def burst(pipeline: TransactionVerificationPipeline, price: Decimal, n: int, prefix: str,
                spread: float = 3.0) -> list[Any]:
    """``n`` crossing buys submitted over ``spread`` seconds, concurrently: each fills on
    placement and is then verified (status, then fills) while the others are being placed."""
    done: list[Any] = []

    async def one(i: int) -> None:
        await anyio.sleep(spread * i / n)
        done.append(await pipeline.submit(Signal(
            signal_id=f"{prefix}{i}", exchange="nobitex", symbol="BTCIRT", side=Side.BUY,
            amount=Decimal("0.001"), price=price)))

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return done


def assert_every_fill_posted_once(pipeline: TransactionVerificationPipeline, trades: list[dict[str, Any]]) -> None:
    posted = [tx.trade_id for tx in pipeline.ledger.transactions(limit=100_000) if tx.kind == "fill"]
    assert sorted(posted) == sorted(str(t["id"]) for t in trades)
    assert pipeline.stats["fills_posted"] == len(trades)
    assert pipeline.ledger.unbalanced_transactions() == []


async def test_sixty_orders_filled_in_a_burst_are_all_verified_within_the_trades_list_limit(
        sim, admin, tmp_path) -> None:
    """The old adapter sent one trades/list per order: the first 30 spent the minute's budget and
    the other 30 stayed unverified past the verify deadline (critical "unresolved" alerts)."""
    alerts: list[tuple[str, str]] = []
    async with exchange_for(sim) as exchange:
        pipeline = pipeline_for(tmp_path, exchange, alerts)
        with anyio.fail_after(50):
            records = await burst(pipeline, await crossing_price(admin), 60, "burst-")
        assert [r.state for r in records] == [OrderState.VERIFIED] * 60, [r.reason for r in records]
        assert not any(r.unresolved for r in records) and alerts == []
        assert pipeline.stats["verified"] == 60 and pipeline.stats["unresolved"] == 0
        feed = exchange.fills.snapshot()
    trades = await sim_trades(admin)
    assert {str(t["orderId"]) for t in trades} == {r.exchange_order_id for r in records}
    assert_every_fill_posted_once(pipeline, trades)
    requests = await trades_list_requests(admin)
    # Far under the limit, and never refused: the shared poll answered everyone.
    assert 1 <= len(requests) <= 15, len(requests)
    assert all(r["status"] == 200 for r in requests)
    assert feed["calls"] >= 60 and feed["requests"] == len(requests)


async def test_concurrent_order_fills_share_one_request_and_are_then_answered_from_it(sim, admin) -> None:
    async with exchange_for(sim) as exchange:
        orders = await place_filled(exchange, await crossing_price(admin), 12, "share-")
        resting = await exchange.place_order(OrderRequest(
            symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT, amount=Decimal("0.001"),
            price=(await crossing_price(admin)) * Decimal("0.8"), client_order_id="share-rest"))
        assert resting.filled_amount == 0
        results: dict[str, list[Any]] = {}

        async def fills_of(order: Order) -> None:
            results[order.exchange_id] = await exchange.order_fills(order)

        async with anyio.create_task_group() as tg:
            for order in orders:
                tg.start_soon(fills_of, order)
        assert len(await trades_list_requests(admin)) == 1
        # Asked again (the pipeline does after every status change): no request at all, nor for
        # an order whose own status says nothing is filled.
        for order in orders:
            assert await exchange.order_fills(order) == results[order.exchange_id]
        assert await exchange.order_fills(resting) == []
        assert len(await trades_list_requests(admin)) == 1
    trades = await sim_trades(admin)
    for order in orders:
        fills = results[order.exchange_id]
        assert fills and all(f.order_id == order.exchange_id for f in fills)
        assert sum(f.amount for f in fills) == order.filled_amount
        assert sorted(f.trade_id for f in fills) == sorted(
            str(t["id"]) for t in trades if str(t["orderId"]) == order.exchange_id)


async def test_a_429_on_trades_list_is_waited_out_and_no_fill_is_lost(sim, admin, tmp_path) -> None:
    """The 429's backOff (3 s, longer than rate_limit_max_wait) is honoured: the next poll goes
    out only after it, every order is verified, every fill posted once."""
    await admin.put("/_sim/faults", json={"back_off": 3})
    response = await admin.post("/_sim/faults/script", json={"endpoint": "trades_list", "kind": "error_429"})
    assert response.status_code == 200, response.text
    alerts: list[tuple[str, str]] = []
    async with exchange_for(sim) as exchange:
        pipeline = pipeline_for(tmp_path, exchange, alerts)
        with anyio.fail_after(40):
            records = await burst(pipeline, await crossing_price(admin), 10, "backoff-")
    assert [r.state for r in records] == [OrderState.VERIFIED] * 10, [r.reason for r in records]
    assert alerts == []
    assert_every_fill_posted_once(pipeline, await sim_trades(admin))
    first, *rest = await trades_list_requests(admin)
    assert first["status"] == 429 and rest and all(r["status"] == 200 for r in rest)
    assert rest[0]["time"] - first["time"] >= 3.0  # nothing sent inside the backOff


async def test_the_simulators_own_limit_lowered_under_load_is_respected() -> None:
    """Nobitex may lower a limit under load without notice: the simulator allows 2 trades/list
    per 4 s while the adapter believes 30/min. Its 429s are waited out, never ignored (ignoring
    them three times would block the token for two minutes)."""
    from hrkernel_sim.config import AccountConfig, RateLimit, RateLimitConfig, SimConfig
    from hrkernel_sim.server import SimServer

    limits = RateLimitConfig().limits | {"trades_list": RateLimit(limit=2, window=Duration(4.0))}
    config = SimConfig(accounts={"default": AccountConfig(
        token=TOKEN, balances={k: Amount(v) for k, v in BALANCES.items()})}, walk_on_request=False,
        rate_limits=RateLimitConfig(limits=limits))
    async with SimServer(config) as sim, \
            httpx.AsyncClient(base_url=sim.base_url, headers=sim.admin_headers, timeout=5) as admin, \
            exchange_for(sim, fills_poll_interval=Duration(0.05), fills_poll_burst=1) as exchange:
        price = await crossing_price(admin)
        fills: list[Any] = []
        with anyio.fail_after(40):
            for i in range(4):
                [order] = await place_filled(exchange, price, 1, f"lowered-{i}-")
                fills.extend(await exchange.order_fills(order))
        requests = await trades_list_requests(admin)
        trades = await sim_trades(admin)
    limited = [r for r in requests if r["status"] == 429]
    assert limited and all(r["code"] == "TooManyRequests" for r in limited)
    # Each 429 was followed by a wait of its backOff: never two in a row (the third ignored one
    # would have blocked the token).
    assert all(a["status"] != 429 or b["status"] != 429 for a, b in zip(requests, requests[1:], strict=False))
    assert sorted(f.trade_id for f in fills) == sorted(str(t["id"]) for t in trades)


async def test_fills_older_than_the_first_poll_are_found_by_scanning_the_market(sim, admin) -> None:
    """Trades made before the feed's first poll, beyond its first page, are read by a scan of
    the order's market (newest first) instead of being reported missing."""
    async with exchange_for(sim, fills_page_size=5) as exchange:
        orders = await place_filled(exchange, await crossing_price(admin), 12, "old-")
        oldest = await exchange.order_fills(orders[0])
        assert sum(f.amount for f in oldest) == orders[0].filled_amount
        spent = len(await trades_list_requests(admin))
        for order in orders:
            assert sum(f.amount for f in await exchange.order_fills(order)) == order.filled_amount
        assert len(await trades_list_requests(admin)) == spent  # all read by then
        assert exchange.fills.snapshot()["scans"] == 1
    # The first poll (the newest page) and a scan of a few pages: never a request per order.
    assert len(await trades_list_requests(admin)) <= 1 + 3


async def test_a_failed_poll_fails_every_caller_waiting_on_it_without_a_stampede(sim, admin) -> None:
    async with exchange_for(sim, retry_attempts=1) as exchange:
        orders = await place_filled(exchange, await crossing_price(admin), 6, "fail-")
        response = await admin.post("/_sim/faults/script", json={"endpoint": "trades_list", "kind": "error_500"})
        assert response.status_code == 200
        outcomes: list[BaseException | None] = []

        async def fills_of(order: Order) -> None:
            try:
                await exchange.order_fills(order)
                outcomes.append(None)
            except ex.ExchangeError as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tg:
            for order in orders:
                tg.start_soon(fills_of, order)
        assert len(outcomes) == 6 and all(isinstance(o, ex.ExchangeUnavailableError) for o in outcomes)
        assert len(await trades_list_requests(admin)) == 1
        # The next ask polls again and gets them.
        assert sum(f.amount for f in await exchange.order_fills(orders[0])) == orders[0].filled_amount


# --------------------------------------------------------------------------------------------
# The same feed against a scripted server and a manual clock: the exact requests and waits.


def filled(exchange_id: str, amount: str = "1") -> Order:
    from datetime import UTC, datetime

    return Order(exchange_id=exchange_id, client_order_id=None, symbol="BTCIRT", side=Side.BUY,
                 type=OrderType.LIMIT, status=OrderStatus.FILLED, amount=Decimal(amount), price=Decimal(100),
                 filled_amount=Decimal(amount), average_price=Decimal(100), fee=Decimal(0), fee_currency="BTC",
                 created_at=datetime(2026, 11, 21, 12, 0, tzinfo=UTC))


def trade(trade_id: int, order_id: int, amount: str = "1") -> dict[str, Any]:
    return {"id": trade_id, "orderId": order_id, "srcCurrency": "Bitcoin", "dstCurrency": "﷼",
            "market": "BTC-RLS", "timestamp": "2026-11-21T12:00:01+00:00", "type": "buy", "price": "100",
            "amount": amount, "total": "100", "fee": "0"}


class TradesBook:
    """/market/trades/list over a list of trades, as documented: newest first, ``fromId`` (id >=),
    ``page``/``pageSize`` (default 30), ``hasNext``."""

    def __init__(self, clock: Any = None) -> None:
        self.trades: list[dict[str, Any]] = []
        self.clock = clock
        self.at: list[float] = []

    def __call__(self, req: Any) -> Any:
        if self.clock is not None:
            self.at.append(self.clock())
        q = req.query
        rows = sorted((t for t in self.trades if "fromId" not in q or t["id"] >= int(q["fromId"])),
                      key=lambda t: -t["id"])
        page, size = int(q.get("page", 1)), int(q.get("pageSize", 30))
        chunk = rows[(page - 1) * size: page * size]
        return (200, {"status": "ok", "trades": chunk, "hasNext": len(rows) > page * size})


async def test_polls_ask_only_for_trades_newer_than_any_seen_page_after_page(scripted, make_exchange) -> None:
    book = TradesBook()
    book.trades = [trade(i, 10_000 + i) for i in range(1, 251)]
    scripted.on("/market/trades/list", book)
    exchange, _ = make_exchange(scripted.base_url)
    async with exchange:
        assert [f.trade_id for f in await exchange.order_fills(filled("10250"))] == ["250"]
        book.trades += [trade(i, 10_000 + i) for i in range(251, 401)]
        assert [f.trade_id for f in await exchange.order_fills(filled("10260"))] == ["260"]
        # Everything from 151 up is known now: no request.
        assert [f.trade_id for f in await exchange.order_fills(filled("10399"))] == ["399"]
    assert [r.query for r in scripted.hits("/market/trades/list")] == [
        {"pageSize": "100"},
        {"pageSize": "100", "fromId": "251"},
        {"pageSize": "100", "fromId": "251", "page": "2"}]


async def test_polls_are_paced_to_the_limit_after_a_short_burst(scripted, make_exchange) -> None:
    exchange, clock = make_exchange(scripted.base_url)
    book = TradesBook(clock)
    scripted.on("/market/trades/list", book)
    start = clock()
    async with exchange:
        for i in range(1, 7):
            book.trades.append(trade(i, 500 + i))
            assert len(await exchange.order_fills(filled(str(500 + i)))) == 1
    # 30 per 60 s spread evenly is one every 2 s; three may go back to back.
    assert [t - start for t in book.at] == [0, 0, 0, 2, 4, 6]


async def test_calls_waiting_on_a_lagging_list_share_one_scan_and_the_next_polls(scripted, make_exchange) -> None:
    """The order's status says filled but trades/list does not list the trades yet: every call
    waits for the next shared poll; one scan of the market is enough for all of them."""
    exchange, _ = make_exchange(scripted.base_url)
    book = TradesBook()
    served = 0

    def lagging(req: Any) -> Any:
        nonlocal served
        served += 1
        if served == 5:
            book.trades = [trade(100 + i, i) for i in range(1, 11)]
        return book(req)

    scripted.on("/market/trades/list", lagging)
    results: dict[str, int] = {}
    async with exchange:
        async def fills_of(i: int) -> None:
            results[str(i)] = len(await exchange.order_fills(filled(str(i))))

        async with anyio.create_task_group() as tg:
            for i in range(1, 11):
                tg.start_soon(fills_of, i)
        scans = exchange.fills.snapshot()["scans"]
    assert results == {str(i): 1 for i in range(1, 11)}
    # Polls until the trades are listed and at most one scan per poll that came back without
    # them (a scan per call would be ten).
    hits = scripted.hits("/market/trades/list")
    assert scans == sum(1 for h in hits if "srcCurrency" in h.query) <= 2 and len(hits) <= 6


async def test_a_429_backoff_longer_than_the_transport_waits_is_sat_out_by_the_waiting_call(
        scripted, make_exchange) -> None:
    book = TradesBook()
    book.trades = [trade(7, 70)]
    limited = (429, {"status": "failed", "code": "TooManyRequests", "message": "wait", "backOff": 25, "limit": 30})
    answers = iter([limited])
    scripted.on("/market/trades/list", lambda req: next(answers, None) or book(req))
    exchange, clock = make_exchange(scripted.base_url)
    async with exchange:
        fills = await exchange.order_fills(filled("70"))
    assert [f.trade_id for f in fills] == ["7"] and len(scripted.hits("/market/trades/list")) == 2
    assert sum(clock.sleeps) >= 25  # nothing sent inside the backOff


async def test_no_poll_possible_within_fills_wait_is_a_rate_limited_error(scripted, make_exchange) -> None:
    limited = (429, {"status": "failed", "code": "TooManyRequests", "message": "wait", "backOff": 60, "limit": 30})
    scripted.on("/market/trades/list", limited)
    exchange, _ = make_exchange(scripted.base_url, fills_wait=Duration(30.0))
    async with exchange:
        with pytest.raises(ex.RateLimitedError):
            await exchange.order_fills(filled("70"))
    assert len(scripted.hits("/market/trades/list")) == 1


def test_a_page_size_nobitex_does_not_accept_is_refused_at_config_time() -> None:
    from hrkernel.config import load_config_text
    from hrkernel.config.plugin_tables import validate_plugin_config
    from hrkernel.errors import ConfigError
    from hrkernel.plugins import PluginHost

    host = PluginHost(strict=True)
    host.discover()
    host.collect()
    text = '[exchanges.nobitex]\ntype = "nobitex"\ntoken = "t"\nfills_page_size = 500\n'
    with pytest.raises(ConfigError, match="fills_page_size must be 1..100"):
        validate_plugin_config(load_config_text(text, "hr.toml", environ={}), host)
