"""Typed events carried by the message bus (public API: ``hrkernel.bus.events``).

Every event is a frozen msgspec ``Struct`` tagged with its ``kind`` so one decoder reads any of
them back from bytes (:func:`encode` / :func:`decode`). Money and quantities are ``Decimal``
(encoded as strings, never floats). Built-in plugins (the data sources) may import this module:
it is part of the kernel's public surface, like :mod:`hrkernel.exchange`.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

__all__ = [
    "AlertEvent",
    "BookEvent",
    "BookLevel",
    "Event",
    "FillEvent",
    "GapEvent",
    "HealthEvent",
    "LeadershipEvent",
    "OrderEvent",
    "PostingEvent",
    "PostingLine",
    "SignalAction",
    "SignalEvent",
    "TickerEvent",
    "TradeEvent",
    "decode",
    "encode",
]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Base of every bus event. ``time`` is when the fact happened (UTC).

    ``v`` is the schema version of the event's kind: a new optional field keeps it; a change a
    consumer written for the old schema would misread (a field removed, renamed or retyped)
    bumps it, so a consumer can refuse what it does not understand instead of guessing."""

    time: datetime
    v: int = 1


class BookLevel(msgspec.Struct, frozen=True, array_like=True):
    price: Decimal
    amount: Decimal


class BookEvent(Event, frozen=True, kw_only=True, tag="book"):
    """An order-book snapshot of one market from one source."""

    source: str
    symbol: str
    bids: list[BookLevel]
    """Best (highest) first."""
    asks: list[BookLevel]
    """Best (lowest) first."""
    sequence: int | None = None
    """The source's update counter when it has one (gaps trigger a resync)."""


class TradeEvent(Event, frozen=True, kw_only=True, tag="trade"):
    """A public trade on a market."""

    source: str
    symbol: str
    price: Decimal
    amount: Decimal
    side: str
    """The taker's side: ``buy`` or ``sell``."""
    sequence: int | None = None


class TickerEvent(Event, frozen=True, kw_only=True, tag="ticker"):
    """Last price and best quotes of a market."""

    source: str
    symbol: str
    last: Decimal | None = None
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    volume_base: Decimal | None = None
    sequence: int | None = None


class GapEvent(Event, frozen=True, kw_only=True, tag="gap"):
    """A source lost continuity (sequence gap, crossed book, reconnect); a resync follows."""

    source: str
    symbol: str
    reason: str


class SignalAction(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"
    CLOSE = "close"


class SignalEvent(Event, frozen=True, kw_only=True, tag="signal"):
    """A normalised trading signal (from the TradingView webhook or any other producer).

    ``signal_id`` is the idempotency key: consumers must not act twice on one id. Exactly one
    of ``amount`` (in base currency) and ``percent`` (of the available balance) is set, or
    neither (the strategy's default size).
    """

    signal_id: str
    source: str
    exchange: str
    symbol: str
    action: SignalAction
    amount: Decimal | None = None
    percent: Decimal | None = None
    order_type: str = "market"
    price: Decimal | None = None
    strategy: str | None = None
    received_at: datetime | None = None


class OrderEvent(Event, frozen=True, kw_only=True, tag="order"):
    """One entry of the order journal: the order reached ``state`` (topic ``orders``).

    ``seq`` is the journal's sequence number (increasing; a consumer that sees one twice after a
    redelivery can drop it). States: PREPARED, SUBMITTING, ACKED, UNKNOWN, PARTIALLY_FILLED,
    FILLED, CANCELED, REJECTED, VERIFIED (terminal: fills all posted), FAILED."""

    exchange: str
    symbol: str
    client_order_id: str
    state: str
    side: str
    amount: Decimal
    price: Decimal | None = None
    signal_id: str | None = None
    detail: str = ""
    seq: int | None = None
    exchange_order_id: str | None = None
    filled_amount: Decimal | None = None
    order_type: str | None = None


class FillEvent(Event, frozen=True, kw_only=True, tag="fill"):
    """A fill of one of our orders, as posted to the ledger (topic ``fills``)."""

    exchange: str
    symbol: str
    trade_id: str
    client_order_id: str | None
    side: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str
    tx_id: int | None = None


class PostingLine(msgspec.Struct, frozen=True, array_like=True):
    account: str
    currency: str
    amount: Decimal


class PostingEvent(Event, frozen=True, kw_only=True, tag="posting"):
    """One ledger transaction (topic ``ledger``): a fill, a deposit or opening balance, an
    adjustment from reconciliation. Its ``postings`` sum to zero per currency."""

    tx_id: int
    tx_kind: str
    exchange: str | None
    postings: list[PostingLine]
    trade_id: str | None = None
    order_ref: str | None = None
    reason: str | None = None


class HealthEvent(Event, frozen=True, kw_only=True, tag="health"):
    component: str
    status: str
    detail: str = ""


class AlertEvent(Event, frozen=True, kw_only=True, tag="alert"):
    """An alert fired, escalated or resolved (topic ``alerts``): ``name`` is its title,
    ``severity`` its level, ``status`` firing / resolved / expired, ``alert_id`` its id."""

    name: str
    severity: str
    message: str
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    status: str = "firing"
    alert_id: str | None = None
    source: str | None = None


class LeadershipEvent(Event, frozen=True, kw_only=True, tag="leadership"):
    instance_id: str
    leader: bool
    fencing_token: int | None = None
    reason: str = ""


AnyEvent = (
    BookEvent
    | TradeEvent
    | TickerEvent
    | GapEvent
    | SignalEvent
    | OrderEvent
    | FillEvent
    | PostingEvent
    | HealthEvent
    | AlertEvent
    | LeadershipEvent
)

_encoder = msgspec.json.Encoder(decimal_format="string")
_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(AnyEvent)


def encode(event: Event) -> bytes:
    """JSON bytes of ``event`` (tagged with its kind)."""
    return _encoder.encode(event)


def decode(data: bytes) -> Event:
    """The event encoded in ``data``; raises ``msgspec.ValidationError``/``DecodeError`` if malformed."""
    result: Event = _decoder.decode(data)
    return result
