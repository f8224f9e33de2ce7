"""Nobitex's REST endpoints, as pure handlers: ``(state, account, params) -> (status, body)``.

Shapes follow nobitex/docs-api (``source/includes/_market_trade.md``, ``_market_data.md``,
``_user_data.md``, ``_general_notes.md`` at e7df921): success is 200 ``{"status":"ok",...}``;
a refused operation is 200 ``{"status":"failed","code":...,"message":...}``; input that does not
parse is 400 with that body; an unknown order is 404 ``{"error":"NotFound",...}``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from hrkernel_sim.engine import Order, OrderRejected
from hrkernel_sim.markets import d10, display_name, plain, symbol_of
from hrkernel_sim.state import SimState
from hrkernel_sim.views import order_view, trade_view

Result = tuple[int, dict[str, Any]]

NOT_FOUND: Result = (404, {"error": "NotFound", "message": "No Order matches the given query."})


class BadInput(Exception):
    """Input that does not parse: 400 ``{"status":"failed","code":"ParseError",...}``."""


def _failed(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "failed", "code": code, "message": message, **extra}


def _monetary(params: dict[str, Any], key: str, required: bool) -> Decimal | None:
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise BadInput(f"{key} is required")
        return None
    if isinstance(value, bool):
        raise BadInput(f"{key}: expected a number, found {value!r}")
    try:
        parsed = Decimal(str(value))
    except InvalidOperation:
        raise BadInput(f"{key}: {value!r} is not a number") from None
    if not parsed.is_finite():
        raise BadInput(f"{key}: {value!r} is not a finite number")
    return parsed


def _int(params: dict[str, Any], key: str) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    try:
        return int(str(value))
    except ValueError:
        raise BadInput(f"{key}: {value!r} is not an integer") from None


# -- trading -----------------------------------------------------------------------------------


def orders_add(state: SimState, account: str, params: dict[str, Any], meta: dict[str, Any]) -> Result:
    cid = params.get("clientOrderId")
    try:
        if cid is not None and (not isinstance(cid, str) or len(cid) > 32):
            raise BadInput("clientOrderId must be a string of at most 32 characters")
        side = params.get("type")
        if side not in ("buy", "sell"):
            return 200, _failed("InvalidOrderType", "Order type must be buy or sell", clientOrderId=cid)
        execution = str(params.get("execution") or "limit")
        if execution in ("stop_market", "stop_limit") or params.get("mode") == "oco":
            return 200, _failed("FeatureUnavailable",
                                "The simulator does not offer stop and OCO orders", clientOrderId=cid)
        if execution not in ("limit", "market"):
            return 200, _failed("InvalidExecutionType", "Unknown execution", clientOrderId=cid)
        src = str(params.get("srcCurrency") or "").lower()
        dst = str(params.get("dstCurrency") or "").lower()
        amount = _monetary(params, "amount", required=True)
        price = _monetary(params, "price", required=False)
    except BadInput as exc:
        return 400, _failed("ParseError", str(exc), clientOrderId=cid if isinstance(cid, str) else None)
    assert amount is not None
    if state.config.walk_on_request:
        state.engine.step()
    if execution == "limit" and (price is None or price <= 0):
        return 200, _failed("InvalidOrderPrice", "Order price is missing or invalid", clientOrderId=cid)
    try:
        order = state.engine.place(
            account, side=side, execution=execution.capitalize(), src=src, dst=dst, amount=amount,
            price=price, client_order_id=cid, pro=params.get("pro") == "yes",
            instance=meta.get("instance"), fencing_token=meta.get("fencing_token"),
            request_seq=meta.get("seq"),
        )
    except OrderRejected as exc:
        return 200, _failed(exc.code, exc.message, clientOrderId=cid)
    meta["order_id"] = order.id
    return 200, {"status": "ok", "order": order_view(order, style="add", email=state.account_email(account))}


def _lookup(state: SimState, account: str, params: dict[str, Any], id_key: str) -> Order | Result:
    try:
        order_id = _int(params, id_key)
    except BadInput as exc:
        return 400, _failed("ParseError", str(exc))
    cid = params.get("clientOrderId")
    if order_id is not None:
        order = state.engine.orders.get(order_id)
        if order is None or order.account != account:
            return NOT_FOUND
        return order
    if cid:
        # Only open/active/inactive orders are searched by clientOrderId (docs): a Done or
        # Canceled order is invisible here.
        found = state.engine.find_open_by_client_id(account, str(cid))
        return found if found is not None else NOT_FOUND
    return 200, _failed("NullIdAndClientOrderId", "Either id or clientOrderId is required")


def orders_status(state: SimState, account: str, params: dict[str, Any], meta: dict[str, Any]) -> Result:
    found = _lookup(state, account, params, "id")
    if not isinstance(found, Order):
        return found
    meta["order_id"] = found.id
    return 200, {"status": "ok", "order": order_view(found, style="status", email=state.account_email(account))}


def orders_cancel(state: SimState, account: str, params: dict[str, Any], meta: dict[str, Any]) -> Result:
    wanted = str(params.get("status") or "").lower()
    if wanted not in ("canceled", "active"):
        return 400, _failed("ParseError", "status must be canceled (or active for a new order)")
    found = _lookup(state, account, params, "order")
    if not isinstance(found, Order):
        return found
    meta["order_id"] = found.id
    if wanted == "active" or not found.is_open:
        # Not a permitted transition: e.g. cancelling a filled order answers
        # {"status":"failed","updatedStatus":"Done"} with no code (Postman sample).
        return 200, {"status": "failed", "updatedStatus": found.status}
    state.engine.cancel(found)
    return 200, {"status": "ok", "updatedStatus": found.status,
                 "order": order_view(found, style="update", email=state.account_email(account))}


def orders_cancel_old(state: SimState, account: str, params: dict[str, Any], meta: dict[str, Any]) -> Result:
    try:
        hours = _monetary(params, "hours", required=False)
    except BadInput as exc:
        return 400, _failed("ParseError", str(exc))
    execution = params.get("execution")
    src, dst = params.get("srcCurrency"), params.get("dstCurrency")
    now = state.clock()
    canceled = []
    for order in list(state.engine.orders.values()):
        if order.account != account or order.status != "Active":
            continue
        if hours is not None and now - order.created_at < float(hours) * 3600:
            continue
        if execution and order.execution.lower() != str(execution).lower():
            continue
        if (src and order.src != src) or (dst and order.dst != dst):
            continue
        state.engine.cancel(order)
        canceled.append(order.id)
    meta["canceled"] = canceled
    return 200, {"status": "ok"}


_LIST_STATUS: dict[str, Callable[[Order], bool]] = {
    "open": lambda o: o.is_open,
    "all": lambda o: True,
    "done": lambda o: o.matched > 0,
    "close": lambda o: o.status in ("Done", "Canceled"),
}
_ORDERING = {"id": "id", "created_at": "created_at", "price": "price"}


def orders_list(state: SimState, account: str, params: dict[str, Any], meta: dict[str, Any]) -> Result:
    status = str(params.get("status") or "open")
    if status not in _LIST_STATUS:
        return 400, _failed("ParseError", f"status must be one of {sorted(_LIST_STATUS)}")
    try:
        details = _int(params, "details") or 1
        from_id = _int(params, "fromId")
        page = _int(params, "page") or 1
        page_size = _int(params, "pageSize") or 100
    except BadInput as exc:
        return 400, _failed("ParseError", str(exc))
    if not 1 <= page_size <= 1000 or page < 1:
        return 400, _failed("ParseError", "page must be >= 1 and pageSize between 1 and 1000")
    ordering = str(params.get("order") or "-id")
    reverse = ordering.startswith("-")
    if ordering.lstrip("-") not in _ORDERING:
        return 400, _failed("ParseError", "order must be id, created_at or price, optionally with -")
    attr = _ORDERING[ordering.lstrip("-")]
    match = _LIST_STATUS[status]
    orders = [
        o for o in state.engine.orders.values()
        if o.account == account and match(o)
        and (not params.get("type") or o.side == params["type"])
        and (not params.get("execution") or o.execution.lower() == str(params["execution"]).lower())
        and (not params.get("srcCurrency") or o.src == params["srcCurrency"])
        and (not params.get("dstCurrency") or o.dst == params["dstCurrency"])
        and (from_id is None or o.id > from_id)
    ]
    orders.sort(key=lambda o: getattr(o, attr) or Decimal(0), reverse=reverse)
    chunk = orders[(page - 1) * page_size: page * page_size]
    style = "list2" if details >= 2 else "list1"
    email = state.account_email(account)
    return 200, {"status": "ok", "orders": [order_view(o, style=style, email=email) for o in chunk]}


def trades_list(state: SimState, account: str, params: dict[str, Any], meta: dict[str, Any]) -> Result:
    src, dst = params.get("srcCurrency"), params.get("dstCurrency")
    if bool(src) != bool(dst):
        return 400, _failed("ParseError", "srcCurrency and dstCurrency go together (both or neither)")
    try:
        from_id = _int(params, "fromId")
        page = _int(params, "page") or 1
        page_size = _int(params, "pageSize") or 30
    except BadInput as exc:
        return 400, _failed("ParseError", str(exc))
    horizon = state.clock() - 3 * 86400  # only the last 3 days are served
    trades = [
        t for t in reversed(state.engine.trades)
        if t.account == account and t.timestamp >= horizon
        and (not src or (t.src == src and t.dst == dst))
        and (from_id is None or t.id >= from_id)
    ]
    chunk = trades[(page - 1) * page_size: page * page_size]
    return 200, {"status": "ok", "trades": [trade_view(t) for t in chunk],
                 "hasNext": len(trades) > page * page_size}


# -- wallets -----------------------------------------------------------------------------------


def _rial_value(state: SimState, currency: str, amount: Decimal) -> int:
    if currency == "rls":
        return int(amount)
    market = state.engine.market(currency, "rls")
    return int(amount * market.mid) if market else 0


def wallets_list(state: SimState, account: str, params: dict[str, Any], meta: dict[str, Any]) -> Result:
    wallets: list[dict[str, Any]] = []
    for index, (cur, bal) in enumerate(sorted(state.engine.balances[account].items())):
        blocked = state.engine.blocked[account].get(cur, Decimal(0))
        wallets.append({
            "depositAddress": None,
            "depositTag": None,
            "depositInfo": {},
            "id": 100000 + index,
            "currency": cur,
            "balance": plain(bal),
            "blockedBalance": plain(blocked),
            "activeBalance": plain(bal - blocked),
            "rialBalance": _rial_value(state, cur, bal),
            "rialBalanceSell": _rial_value(state, cur, bal),
        })
    return 200, {"status": "ok", "wallets": wallets}


def wallets_v2(state: SimState, account: str, params: dict[str, Any], meta: dict[str, Any]) -> Result:
    wanted = [c.strip().lower() for c in str(params.get("currencies") or "").split(",") if c.strip()]
    out = {}
    for index, (cur, bal) in enumerate(sorted(state.engine.balances[account].items())):
        if wanted and cur not in wanted:
            continue
        blocked = state.engine.blocked[account].get(cur, Decimal(0))
        out[cur.upper()] = {"id": 100000 + index, "balance": d10(bal), "blocked": plain(blocked)}
    return 200, {"status": "ok", "wallets": out}


def wallets_balance(state: SimState, account: str, params: dict[str, Any], meta: dict[str, Any]) -> Result:
    currency = str(params.get("currency") or "").lower()
    if not currency:
        return 400, _failed("ParseError", "currency is required")
    bal = state.engine.balances[account].get(currency, Decimal(0))
    return 200, {"balance": d10(bal), "status": "ok"}


# -- public market data ------------------------------------------------------------------------


def orderbook(state: SimState, symbol: str) -> Result:
    """``/v3/orderbook/SYMBOL``; ``SYMBOL = all`` answers every market at once, each book under
    its symbol beside ``status`` (docs: "/v2/orderbook/all"), same endpoint and limit."""
    if symbol.upper() == "ALL":
        if state.config.walk_on_request:
            state.engine.step()
        books: dict[str, Any] = {"status": "ok"}
        for sym, each in state.engine.markets.items():
            books[sym] = _book(state, each)
        return 200, books
    market = state.engine.markets.get(symbol.upper())
    if market is None:
        return 200, _failed("InvalidSymbol", f"Unknown market {symbol}")
    if state.config.walk_on_request:
        state.engine.step()
    return 200, {"status": "ok", **_book(state, market)}


def _book(state: SimState, market: Any) -> dict[str, Any]:
    asks = _aggregate(state.engine._levels(market, "ask", exclude=None))
    bids = _aggregate(state.engine._levels(market, "bid", exclude=None))
    return {"lastUpdate": int(market.updated_at * 1000), "lastTradePrice": plain(market.last_price),
            "asks": asks, "bids": bids}


def _aggregate(levels: list[tuple[Decimal, Decimal, object]]) -> list[list[str]]:
    merged: dict[Decimal, Decimal] = {}
    for price, size, _ in levels:
        if size > 0:
            merged[price] = merged.get(price, Decimal(0)) + size
    return [[plain(p), plain(s)] for p, s in merged.items()]


def public_trades(state: SimState, symbol: str) -> Result:
    market = state.engine.markets.get(symbol.upper())
    if market is None:
        return 200, _failed("InvalidSymbol", f"Unknown market {symbol}")
    return 200, {"status": "ok", "trades": [
        {"time": int(t.time * 1000), "price": plain(t.price), "volume": plain(t.volume), "type": t.side}
        for t in list(market.public_trades)[:50]
    ]}


def stats(state: SimState, params: dict[str, Any]) -> Result:
    srcs = {c for c in str(params.get("srcCurrency") or "").lower().split(",") if c}
    dsts = {c for c in str(params.get("dstCurrency") or "").lower().split(",") if c}
    out = {}
    for market in state.engine.markets.values():
        if (srcs and market.src not in srcs) or (dsts and market.dst not in dsts):
            continue
        change = (market.last_price - market.day_open) / market.day_open * 100
        out[f"{market.src}-{market.dst}"] = {
            "isClosed": market.cfg.closed,
            "bestSell": plain(state.engine.best(market, "ask")),
            "bestBuy": plain(state.engine.best(market, "bid")),
            "volumeSrc": d10(market.volume_src),
            "volumeDst": d10(market.volume_dst),
            "latest": plain(market.last_price),
            "mark": plain(market.mid),
            "dayLow": plain(market.day_low),
            "dayHigh": plain(market.day_high),
            "dayOpen": plain(market.day_open),
            "dayClose": plain(market.last_price),
            "dayChange": str(change.quantize(Decimal("0.01"))),
        }
    return 200, {"status": "ok", "stats": out}


def options(state: SimState) -> Result:
    cfg = state.config
    currencies = sorted({m.src for m in state.engine.markets.values()} | {"rls", "usdt"})
    return 200, {"status": "ok", "nobitex": {
        "allCurrencies": currencies,
        "activeCurrencies": currencies,
        "currencyNames": {c: display_name(c) for c in currencies},
        "minOrders": {"rls": plain(cfg.min_order_rls), "usdt": plain(cfg.min_order_usdt),
                      "2": plain(cfg.min_order_rls), "13": plain(cfg.min_order_usdt)},
        "amountPrecisions": {symbol_of(m.src, m.dst): plain(m.cfg.amount_precision)
                             for m in state.engine.markets.values()},
        "pricePrecisions": {symbol_of(m.src, m.dst): plain(m.cfg.price_precision)
                            for m in state.engine.markets.values()},
    }}
