"""Typed values that cross the exchange boundary (public API).

Every amount and price is a :class:`~decimal.Decimal`; every amount says which currency it is
in (a market's ``base`` for quantities, its ``quote`` for prices and notionals, an explicit
``fee_currency`` for fees). Currency codes are upper-case exchange codes (``"BTC"``, ``"USDT"``,
``"RLS"``); symbols are the exchange's own market symbols (``"BTCIRT"``); a symbol written
``BASE/QUOTE`` (``"BTC/USDT"``) means the same market, see :func:`canonical_symbol`. Structs are frozen:
a value read from an exchange is a fact about a moment, not something to edit.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

import msgspec

__all__ = [
    "Balance",
    "Fill",
    "Market",
    "MarketStats",
    "MarketTrade",
    "Order",
    "OrderBook",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "PriceLevel",
    "Side",
    "canonical_symbol",
]


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(enum.StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class OrderStatus(enum.StrEnum):
    """An order's state as the kernel understands it (each exchange maps its own names)."""

    NEW = "new"
    """Accepted, not yet on the book."""
    OPEN = "open"
    """On the book, possibly partly filled (``filled_amount`` says how much)."""
    INACTIVE = "inactive"
    """A stop order waiting for its trigger."""
    FILLED = "filled"
    """Completely filled (terminal)."""
    CANCELED = "canceled"
    """Cancelled by the user or the exchange, possibly after partial fills (terminal)."""
    REJECTED = "rejected"
    """Refused after acceptance (terminal, nothing filled)."""

    @property
    def is_terminal(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED)


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What to place. ``price`` is required for limit orders; for market orders it is an optional
    worst-price guard where the exchange supports one (Nobitex does)."""

    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    """Quantity in the market's base currency."""
    price: Decimal | None = None
    """Price in the market's quote currency per unit of base."""
    client_order_id: str | None = None
    """The idempotency key: how an uncertain placement is found again. Strongly recommended."""


class Order(msgspec.Struct, frozen=True, kw_only=True):
    exchange_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    status: OrderStatus
    amount: Decimal
    """Ordered quantity (base currency)."""
    price: Decimal | None
    """Limit price (quote currency); ``None`` for a market order without a guard."""
    filled_amount: Decimal
    average_price: Decimal | None
    """Average fill price; ``None`` while nothing is filled."""
    fee: Decimal
    fee_currency: str | None
    created_at: datetime | None
    updated_at: datetime | None = None

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled_amount


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    """One execution of one of our orders."""

    trade_id: str
    order_id: str
    symbol: str
    side: Side
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str
    time: datetime


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    total: Decimal
    available: Decimal
    blocked: Decimal


class PriceLevel(msgspec.Struct, frozen=True, array_like=True):
    price: Decimal
    amount: Decimal


class OrderBook(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    bids: list[PriceLevel]
    """Best (highest) first."""
    asks: list[PriceLevel]
    """Best (lowest) first."""
    timestamp: datetime | None
    last_trade_price: Decimal | None = None


class MarketTrade(msgspec.Struct, frozen=True, kw_only=True):
    """A public trade on a market (anyone's)."""

    symbol: str
    price: Decimal
    amount: Decimal
    side: Side
    """The taker's side."""
    time: datetime


class MarketStats(msgspec.Struct, frozen=True, kw_only=True):
    """A ticker: 24-hour statistics of one market."""

    symbol: str
    last: Decimal | None
    best_bid: Decimal | None
    best_ask: Decimal | None
    day_open: Decimal | None
    day_high: Decimal | None
    day_low: Decimal | None
    volume_base: Decimal | None
    volume_quote: Decimal | None
    day_change_percent: Decimal | None
    is_closed: bool = False


class Market(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    base: str
    quote: str
    amount_step: Decimal
    """Smallest amount increment; amounts are rounded down to a multiple of it."""
    price_step: Decimal
    """Smallest price increment."""
    min_notional: Decimal
    """Minimum ``amount * price`` in ``quote``."""


def canonical_symbol(symbol: str) -> str:
    """A market symbol as exchanges write it: ``"BTC/USDT"``, ``"btc-usdt"`` → ``"BTCUSDT"``.

    Symbols written ``BASE/QUOTE`` (as many APIs and documents do) are accepted wherever the
    kernel takes a symbol; one spelling is kept so journal rows and caches never split a market.
    """
    if not isinstance(symbol, str):
        raise ValueError(f"a market symbol must be a string such as 'BTCUSDT' or 'BTC/USDT', found {symbol!r}")
    return symbol.strip().upper().replace("/", "").replace("-", "").replace("_", "")
