"""The write-ahead order journal (DuckDB).

Every state change of an order is committed here *before* the action that depends on it
(SUBMITTING before the request leaves, UNKNOWN before the look-up, ...). Each change is one row in
``order_events`` (the audit trail: state, time, attempt, fencing token, reason) and updates the
order's current row in ``orders``, in the same DuckDB transaction. DuckDB syncs its write-ahead
log on commit, so a state returned from :meth:`OrderJournal.record` survives a SIGKILL.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb
import msgspec

from hrkernel.orders.errors import JournalError

__all__ = ["JournalEvent", "OrderJournal", "OrderRecord", "OrderState", "NON_TERMINAL", "TERMINAL"]


class OrderState(enum.StrEnum):
    PREPARED = "PREPARED"
    """Validated and risk-checked; nothing sent yet."""
    SUBMITTING = "SUBMITTING"
    """About to send (or sending) the placement; outcome not known yet."""
    ACKED = "ACKED"
    """The exchange has the order."""
    REJECTED = "REJECTED"
    """The exchange refused it (terminal; nothing filled)."""
    UNKNOWN = "UNKNOWN"
    """The placement may or may not have happened; being looked up by client order id."""
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    VERIFIED = "VERIFIED"
    """Exchange-terminal and every fill posted to the ledger (terminal)."""
    FAILED = "FAILED"
    """Given up with a reason (terminal): refused in prepare, stale, or proven never placed."""


TERMINAL = frozenset({OrderState.REJECTED, OrderState.VERIFIED, OrderState.FAILED})
NON_TERMINAL = frozenset(set(OrderState) - TERMINAL)


class OrderRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the journal knows it now."""

    client_order_id: str
    signal_id: str
    exchange: str
    symbol: str
    base: str
    quote: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    state: OrderState
    exchange_order_id: str | None = None
    attempts: int = 0
    fencing_token: int | None = None
    filled_amount: Decimal = Decimal(0)
    reason: str | None = None
    unresolved: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL


class JournalEvent(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    client_order_id: str
    state: OrderState
    at: datetime
    attempt: int
    fencing_token: int | None
    exchange_order_id: str | None
    filled_amount: Decimal
    reason: str | None


SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    client_order_id VARCHAR PRIMARY KEY,
    signal_id VARCHAR NOT NULL UNIQUE,
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    base VARCHAR NOT NULL,
    quote VARCHAR NOT NULL,
    side VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    amount DECIMAL(38, 18) NOT NULL,
    price DECIMAL(38, 18),
    state VARCHAR NOT NULL,
    exchange_order_id VARCHAR,
    attempts INTEGER NOT NULL,
    fencing_token BIGINT,
    filled_amount DECIMAL(38, 18) NOT NULL,
    reason VARCHAR,
    unresolved BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS order_events (
    seq BIGINT PRIMARY KEY,
    client_order_id VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    "at" TIMESTAMP NOT NULL,
    attempt INTEGER NOT NULL,
    fencing_token BIGINT,
    exchange_order_id VARCHAR,
    filled_amount DECIMAL(38, 18) NOT NULL,
    reason VARCHAR
);
"""

_COLUMNS = [f for f in OrderRecord.__struct_fields__]


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class OrderJournal:
    """The journal over a DuckDB database (a path, or a connection shared with the ledger)."""

    def __init__(self, db: str | duckdb.DuckDBPyConnection, *, now: Callable[[], datetime] | None = None) -> None:
        self._con = duckdb.connect(db) if isinstance(db, str) else db
        self._con.execute(SCHEMA)
        self._reader = self._con.cursor()
        self._lock = threading.Lock()
        self._now = now or (lambda: datetime.now(UTC))
        row = self._con.execute("SELECT coalesce(max(seq), 0) FROM order_events").fetchone()
        self._seq = int(row[0]) if row else 0

    @classmethod
    def reader(cls, con: duckdb.DuckDBPyConnection) -> OrderJournal:
        """A journal over a read-only connection (the CLI): queries only, no schema set-up."""
        self = cls.__new__(cls)
        self._con = con
        self._reader = con.cursor()
        self._lock = threading.Lock()
        self._now = lambda: datetime.now(UTC)
        self._seq = 0
        return self

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        return self._con

    def _stamp(self) -> datetime:
        return self._now().astimezone(UTC).replace(tzinfo=None)

    def create(self, record: OrderRecord) -> OrderRecord:
        """Journal a new order in ``record.state`` (normally PREPARED). Raises :class:`JournalError`
        if the client order id or the signal id is already journaled."""
        now = self._stamp()
        rec = msgspec.structs.replace(record, created_at=now.replace(tzinfo=UTC), updated_at=now.replace(tzinfo=UTC))
        values = [getattr(rec, c) for c in _COLUMNS]
        values[_COLUMNS.index("created_at")] = now
        values[_COLUMNS.index("updated_at")] = now
        with self._lock:
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"INSERT INTO orders ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", values)
                self._event(rec, now)
                con.execute("COMMIT")
            except duckdb.ConstraintException as exc:
                con.execute("ROLLBACK")
                raise JournalError(
                    f"order journal: client order id {rec.client_order_id!r} or signal {rec.signal_id!r} already journaled"
                ) from exc
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return rec

    def record(
        self,
        client_order_id: str,
        state: OrderState,
        *,
        reason: str | None = None,
        exchange_order_id: str | None = None,
        filled_amount: Decimal | None = None,
        attempts: int | None = None,
        fencing_token: int | None = None,
        unresolved: bool | None = None,
    ) -> OrderRecord:
        """Durably journal a state change (committed when this returns); returns the new record."""
        with self._lock:
            current = self._get(self._con, client_order_id)
            if current is None:
                raise JournalError(f"order journal: no order with client order id {client_order_id!r}")
            now = self._stamp()
            rec = msgspec.structs.replace(
                current,
                state=state,
                reason=reason if reason is not None else current.reason,
                exchange_order_id=exchange_order_id or current.exchange_order_id,
                filled_amount=filled_amount if filled_amount is not None else current.filled_amount,
                attempts=attempts if attempts is not None else current.attempts,
                fencing_token=fencing_token if fencing_token is not None else current.fencing_token,
                unresolved=unresolved if unresolved is not None else current.unresolved,
                updated_at=now.replace(tzinfo=UTC),
            )
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    "UPDATE orders SET state = ?, reason = ?, exchange_order_id = ?, filled_amount = ?, attempts = ?, "
                    "fencing_token = ?, unresolved = ?, updated_at = ? WHERE client_order_id = ?",
                    [rec.state.value, rec.reason, rec.exchange_order_id, rec.filled_amount, rec.attempts,
                     rec.fencing_token, rec.unresolved, now, client_order_id],
                )
                self._event(rec, now, reason=reason)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return rec

    def _event(self, rec: OrderRecord, now: datetime, reason: str | None = None) -> None:
        self._seq += 1
        self._con.execute(
            "INSERT INTO order_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [self._seq, rec.client_order_id, rec.state.value, now, rec.attempts, rec.fencing_token,
             rec.exchange_order_id, rec.filled_amount, reason if reason is not None else rec.reason],
        )

    # -- reads --------------------------------------------------------------------------------

    @staticmethod
    def _row(row: tuple[Any, ...]) -> OrderRecord:
        data = dict(zip(_COLUMNS, row, strict=True))
        data["state"] = OrderState(data["state"])
        data["created_at"] = _utc(data["created_at"])
        data["updated_at"] = _utc(data["updated_at"])
        return OrderRecord(**data)

    def _get(self, cur: duckdb.DuckDBPyConnection, client_order_id: str) -> OrderRecord | None:
        row = cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM orders WHERE client_order_id = ?", [client_order_id]).fetchone()
        return self._row(row) if row else None

    def get(self, client_order_id: str) -> OrderRecord | None:
        with self._lock:
            return self._get(self._reader, client_order_id)

    def by_signal(self, signal_id: str) -> OrderRecord | None:
        with self._lock:
            row = self._reader.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM orders WHERE signal_id = ?", [signal_id]
            ).fetchone()
        return self._row(row) if row else None

    def by_exchange_id(self, exchange: str, exchange_order_id: str) -> OrderRecord | None:
        with self._lock:
            row = self._reader.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM orders WHERE exchange = ? AND exchange_order_id = ?",
                [exchange, exchange_order_id],
            ).fetchone()
        return self._row(row) if row else None

    def query(
        self, *, states: frozenset[OrderState] | set[OrderState] | None = None, exchange: str | None = None,
        limit: int = 1000,
    ) -> list[OrderRecord]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM orders WHERE 1 = 1"
        params: list[Any] = []
        if states is not None:
            sql += " AND state IN (SELECT unnest(?::VARCHAR[]))"
            params.append(sorted(s.value for s in states))
        if exchange is not None:
            sql += " AND exchange = ?"
            params.append(exchange)
        sql += " ORDER BY created_at, client_order_id LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._reader.execute(sql, params).fetchall()
        return [self._row(r) for r in rows]

    def open_orders(self, exchange: str | None = None) -> list[OrderRecord]:
        return self.query(states=NON_TERMINAL, exchange=exchange, limit=1_000_000)

    def history(self, client_order_id: str) -> list[JournalEvent]:
        with self._lock:
            rows = self._reader.execute(
                "SELECT seq, client_order_id, state, \"at\", attempt, fencing_token, exchange_order_id, filled_amount, reason "
                "FROM order_events WHERE client_order_id = ? ORDER BY seq",
                [client_order_id],
            ).fetchall()
        return [
            JournalEvent(seq=r[0], client_order_id=r[1], state=OrderState(r[2]), at=r[3].replace(tzinfo=UTC),
                         attempt=r[4], fencing_token=r[5], exchange_order_id=r[6], filled_amount=r[7], reason=r[8])
            for r in rows
        ]
