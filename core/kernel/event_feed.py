"""The event feed: what the kernel did, published on the bus for other processes to follow.

One place publishes, as an observer — no line of the order pipeline, the journal or the ledger
knows about it:

- ``orders`` — :class:`OrderEvent` for every journal entry (every state change of every order),
- ``fills``  — :class:`FillEvent` for every fill posted to the ledger,
- ``ledger`` — :class:`PostingEvent` for every ledger transaction (fills, deposits, adjustments),

read from the orders database after the last row published (journal ``seq``, ledger ``tx_id``:
both strictly increasing), every ``POLL`` seconds and once more when the kernel stops (after
the shutdown's cancel stage, so the cancellations are published too);

- ``alerts`` — :class:`AlertEvent` whenever an alert fires, escalates, resolves or expires
  (an :class:`~hrkernel.alerts.manager.AlertSystem` listener).

``health`` and ``leadership`` are published by HA (:mod:`hrkernel.ha.component`).

Delivery: at least once. A publish the bus refuses (``orders`` fails at once while the broker is
down) is retried from the same row on the next poll, so nothing is skipped; a consumer drops
repeats by ``seq`` / ``tx_id`` / ``trade_id``. Only the leader publishes order and ledger events:
a standby's database receives the same rows through replication, and the events are the leader's
to tell. A new leader starts after the rows it already had when it took over.
"""

from __future__ import annotations

import collections
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anyio
from anyio.abc import TaskGroup

from hrkernel.bus.events import AlertEvent, Event, FillEvent, OrderEvent, PostingEvent, PostingLine
from hrkernel.lifecycle import Component, ShutdownStage
from hrkernel.logging import get_logger
from hrkernel.orders import journal_store

log = get_logger("hrkernel.events")

POLL = 0.1
"""Seconds between two reads of the orders database."""
BATCH = 500

TOPIC_ORDERS, TOPIC_FILLS, TOPIC_LEDGER, TOPIC_ALERTS = "orders", "fills", "ledger", "alerts"

_ORDER_ROWS = (
    'SELECT e.seq, e.client_order_id, e.state, e."at", e.exchange_order_id, e.filled_amount, e.reason, '
    "o.exchange, o.symbol, o.side, o.amount, o.price, o.signal_id, o.type "
    "FROM order_events e JOIN orders o USING (client_order_id) WHERE e.seq > ? ORDER BY e.seq LIMIT ?"
)
_TX_ROWS = (
    "SELECT tx_id, kind, exchange, trade_id, order_ref, reason, created_at FROM ledger_tx "
    "WHERE tx_id > ? ORDER BY tx_id LIMIT ?"
)


def _utc(at: datetime | str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if isinstance(at, str):  # the SQLite journal stores ISO 8601 text
        at = datetime.fromisoformat(at)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class EventFeed(Component):
    """Publishes order, fill, ledger and alert events (see the module docstring)."""

    name = "event_feed"
    shutdown_stage = ShutdownStage.FLUSH

    def __init__(self, bus: Any, orders: Any = None, alerts: Any = None) -> None:
        self.bus = bus
        self.orders = orders
        """The orders component (``reader()``, ``is_leader()``) or None when nothing trades."""
        self.alerts = alerts
        self._seq: int | None = None
        self._tx: int | None = None
        self._alerts: collections.deque[AlertEvent] = collections.deque(maxlen=10_000)
        self._last_alert: dict[str, tuple[str, str]] = {}
        self._stopping = anyio.Event()
        self._done = anyio.Event()
        self._failing: str | None = None
        self.published: dict[str, int] = collections.Counter()

    async def start(self, tg: TaskGroup) -> None:
        if self.alerts is not None and hasattr(self.alerts, "add_listener"):
            self.alerts.add_listener(self._on_alert)
        tg.start_soon(self._run, name="event_feed")

    async def stop(self) -> None:
        self._stopping.set()
        await self._done.wait()
        await self._tick()  # what the shutdown's cancel stage journaled

    def _on_alert(self, alert: Any) -> None:
        key = (str(alert.status), str(getattr(alert.level, "value", alert.level)))
        if self._last_alert.get(alert.fingerprint) == key:
            return  # a repeat of an open alert: nothing new to tell
        self._last_alert[alert.fingerprint] = key
        self._alerts.append(AlertEvent(
            time=datetime.fromtimestamp(alert.last_seen or alert.first_seen, tz=UTC), name=alert.title,
            severity=key[1], message=alert.message, status=key[0], alert_id=alert.id, source=str(alert.source),
            labels={str(k): str(v) for k, v in (alert.context or {}).items()},
        ))

    async def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                await self._tick()
                with anyio.move_on_after(POLL):
                    await self._stopping.wait()
        finally:
            self._done.set()

    async def _tick(self) -> None:
        try:
            while self._alerts:
                await self._publish(TOPIC_ALERTS, self._alerts[0])
                self._alerts.popleft()
            if self.orders is not None:
                await self._follow_orders()
            if self._failing is not None:
                log.info("event_feed_publishing_again", after=self._failing)
                self._failing = None
        except Exception as exc:  # the bus refused: retry the same rows next time
            error = f"{type(exc).__name__}: {exc}"
            if self._failing is None:
                log.warning("event_feed_publish_failed", error=error, action="retrying from the same row")
            self._failing = error

    async def _publish(self, topic: str, event: Event) -> None:
        await self.bus.publish(topic, event)
        self.published[topic] += 1

    async def _follow_orders(self) -> None:
        reader = self.orders.reader()
        if reader is None:
            return
        journal = self.orders.journal_path
        if self._seq is None or not self.orders.is_leader():
            # Not (yet) the one telling: start after what is there (replicated rows are the
            # leader's events, already published by it).
            self._seq, self._tx = await anyio.to_thread.run_sync(_heads, reader, journal)
            return
        orders, txs = await anyio.to_thread.run_sync(_read, reader, journal, self._seq, self._tx)
        for seq, event in orders:
            await self._publish(TOPIC_ORDERS, event)
            self._seq = seq
        for tx_id, posting, fill in txs:
            if fill is not None:
                await self._publish(TOPIC_FILLS, fill)
            await self._publish(TOPIC_LEDGER, posting)
            self._tx = tx_id

    def stats(self) -> dict[str, Any]:
        return {"published": dict(self.published), "seq": self._seq, "tx_id": self._tx, "failing": self._failing}


def _journal(path: Any) -> Any:
    """A read-only connection to the SQLite order journal (orders and their events live there;
    the ledger stays in DuckDB), opened in the worker thread that uses it."""
    return journal_store.connect(path, readonly=True)


def _heads(con: Any, journal_path: Any) -> tuple[int, int]:
    with closing(_journal(journal_path)) as jcon:
        seq = jcon.execute("SELECT coalesce(max(seq), 0) FROM order_events").fetchone()[0]
    tx = con.execute("SELECT coalesce(max(tx_id), 0) FROM ledger_tx").fetchone()[0]
    return int(seq), int(tx)


def _read(con: Any, journal_path: Any, seq: int, tx: int | None) -> tuple[list[tuple[int, OrderEvent]], list[tuple[int, PostingEvent, FillEvent | None]]]:
    with closing(_journal(journal_path)) as jcon:
        return _read_rows(con, jcon, seq, tx)


def _read_rows(con: Any, jcon: Any, seq: int, tx: int | None) -> tuple[list[tuple[int, OrderEvent]], list[tuple[int, PostingEvent, FillEvent | None]]]:
    orders = [
        (r[0], OrderEvent(
            time=_utc(r[3]), seq=r[0], client_order_id=r[1], state=r[2], exchange_order_id=r[4],
            filled_amount=Decimal(r[5]), detail=r[6] or "", exchange=r[7], symbol=r[8], side=r[9],
            amount=Decimal(r[10]), price=None if r[11] is None else Decimal(r[11]), signal_id=r[12], order_type=r[13],
        ))
        for r in jcon.execute(_ORDER_ROWS, [seq, BATCH]).fetchall()
    ]
    rows = con.execute(_TX_ROWS, [tx or 0, BATCH]).fetchall()
    postings: dict[int, list[PostingLine]] = {}
    if rows:
        for tx_id, account, currency, amount in con.execute(
            "SELECT tx_id, account, currency, amount FROM ledger_posting WHERE tx_id IN (SELECT unnest(?::BIGINT[]))",
            [[r[0] for r in rows]],
        ).fetchall():
            postings.setdefault(tx_id, []).append(PostingLine(account, currency, Decimal(amount)))
    txs = []
    for tx_id, kind, exchange, trade_id, order_ref, reason, created_at in rows:
        lines = postings.get(tx_id, [])
        event = PostingEvent(time=_utc(created_at), tx_id=tx_id, tx_kind=kind, exchange=exchange, postings=lines,
                             trade_id=trade_id, order_ref=order_ref, reason=reason)
        fill = _fill(jcon, tx_id, event) if kind == "fill" and trade_id and exchange else None
        txs.append((tx_id, event, fill))
    return orders, txs


def _fill(jcon: Any, tx_id: int, tx: PostingEvent) -> FillEvent | None:
    """The fill a ``fill`` transaction records (legs as :func:`hrkernel.ledger.fill_transaction`)."""
    row = jcon.execute("SELECT symbol, base, quote FROM orders WHERE client_order_id = ?", [tx.order_ref]).fetchone()
    if row is None:
        return None
    symbol, base, quote = row
    ex = tx.exchange
    base_leg = next((p.amount for p in tx.postings if p.account == f"trades:{ex}:{base}"), None)
    quote_leg = next((p.amount for p in tx.postings if p.account == f"trades:{ex}:{quote}"), None)
    if not base_leg or quote_leg is None:
        return None
    fee = next((p for p in tx.postings if p.account.startswith(f"fees:{ex}:")), None)
    amount = abs(base_leg)
    return FillEvent(
        time=tx.time, exchange=str(ex), symbol=symbol, trade_id=str(tx.trade_id), client_order_id=tx.order_ref,
        side="buy" if base_leg < 0 else "sell", price=abs(quote_leg) / amount, amount=amount,
        fee=fee.amount if fee else Decimal(0), fee_currency=fee.currency if fee else quote, tx_id=tx_id,
    )
