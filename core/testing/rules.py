"""The contract rules, one coroutine each, and why the kernel depends on them.

Every rule gets a freshly started exchange (:class:`~hrkernel.testing.kit.Session`), places only
small orders (``notional_factor`` × the market minimum) and cancels what it leaves open.
"""

from __future__ import annotations

from collections.abc import Awaitable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from hrkernel.exchange import Market, Order, OrderRequest, OrderStatus, OrderType, Side
from hrkernel.exchange import errors as ex
from hrkernel.testing.kit import Rule, RuleFailed, Session, Skip, expect, shape

OPEN = (OrderStatus.NEW, OrderStatus.OPEN)


# --------------------------------------------------------------------------- helpers


def _step(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    return (value / step).to_integral_value(rounding=rounding) * step


async def _orders(s: Session, *, filling: bool, amount_factor: Decimal = Decimal(1)) -> tuple[Market, OrderRequest]:
    """A buy that rests 5% under the best bid, or one that fills at once (2% over the best ask)."""
    x, symbol = s.exchange, s.options.symbol
    market = shape("market", await x.market(symbol))
    book = shape("order_book", await x.order_book(symbol))
    expect(book.bids and book.asks, f"the order book of {symbol} needs both sides for the kit, got {book!r}")
    if filling:
        price = _step(book.asks[0].price * Decimal("1.02"), market.price_step, ROUND_CEILING)
    else:
        price = _step(book.bids[0].price * Decimal("0.95"), market.price_step, ROUND_FLOOR)
    notional = market.min_notional * s.options.notional_factor
    amount = _step(notional / price, market.amount_step, ROUND_CEILING) if notional > 0 else market.amount_step * 10
    amount = max(amount, market.amount_step) * amount_factor
    if filling:
        expect(book.asks[0].amount >= amount, f"the best ask of {symbol} ({book.asks[0]}) is too thin for {amount}")
    return market, OrderRequest(symbol=symbol, side=Side.BUY, type=OrderType.LIMIT, amount=amount, price=price,
                                client_order_id=s.client_id())


async def _place(s: Session, request: OrderRequest) -> Order:
    order = shape("place_order", await s.exchange.place_order(request))
    expect(order.client_order_id == request.client_order_id,
           f"place_order() returned client_order_id {order.client_order_id!r}, sent {request.client_order_id!r}")
    expect(order.symbol == request.symbol and order.side is request.side,
           f"place_order() returned {order.symbol} {order.side}, sent {request.symbol} {request.side}")
    expect(order.amount == request.amount, f"place_order() returned amount {order.amount}, sent {request.amount}")
    return order


async def _find(s: Session, cid: str) -> Order | None:
    return shape("find_order_by_client_id", await s.exchange.find_order_by_client_id(cid, symbol=s.options.symbol))


async def _cancel_quietly(s: Session, order: Order) -> None:
    try:
        await s.exchange.cancel_order(exchange_id=order.exchange_id)
    except ex.ExchangeError:
        pass  # already terminal, or the venue is still failing: the rule's verdict stands


async def _raises(kind: type[ex.ExchangeError] | tuple[type[ex.ExchangeError], ...], call: Awaitable[Any],
                  what: str) -> ex.ExchangeError:
    try:
        value = await call
    except ex.ExchangeError as exc:
        expect(isinstance(exc, kind), f"{what}: raised {type(exc).__name__} ({exc}), expected {_names(kind)}")
        return exc
    raise RuleFailed(f"{what}: returned {value!r}, expected {_names(kind)}")


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _balances(values: list[Any]) -> dict[str, Any]:
    return {b.currency: b for b in values}


# --------------------------------------------------------------------------- rules


async def shapes_and_decimal_amounts(s: Session) -> None:
    """Every read returns the contract's types, every amount a finite Decimal: the ledger adds
    them up and reconciliation compares them exactly."""
    x, symbol = s.exchange, s.options.symbol
    markets = shape("markets", await x.markets())
    expect(symbol in {m.symbol for m in markets}, f"markets() does not list {symbol}")
    market = shape("market", await x.market(symbol))
    expect(market.amount_step > 0 and market.price_step > 0, f"market({symbol}) has a non-positive step: {market}")
    book = shape("order_book", await x.order_book(symbol))
    expect(book.symbol == symbol, f"order_book({symbol}).symbol is {book.symbol!r}")
    expect([lv.price for lv in book.bids] == sorted((lv.price for lv in book.bids), reverse=True),
           "order_book() bids are not best (highest) first")
    expect([lv.price for lv in book.asks] == sorted(lv.price for lv in book.asks),
           "order_book() asks are not best (lowest) first")
    if book.bids and book.asks:
        expect(book.bids[0].price < book.asks[0].price, f"order_book() is crossed: {book.bids[0]} >= {book.asks[0]}")
    shape("recent_trades", await x.recent_trades(symbol))
    stats = shape("market_stats", await x.market_stats(symbol))
    expect(stats.symbol == symbol, f"market_stats({symbol}).symbol is {stats.symbol!r}")
    for balance in shape("balances", await x.balances()):
        expect(balance.total == balance.available + balance.blocked and min(balance.available, balance.blocked) >= 0,
               f"balance {balance.currency}: total {balance.total} != available {balance.available} + "
               f"blocked {balance.blocked} (or one is negative)")
    latency = shape("ping", await x.ping())
    expect(latency >= 0, f"ping() returned {latency}")
    shape("list_open_orders", await x.list_open_orders(symbol))
    shape("recent_fills", await x.recent_fills(symbol))


async def unknown_market_is_an_invalid_order(s: Session) -> None:
    """An unknown symbol is the caller's mistake (InvalidOrderError), never an outage."""
    error = await _raises(ex.InvalidOrderError, s.exchange.market("NOSUCHMARKET0"), "market('NOSUCHMARKET0')")
    expect(not error.counts_as_failure, "an unknown market must not count against a circuit breaker")


async def client_order_id_finds_an_open_order(s: Session) -> None:
    """An accepted order is found by exchange id, by client order id and in the open orders:
    the pipeline resolves every uncertainty by client order id."""
    _, request = await _orders(s, filling=False)
    order = await _place(s, request)
    try:
        expect(order.status in OPEN and order.filled_amount == 0, f"a resting order came back {order.status}, "
               f"filled {order.filled_amount}")
        cid, oid = request.client_order_id, order.exchange_id
        assert cid is not None
        got = await s.eventually(lambda: s.exchange.get_order(exchange_id=oid), lambda o: o.exchange_id == oid,
                                 "get_order(exchange_id) finds the order")
        shape("get_order", got)
        await s.eventually(lambda: s.exchange.get_order(client_order_id=cid), lambda o: o.exchange_id == oid,
                           "get_order(client_order_id) finds the open order")
        for symbol in (s.options.symbol, None):
            def listed(sym: str | None = symbol) -> Awaitable[list[Order]]:
                return s.exchange.list_open_orders(sym)

            await s.eventually(listed, lambda orders: oid in {o.exchange_id for o in orders},
                               f"list_open_orders({symbol!r}) lists the order")
        found = await s.eventually(lambda: _find(s, cid), lambda o: o is not None and o.exchange_id == oid,
                                   "find_order_by_client_id() finds the open order")
        expect(found.status in OPEN, f"find_order_by_client_id() says {found.status} for an open order")
    finally:
        await _cancel_quietly(s, order)


async def open_orders_block_balance(s: Session) -> None:
    """An open buy blocks at least amount × price of the quote currency, and cancelling frees it:
    the risk checks and the ledger read ``available`` and ``blocked``."""
    market, request = await _orders(s, filling=False)
    before = _balances(shape("balances", await s.exchange.balances())).get(market.quote)
    expect(before is not None, f"balances() has no {market.quote} entry to buy with")
    assert before is not None and request.price is not None
    order = await _place(s, request)
    need = request.amount * request.price
    try:
        during = await s.eventually(
            lambda: s.exchange.balances(),
            lambda bs: _balances(bs)[market.quote].blocked - before.blocked >= need,
            f"{market.quote} blocked grows by at least {need} while the order is open")
        now = _balances(during)[market.quote]
        expect(now.total == before.total, f"{market.quote} total moved from {before.total} to {now.total} "
               "although nothing filled")
    finally:
        await _cancel_quietly(s, order)
    await s.eventually(lambda: s.exchange.balances(),
                       lambda bs: _balances(bs)[market.quote].blocked == before.blocked,
                       f"{market.quote} blocked returns to {before.blocked} after the cancel")


async def cancelled_orders_stay_findable(s: Session) -> None:
    """A cancelled order is still found by client order id (in any state), leaves the open
    orders, and cancelling it again is not an error the pipeline would retry."""
    _, request = await _orders(s, filling=False)
    order = await _place(s, request)
    cid = request.client_order_id
    assert cid is not None
    canceled = shape("cancel_order", await s.exchange.cancel_order(client_order_id=cid))
    expect(canceled.exchange_id == order.exchange_id and canceled.status is OrderStatus.CANCELED,
           f"cancel_order() returned {canceled.exchange_id} {canceled.status}")
    await s.eventually(lambda: s.exchange.list_open_orders(s.options.symbol),
                       lambda orders: order.exchange_id not in {o.exchange_id for o in orders},
                       "a cancelled order leaves list_open_orders()")
    found = await s.eventually(lambda: _find(s, cid), lambda o: o is not None and o.status is OrderStatus.CANCELED,
                               "find_order_by_client_id() finds the cancelled order as CANCELED")
    expect(found.exchange_id == order.exchange_id, "find_order_by_client_id() found another order")
    got = shape("get_order", await s.exchange.get_order(exchange_id=order.exchange_id))
    expect(got.status is OrderStatus.CANCELED, f"get_order() says {got.status} after the cancel")
    try:
        again = await s.exchange.cancel_order(exchange_id=order.exchange_id)
    except ex.OrderNotCancelableError:
        return
    expect(again.status is OrderStatus.CANCELED, f"a second cancel returned {again.status}")
    # Another order cancelled by exchange id.
    _, second = await _orders(s, filling=False)
    placed = await _place(s, second)
    by_id = shape("cancel_order", await s.exchange.cancel_order(exchange_id=placed.exchange_id))
    expect(by_id.status is OrderStatus.CANCELED, f"cancel_order(exchange_id) returned {by_id.status}")


async def fills_fees_and_balances_agree(s: Session) -> None:
    """A filled order's fills add up to its filled amount and fee, carry the fee's currency,
    are the same on every read (the ledger posts each trade id once), and move the balances by
    exactly that: this is what reconciliation compares."""
    market, request = await _orders(s, filling=True)
    before = _balances(shape("balances", await s.exchange.balances()))
    order = await _place(s, request)
    cid = request.client_order_id
    assert cid is not None and request.price is not None
    done = await s.eventually(lambda: s.exchange.get_order(exchange_id=order.exchange_id),
                              lambda o: o.status is OrderStatus.FILLED, "the marketable order is FILLED")
    shape("get_order", done)
    expect(done.filled_amount == request.amount, f"filled {done.filled_amount} of {request.amount}")
    expect(done.average_price is not None and done.average_price <= request.price,
           f"average price {done.average_price} of a buy limited at {request.price}")
    expect(done.fee >= 0 and done.fee_currency in (market.base, market.quote),
           f"fee {done.fee} {done.fee_currency!r}: expected >= 0 in {market.base} or {market.quote}")
    fills = await s.eventually(lambda: s.exchange.order_fills(done),
                               lambda fs: sum((f.amount for f in fs), Decimal(0)) == done.filled_amount,
                               "order_fills() adds up to the filled amount")
    shape("order_fills", fills)
    ids = [f.trade_id for f in fills]
    expect(len(ids) == len(set(ids)), f"order_fills() repeats a trade id: {ids}")
    expect(all(f.order_id == done.exchange_id and f.symbol == done.symbol and f.side is done.side for f in fills),
           "a fill names another order, market or side")
    expect(sum((f.fee for f in fills), Decimal(0)) == done.fee, f"fills' fees {[f.fee for f in fills]} != {done.fee}")
    expect(all(f.fee_currency == done.fee_currency for f in fills), "a fill's fee_currency differs from the order's")
    again = shape("order_fills", await s.exchange.order_fills(done))
    expect(sorted(f.trade_id for f in again) == sorted(ids), "order_fills() changed between two reads")
    recent = await s.eventually(lambda: s.exchange.recent_fills(s.options.symbol),
                                lambda fs: set(ids) <= {f.trade_id for f in fs}, "recent_fills() lists the fills")
    shape("recent_fills", recent)
    found = await _find(s, cid)
    expect(found is not None and found.status is OrderStatus.FILLED,
           f"find_order_by_client_id() finds the filled order, got {found!r}")
    await _raises(ex.OrderNotCancelableError, s.exchange.cancel_order(exchange_id=done.exchange_id),
                  "cancel_order() of a filled order")
    fee_base = done.fee if done.fee_currency == market.base else Decimal(0)
    fee_quote = done.fee if done.fee_currency == market.quote else Decimal(0)
    spent = sum((f.price * f.amount for f in fills), Decimal(0)) + fee_quote
    got = done.filled_amount - fee_base
    await s.eventually(
        lambda: s.exchange.balances(),
        lambda bs: (_balances(bs)[market.base].total - _total(before, market.base) == got
                    and _total(before, market.quote) - _balances(bs)[market.quote].total == spent),
        f"balances move by the fills: +{got} {market.base}, -{spent} {market.quote}")


def _total(balances: dict[str, Any], currency: str) -> Decimal:
    entry = balances.get(currency)
    return entry.total if entry is not None else Decimal(0)


async def not_found_means_never_placed(s: Session) -> None:
    """A client order id never used is ``None`` for find_order_by_client_id (the pipeline then
    knows it may place) and OrderNotFoundError for get/cancel."""
    cid = s.client_id()
    expect(await _find(s, cid) is None, "find_order_by_client_id() of a never-used id is not None")
    await _raises(ex.OrderNotFoundError, s.exchange.get_order(client_order_id=cid), "get_order(unknown client id)")
    await _raises(ex.OrderNotFoundError, s.exchange.cancel_order(client_order_id=cid),
                  "cancel_order(unknown client id)")


async def refusals_are_typed_and_place_nothing(s: Session) -> None:
    """An invalid or unaffordable order is refused with its own type, does not count against a
    circuit breaker (it says nothing about the exchange's health) and leaves no order behind."""
    _, request = await _orders(s, filling=False)
    zero = OrderRequest(symbol=request.symbol, side=request.side, type=request.type, amount=Decimal(0),
                        price=request.price, client_order_id=s.client_id())
    huge = OrderRequest(symbol=request.symbol, side=request.side, type=request.type,
                        amount=request.amount * Decimal(10) ** 9, price=request.price, client_order_id=s.client_id())
    for what, req, kind in (("a zero amount", zero, ex.InvalidOrderError),
                            ("an unaffordable order", huge, ex.InsufficientBalanceError)):
        error = await _raises(kind, s.exchange.place_order(req), f"place_order({what})")
        expect(not error.counts_as_failure, f"{type(error).__name__} for {what} counts against a breaker")
        assert req.client_order_id is not None
        expect(await _find(s, req.client_order_id) is None, f"{what} was refused but an order exists")


async def lost_placement_answer_is_resolved_by_client_id(s: Session) -> None:
    """A placement executed but unanswered raises UnknownOutcomeError naming the client order id,
    and find_order_by_client_id then finds the one order: the pipeline never places twice."""
    faults = _faults(s)
    _, request = await _orders(s, filling=False)
    cid = request.client_order_id
    assert cid is not None
    async with faults.answer_lost("place_order"):
        error = await _raises(ex.UnknownOutcomeError, s.exchange.place_order(request), "place_order(answer lost)")
    expect(getattr(error, "client_order_id", None) == cid, f"UnknownOutcomeError names {error.client_order_id!r}")  # type: ignore[attr-defined]
    found = await s.eventually(lambda: _find(s, cid), lambda o: o is not None, "the executed placement is found")
    try:
        expect(found.status in OPEN, f"found as {found.status}")
        opened = [o for o in await s.exchange.list_open_orders(s.options.symbol) if o.client_order_id == cid]
        expect(len(opened) == 1, f"{len(opened)} open orders carry {cid}")
    finally:
        await _cancel_quietly(s, found)


async def lost_cancel_answer_is_resolved_by_lookup(s: Session) -> None:
    """A cancel executed but unanswered raises UnknownOutcomeError; the order is then found
    cancelled."""
    faults = _faults(s)
    _, request = await _orders(s, filling=False)
    order = await _place(s, request)
    async with faults.answer_lost("cancel_order"):
        await _raises(ex.UnknownOutcomeError, s.exchange.cancel_order(exchange_id=order.exchange_id),
                      "cancel_order(answer lost)")
    assert request.client_order_id is not None
    await s.eventually(lambda: _find(s, request.client_order_id or ""),
                       lambda o: o is not None and o.status is OrderStatus.CANCELED, "the cancelled order is found")


async def unavailable_placement_is_unknown_or_not_placed(s: Session) -> None:
    """A placement during an outage raises an ExchangeError; anything but UnknownOutcomeError
    promises nothing was placed, and that promise is checked."""
    faults = _faults(s)
    _, request = await _orders(s, filling=False)
    async with faults.unavailable("place_order"):
        error = await _raises(ex.ExchangeError, s.exchange.place_order(request), "place_order(venue unavailable)")
    assert request.client_order_id is not None
    found = await _find(s, request.client_order_id)
    if isinstance(error, ex.UnknownOutcomeError):
        expect(error.client_order_id == request.client_order_id, "UnknownOutcomeError lacks the client order id")
    else:
        expect(found is None, f"{type(error).__name__} said nothing was sent, but the order exists: {found!r}")
    if found is not None:
        await _cancel_quietly(s, found)


async def unavailable_reads_count_as_failures(s: Session) -> None:
    """A read during an outage raises an error a breaker counts (never an empty answer): an
    empty balance list or book would be taken for the truth."""
    faults = _faults(s)
    for operation, call in (("balances", lambda: s.exchange.balances()),
                            ("order_book", lambda: s.exchange.order_book(s.options.symbol))):
        async with faults.unavailable(operation):
            error = await _raises(ex.ExchangeError, call(), f"{operation}() while unavailable")
        expect(error.counts_as_failure, f"{operation}(): {type(error).__name__} does not count as a failure")


def _faults(s: Session) -> Any:
    if s.options.faults is None:
        raise Skip("needs ConformanceOptions.faults (fault injection into the venue)")
    return s.options.faults


RULES: dict[str, Rule] = {
    fn.__name__: fn for fn in (
        shapes_and_decimal_amounts,
        unknown_market_is_an_invalid_order,
        client_order_id_finds_an_open_order,
        open_orders_block_balance,
        cancelled_orders_stay_findable,
        fills_fees_and_balances_agree,
        not_found_means_never_placed,
        refusals_are_typed_and_place_nothing,
        lost_placement_answer_is_resolved_by_client_id,
        lost_cancel_answer_is_resolved_by_lookup,
        unavailable_placement_is_unknown_or_not_placed,
        unavailable_reads_count_as_failures,
    )
}
"""Every rule by name, in the order they run. Each function's docstring is the rule."""
