"""Nobitex's wire format: msgspec structs for the bodies it sends, and their mapping onto the
kernel's exchange types and errors.

Nobitex mixes strings, ints and ``"0E-10"`` in monetary fields; msgspec decodes all of them into
``Decimal``. Fields that can hold words (``"price": "market"``) are decoded loosely and converted
by hand. Unknown fields are ignored (Nobitex adds experimental ones without notice).

A reply's *data key* (``orders``, ``trades``, ``wallets``, ``stats``, ``asks``/``bids``, ...)
is required, never defaulted: ``{"status":"ok"}`` alone is not "no orders" but a body that is
not the documented one (a proxy or gateway page), and reading it as an empty list would make
reconciliation believe open orders vanished and fills never happened. ``decode`` turns it into
``MalformedResponseError``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import msgspec

from hrkernel.exchange import (
    Balance,
    Fill,
    MarketStats,
    MarketTrade,
    Order,
    OrderBook,
    OrderStatus,
    OrderType,
    PriceLevel,
    Side,
    canonical_symbol,
)
from hrkernel.exchange import errors as ex

EXCHANGE = "nobitex"
T = TypeVar("T")

Loose = str | int | float | None


class Envelope(msgspec.Struct):
    """The fields every Nobitex answer may carry to say it failed."""

    status: str | None = None
    code: str | None = None
    message: str | None = None
    error: str | None = None
    detail: str | None = None
    backOff: Loose = None
    updatedStatus: str | None = None


class WireOrder(msgspec.Struct):
    id: int | str
    type: str | None = None
    execution: str | None = None
    status: str | None = None
    srcCurrency: str | None = None
    dstCurrency: str | None = None
    market: str | None = None
    price: Loose = None
    amount: Decimal | None = None
    matchedAmount: Decimal | None = None
    unmatchedAmount: Decimal | None = None
    averagePrice: Loose = None
    fee: Decimal | None = None
    created_at: str | None = None
    clientOrderId: str | None = None


class OrderReply(msgspec.Struct):
    status: str
    order: WireOrder


class OrdersReply(msgspec.Struct):
    status: str
    orders: list[WireOrder]


class CancelReply(msgspec.Struct):
    status: str
    updatedStatus: str | None = None
    order: WireOrder | None = None


class WireTrade(msgspec.Struct):
    id: int | str
    orderId: int | str
    price: Decimal
    amount: Decimal
    fee: Decimal = Decimal(0)
    type: str | None = None
    timestamp: str | None = None
    market: str | None = None
    srcCurrency: str | None = None
    dstCurrency: str | None = None


class TradesReply(msgspec.Struct):
    status: str
    trades: list[WireTrade]
    hasNext: bool = False


class WireWallet(msgspec.Struct):
    currency: str
    balance: Decimal
    blockedBalance: Decimal = Decimal(0)
    activeBalance: Decimal | None = None


class WalletsReply(msgspec.Struct):
    status: str
    wallets: list[WireWallet]


class BookReply(msgspec.Struct):
    status: str
    asks: list[tuple[Decimal, Decimal]]
    bids: list[tuple[Decimal, Decimal]]
    lastUpdate: int | None = None
    lastTradePrice: Decimal | None = None


class WirePublicTrade(msgspec.Struct):
    time: int
    price: Decimal
    volume: Decimal
    type: str


class PublicTradesReply(msgspec.Struct):
    status: str
    trades: list[WirePublicTrade]


class WireStats(msgspec.Struct):
    isClosed: bool = False
    bestSell: Decimal | None = None
    bestBuy: Decimal | None = None
    volumeSrc: Decimal | None = None
    volumeDst: Decimal | None = None
    latest: Decimal | None = None
    dayLow: Decimal | None = None
    dayHigh: Decimal | None = None
    dayOpen: Decimal | None = None
    dayClose: Decimal | None = None
    dayChange: Decimal | None = None


class StatsReply(msgspec.Struct):
    status: str
    stats: dict[str, WireStats | None]


class OptionsNobitex(msgspec.Struct):
    minOrders: dict[str, Decimal]
    amountPrecisions: dict[str, Decimal]
    pricePrecisions: dict[str, Decimal]


class OptionsReply(msgspec.Struct):
    status: str
    nobitex: OptionsNobitex


_ENVELOPE = msgspec.json.Decoder(Envelope)
_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {}


# --------------------------------------------------------------------------- errors

# failed-status codes → error type. Unknown codes become a plain InvalidOrderError on placements
# and ExchangeError elsewhere: a refusal we do not understand must not be retried.
_CODE_ERRORS: dict[str, type[ex.ExchangeError]] = {
    "OverValueOrder": ex.InsufficientBalanceError,
    "InsufficientBalance": ex.InsufficientBalanceError,
    "SmallOrder": ex.InvalidOrderError,
    "InvalidOrderPrice": ex.InvalidOrderError,
    "BadPrice": ex.InvalidOrderError,
    "PriceConditionFailed": ex.InvalidOrderError,
    "InvalidMarketPair": ex.InvalidOrderError,
    "InvalidExecutionType": ex.InvalidOrderError,
    "InvalidOrderType": ex.InvalidOrderError,
    "ParseError": ex.InvalidOrderError,
    "DuplicateOrder": ex.DuplicateOrderError,
    "MarketClosed": ex.InvalidOrderError,
    "NullIdAndClientOrderId": ex.InvalidOrderError,
    "DuplicateClientOrderId": ex.DuplicateClientOrderIdError,
    "TradingUnavailable": ex.AuthenticationError,
    "FeatureUnavailable": ex.AuthenticationError,
    "TooManyRequests": ex.RateLimitedError,
    "NotFound": ex.OrderNotFoundError,
}


def _loose_float(value: Loose) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def error_for(
    http_status: int, body: bytes, endpoint: str, retry_after_header: str | None = None
) -> ex.ExchangeError | None:
    """The typed error this answer means, or ``None`` if it is a success.

    Checks the HTTP status *and* the body: Nobitex reports refusals as HTTP 200 with
    ``status: failed``, as 4xx/5xx with that body, as 404 ``{"error": "NotFound"}`` and as 401
    ``{"detail": ...}``.
    """
    env: Envelope | None
    try:
        env = _ENVELOPE.decode(body) if body else None
    except (msgspec.DecodeError, msgspec.ValidationError):
        env = None
    common: dict[str, Any] = {"exchange": EXCHANGE, "status": http_status, "raw": body, "endpoint": endpoint}
    if env is not None:
        common["code"] = env.code or env.error
        common["exchange_message"] = env.message or env.detail
    if http_status == 401 or http_status == 403:
        return ex.AuthenticationError("token refused (check [exchanges.*] token)", **common)
    if http_status == 429:
        retry_after = _loose_float(env.backOff) if env is not None else None
        if retry_after is None and retry_after_header is not None:
            retry_after = _loose_float(retry_after_header)
        return ex.RateLimitedError("rate limited", retry_after=retry_after, **common)
    if http_status == 404:
        if env is not None and (env.error == "NotFound" or env.code == "NotFound"):
            return ex.OrderNotFoundError("no such order", **common)
        return ex.ExchangeError("endpoint not found (wrong base_url or path?)", **common)
    if http_status >= 500:
        return ex.ExchangeUnavailableError("server error", **common)
    if env is None:
        if 200 <= http_status < 300:
            return ex.MalformedResponseError("unparseable response body", **common)
        return ex.ExchangeError(f"unexpected HTTP {http_status} with an unparseable body", **common)
    if env.status == "failed" or not 200 <= http_status < 300:
        if env.status == "failed" and env.code is None and env.updatedStatus is not None:
            # Cancelling a filled order: {"status":"failed","updatedStatus":"Done"}, no code.
            return ex.OrderNotCancelableError(
                f"order is already {env.updatedStatus}", current_status=env.updatedStatus, **common
            )
        kind = _CODE_ERRORS.get(env.code or "", None)
        if kind is ex.RateLimitedError:
            return ex.RateLimitedError("rate limited", retry_after=_loose_float(env.backOff), **common)
        if kind is not None:
            return kind("refused", **common)
        if endpoint == "place":
            return ex.InvalidOrderError("order refused", **common)
        return ex.ExchangeError("request refused", **common)
    if env.status not in ("ok", "success"):
        return ex.MalformedResponseError(f"unexpected status {env.status!r}", **common)
    return None


def decode(body: bytes, kind: type[T], endpoint: str, http_status: int = 200) -> T:
    """Decode a successful answer; a body of the wrong shape raises MalformedResponseError."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.json.Decoder(kind)
    try:
        return decoder.decode(body)  # type: ignore[no-any-return]
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ex.MalformedResponseError(
            f"response does not match the documented shape ({exc})",
            exchange=EXCHANGE, status=http_status, raw=body, endpoint=endpoint,
        ) from exc


# --------------------------------------------------------------------------- conversions

_STATUS = {
    "new": OrderStatus.NEW,
    "active": OrderStatus.OPEN,
    "inactive": OrderStatus.INACTIVE,
    "done": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
}

# Order responses name currencies by display name ("Bitcoin", "﷼"); the reliable field is
# `market` ("BTC-RLS"). These cover the names in the docs for when `market` is missing.
_DISPLAY_NAMES = {
    "bitcoin": "BTC", "ethereum": "ETH", "litecoin": "LTC", "tether": "USDT", "ripple": "XRP",
    "﷼": "RLS", "ریال": "RLS", "rial": "RLS", "rls": "RLS", "usdt": "USDT",
}


def to_decimal(value: Loose, *, what: str = "value") -> Decimal | None:
    """Nobitex monetary values: strings, ints, floats or words like ``"market"`` (→ None)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = repr(value)
    try:
        parsed = Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return parsed if parsed.is_finite() else None


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def from_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=UTC)


def currency_code(name: str | None) -> str | None:
    if not name:
        return None
    return _DISPLAY_NAMES.get(name.strip().lower(), name.strip().upper())


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"BTCIRT"`` → ``("BTC", "RLS")``: IRT markets are quoted and settled in **Rial**
    (Nobitex's ``rls``), whatever the symbol's ``IRT`` suggests. ``"BTCUSDT"`` → ``("BTC", "USDT")``;
    ``"BTC/USDT"`` is the same market."""
    upper = canonical_symbol(symbol)
    for suffix, quote in (("USDT", "USDT"), ("IRT", "RLS"), ("RLS", "RLS")):
        if upper.endswith(suffix) and len(upper) > len(suffix):
            return upper[: -len(suffix)], quote
    raise ex.InvalidOrderError(
        f"symbol {symbol!r} is not a Nobitex market (expected <COIN>IRT or <COIN>USDT)", exchange=EXCHANGE
    )


def request_codes(symbol: str) -> tuple[str, str]:
    """``"BTCIRT"`` → ``("btc", "rls")``: the lowercase codes order/list endpoints take."""
    base, quote = split_symbol(symbol)
    return base.lower(), quote.lower()


def symbol_of(market: str | None, src: str | None, dst: str | None) -> str:
    """``"BTC-RLS"`` (or display names) → the public symbol ``"BTCIRT"``."""
    if market and "-" in market:
        base, quote = market.upper().split("-", 1)
    else:
        base, quote = currency_code(src) or "?", currency_code(dst) or "?"
    return base + ("IRT" if quote in ("RLS", "IRT") else quote)


def order_from_wire(w: WireOrder, endpoint: str) -> Order:
    try:
        return _order_from_wire(w, endpoint)
    except ex.MalformedResponseError:
        raise
    except (ex.ExchangeError, ArithmeticError, ValueError) as exc:
        raise ex.MalformedResponseError(
            f"order does not make sense ({exc})", exchange=EXCHANGE, endpoint=endpoint, raw=msgspec.json.encode(w)
        ) from exc


def _order_from_wire(w: WireOrder, endpoint: str) -> Order:
    if not str(w.id).strip():
        raise ValueError("empty order id")
    status = _STATUS.get((w.status or "").lower())
    if status is None:
        raise ex.MalformedResponseError(
            f"unknown order status {w.status!r}", exchange=EXCHANGE, endpoint=endpoint, raw=msgspec.json.encode(w)
        )
    side = Side.SELL if (w.type or "").lower() == "sell" else Side.BUY
    execution = (w.execution or "limit").lower()
    price = to_decimal(w.price)
    otype = OrderType.MARKET if execution.startswith("market") or (w.price == "market") else OrderType.LIMIT
    amount = w.amount if w.amount is not None else Decimal(0)
    filled = w.matchedAmount if w.matchedAmount is not None else (
        amount - w.unmatchedAmount if w.unmatchedAmount is not None else Decimal(0)
    )
    avg = to_decimal(w.averagePrice)
    symbol = symbol_of(w.market, w.srcCurrency, w.dstCurrency)
    base, quote = split_symbol(symbol)
    # Nobitex charges the fee in the currency received: base on a buy, quote on a sell.
    fee_currency = base if side is Side.BUY else quote
    return Order(
        exchange_id=str(w.id),
        client_order_id=w.clientOrderId,
        symbol=symbol,
        side=side,
        type=otype,
        status=status,
        amount=amount,
        price=price,
        filled_amount=filled,
        average_price=avg if avg else None,
        fee=w.fee if w.fee is not None else Decimal(0),
        fee_currency=fee_currency,
        created_at=parse_time(w.created_at),
    )


def fill_from_wire(t: WireTrade) -> Fill:
    try:
        return _fill_from_wire(t)
    except (ex.ExchangeError, ArithmeticError, ValueError) as exc:
        raise ex.MalformedResponseError(
            f"trade does not make sense ({exc})", exchange=EXCHANGE, endpoint="list_trades", raw=msgspec.json.encode(t)
        ) from exc


def _fill_from_wire(t: WireTrade) -> Fill:
    if not str(t.id).strip() or not str(t.orderId).strip():
        raise ValueError("empty trade or order id")
    symbol = symbol_of(t.market, t.srcCurrency, t.dstCurrency)
    side = Side.SELL if (t.type or "").lower() == "sell" else Side.BUY
    base, quote = split_symbol(symbol)
    return Fill(
        trade_id=str(t.id),
        order_id=str(t.orderId),
        symbol=symbol,
        side=side,
        price=t.price,
        amount=t.amount,
        fee=t.fee,
        fee_currency=base if side is Side.BUY else quote,
        time=parse_time(t.timestamp) or datetime.fromtimestamp(0, tz=UTC),
    )


def balance_from_wire(w: WireWallet) -> Balance:
    available = w.activeBalance if w.activeBalance is not None else w.balance - w.blockedBalance
    return Balance(currency=w.currency.upper(), total=w.balance, available=available, blocked=w.blockedBalance)


def book_from_wire(symbol: str, b: BookReply) -> OrderBook:
    return OrderBook(
        symbol=symbol,
        bids=[PriceLevel(p, a) for p, a in b.bids],
        asks=[PriceLevel(p, a) for p, a in b.asks],
        timestamp=from_ms(b.lastUpdate),
        last_trade_price=b.lastTradePrice,
    )


def public_trade_from_wire(symbol: str, t: WirePublicTrade) -> MarketTrade:
    return MarketTrade(
        symbol=symbol, price=t.price, amount=t.volume,
        side=Side.SELL if t.type.lower() == "sell" else Side.BUY,
        time=from_ms(t.time) or datetime.fromtimestamp(0, tz=UTC),
    )


def stats_from_wire(symbol: str, s: WireStats) -> MarketStats:
    return MarketStats(
        symbol=symbol, last=s.latest, best_bid=s.bestBuy, best_ask=s.bestSell,
        day_open=s.dayOpen, day_high=s.dayHigh, day_low=s.dayLow,
        volume_base=s.volumeSrc, volume_quote=s.volumeDst, day_change_percent=s.dayChange,
        is_closed=s.isClosed,
    )
