"""The write-ahead order journal (SQLite, WAL, group commit).

Every state change of an order is durable here *before* the action that depends on it
(SUBMITTING before the request leaves, UNKNOWN before the look-up, ...): :meth:`OrderJournal.create`
and :meth:`OrderJournal.record` return only once their transaction is synced to disk, so what they
returned survives a SIGKILL. An order's fixed facts are written once to ``orders``; each change is
one row appended to ``order_events`` (the audit trail: state, time, attempt, fencing token,
exchange id, filled amount, reason, unresolved). An order that is sent as soon as it is prepared is
journaled PREPARED and SUBMITTING in one write (``create(record, then=SUBMITTING)``): both events,
or neither, are durable before the request leaves.

The event loop never waits on the disk: writes are ``await``ed while the journal's one writer
thread commits them, batching the writes of concurrent orders into one transaction (one fdatasync
for all of them; see :mod:`hrkernel.orders.journal_store`). Reads use their own connections (one
per thread), never the writer's. While the kernel runs it holds the file exclusively (SQLite's
``unix-excl`` VFS, see :func:`hrkernel.orders.journal_store.connect`): ``hrkernel orders`` asks
the running kernel's API then, and reads the file itself when no kernel runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import msgspec

from hrkernel.orders.errors import JournalError, JournalWriteError
from hrkernel.orders.journal_store import (
    ORDER_COLUMNS,
    GroupCommitWriter,
    Write,
    connect,
    decode_time,
    encode_money,
    encode_time,
)

__all__ = ["JournalEvent", "NON_TERMINAL", "TERMINAL", "OrderJournal", "OrderRecord", "OrderState"]


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


_SELECT = "SELECT " + ", ".join(ORDER_COLUMNS) + " FROM orders"
_INSERT_ORDER = f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES ({', '.join('?' * len(ORDER_COLUMNS))})"
_INSERT_EVENT = "INSERT INTO order_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_UPDATE_CURRENT = (
    "UPDATE orders SET state = ?, exchange_order_id = ?, attempts = ?, fencing_token = ?, filled_amount = ?, "
    "reason = ?, unresolved = ?, updated_at = ?, last_seq = ? WHERE client_order_id = ?"
)

FailureHook = Callable[[JournalWriteError], Awaitable[None] | None]


def _record_row(rec: OrderRecord, seq: int) -> list[Any]:
    assert rec.created_at is not None and rec.updated_at is not None
    return [rec.client_order_id, rec.signal_id, rec.exchange, rec.symbol, rec.base, rec.quote, rec.side, rec.type,
            encode_money(rec.amount), encode_money(rec.price), encode_time(rec.created_at), rec.state.value,
            rec.exchange_order_id, rec.attempts, rec.fencing_token, encode_money(rec.filled_amount), rec.reason,
            int(rec.unresolved), encode_time(rec.updated_at), seq]


def _event_row(seq: int, rec: OrderRecord) -> list[Any]:
    assert rec.updated_at is not None
    return [seq, rec.client_order_id, rec.state.value, encode_time(rec.updated_at), rec.attempts, rec.fencing_token,
            rec.exchange_order_id, encode_money(rec.filled_amount), rec.reason, int(rec.unresolved)]


def _decode(row: tuple[Any, ...]) -> OrderRecord:
    (coid, signal, exchange, symbol, base, quote, side, type_, amount, price, created, state, xid, attempts, token,
     filled, reason, unresolved, updated, _seq) = row
    return OrderRecord(
        client_order_id=coid, signal_id=signal, exchange=exchange, symbol=symbol, base=base, quote=quote,
        side=side, type=type_, amount=Decimal(amount), price=Decimal(price) if price is not None else None,
        state=OrderState(state), exchange_order_id=xid, attempts=attempts, fencing_token=token,
        filled_amount=Decimal(filled), reason=reason, unresolved=bool(unresolved), created_at=decode_time(created),
        updated_at=decode_time(updated),
    )


class OrderJournal:
    """The journal in one SQLite file. Writes are coroutines (durable when they return); reads
    are synchronous, cheap indexed look-ups on a connection of the calling thread.

    ``on_failure`` (settable) is called on the event loop when a write could not be made durable
    (:class:`JournalWriteError`), once per outage; ``on_recovered`` when a write succeeds again
    after that. The orders component halts new orders and alerts, then resumes, there."""

    def __init__(self, path: str | Path, *, now: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path)
        self._now = now or (lambda: datetime.now(UTC))
        self._cache: dict[str, OrderRecord] = {}
        """Current records of non-terminal orders. Written only by the writer thread, after a
        durable commit; read anywhere (single dict operations are atomic)."""
        self._seq = 0
        self._committed_seq = 0
        self._staged: dict[str, OrderRecord] = {}
        """Records written by the batch being committed (writer thread only)."""
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self.on_failure: FailureHook | None = None
        self.on_recovered: Callable[[], Awaitable[None] | None] | None = None
        self._failure_reported = False
        self._wake_scheduled = False
        self._writer: GroupCommitWriter | None = GroupCommitWriter(
            self.path, setup=self._load, on_commit=self._committed, on_rollback=self._rolled_back)

    @classmethod
    def reader(cls, path: str | Path) -> OrderJournal:
        """A journal that only reads (the CLI, a standby's view): no writer, no schema set-up;
        works while another process writes the file."""
        self = cls.__new__(cls)
        self.path = Path(path)
        self._now = lambda: datetime.now(UTC)
        self._cache = {}
        self._seq = self._committed_seq = 0
        self._staged = {}
        self._local = threading.local()
        self._readers = []
        self._readers_lock = threading.Lock()
        self.on_failure = None
        self.on_recovered = None
        self._failure_reported = False
        self._wake_scheduled = False
        self._writer = None
        return self

    def _load(self, con: sqlite3.Connection) -> None:
        row = con.execute("SELECT coalesce(max(seq), 0) FROM order_events").fetchone()
        self._seq = self._committed_seq = int(row[0])
        states = sorted(s.value for s in NON_TERMINAL)
        rows = con.execute(_SELECT + f" WHERE state IN ({', '.join('?' * len(states))})", states).fetchall()
        for r in rows:
            rec = _decode(r)
            self._cache[rec.client_order_id] = rec

    def close(self) -> None:
        """Commit what is queued, stop the writer, close every connection."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        with self._readers_lock:
            for con in self._readers:
                con.close()
            self._readers.clear()

    @property
    def stats(self) -> dict[str, int]:
        """``transactions`` (fdatasyncs), ``writes`` (create/record calls), ``largest_batch`` and
        ``checkpoints`` (run by the checkpointer thread, off the commit path)."""
        w = self._writer
        return {"transactions": w.transactions, "writes": w.writes, "largest_batch": w.largest_batch,
                "checkpoints": w.checkpoints} if w else {}

    @property
    def failed(self) -> JournalWriteError | None:
        return self._writer.failed if self._writer is not None else None

    def _stamp(self) -> datetime:
        return self._now().astimezone(UTC)

    # -- writes (run in the writer thread) ---------------------------------------------------------

    def _committed(self, results: list[tuple[Write, Any]]) -> None:
        self._committed_seq = self._seq
        self._staged.clear()
        for _w, rec in results:
            if rec is None:  # a ping
                continue
            if rec.is_terminal:
                self._cache.pop(rec.client_order_id, None)
            else:
                self._cache[rec.client_order_id] = rec

    def _rolled_back(self) -> None:
        self._seq = self._committed_seq
        self._staged.clear()

    async def _write(self, apply: Callable[[sqlite3.Connection], OrderRecord]) -> OrderRecord:
        if self._writer is None:
            raise JournalError(f"order journal {self.path}: opened read-only (or closed); it takes no writes")
        writer = self._writer
        try:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # another anyio backend: wait for the future in a worker thread
                pending = writer.submit(Write(apply))
                assert isinstance(pending, concurrent.futures.Future)
                result: OrderRecord = await anyio.to_thread.run_sync(pending.result)
            else:
                # Group commit: the writer is woken once per turn of the event loop, after every
                # task that was ready in this turn had its chance to queue a write, so orders
                # prepared together share one transaction (one fdatasync) even when the writer
                # would otherwise grab the first of them alone. Costs one loop turn (~10 us).
                future = writer.submit(Write(apply, loop), wake=False)
                assert isinstance(future, asyncio.Future)
                if not self._wake_scheduled:
                    self._wake_scheduled = True
                    loop.call_soon(self._wake)
                # an asyncio future, resolved by the writer thread through one thread-safe call
                # per batch
                result = await future
        except JournalWriteError as exc:
            if not self._failure_reported:
                self._failure_reported = True
                await self._call(self.on_failure, exc)
            raise
        if self._failure_reported:
            self._failure_reported = False
            await self._call(self.on_recovered)
        return result

    def _wake(self) -> None:
        self._wake_scheduled = False
        if self._writer is not None:
            self._writer.wake()

    @staticmethod
    async def _call(hook: Callable[..., Awaitable[None] | None] | None, *args: Any) -> None:
        outcome = hook(*args) if hook is not None else None
        if outcome is not None:
            await outcome

    async def ping(self) -> None:
        """A one-row write through the writer (raises :class:`JournalWriteError` while the data
        dir refuses writes): the orders component calls it to notice the disk came back. It must
        change a page: an empty transaction commits without touching the disk."""

        def touch(con: sqlite3.Connection) -> None:
            con.execute("INSERT OR REPLACE INTO journal_ping (id, at) VALUES (1, ?)", [encode_time(self._stamp())])

        await self._write(touch)  # type: ignore[arg-type]

    async def create(
        self,
        record: OrderRecord,
        *,
        then: OrderState | None = None,
        attempts: int | None = None,
        fencing_token: int | None = None,
        reason: str | None = None,
    ) -> OrderRecord:
        """Journal a new order in ``record.state`` (normally PREPARED); returns its record once
        durable. Raises :class:`JournalError` if the client order id or the signal id is already
        journaled (the UNIQUE constraints decide: no look-up first).

        With ``then`` (normally SUBMITTING) the order's next state is journaled in the SAME
        transaction, as a second event (with ``attempts``, ``fencing_token`` and ``reason``), and
        the returned record is in that state: the orders row and both events become durable
        together or not at all."""
        at = self._stamp()
        first = msgspec.structs.replace(record, created_at=at, updated_at=at)
        events = [first]
        if then is not None:
            events.append(msgspec.structs.replace(
                first, state=then, attempts=attempts if attempts is not None else first.attempts,
                fencing_token=fencing_token if fencing_token is not None else first.fencing_token,
                reason=reason if reason is not None else first.reason,
            ))
        last = events[-1]

        def apply(con: sqlite3.Connection) -> OrderRecord:
            seq = self._seq
            try:
                con.execute(_INSERT_ORDER, _record_row(last, seq + len(events)))
            except sqlite3.IntegrityError as exc:
                raise JournalError(f"order journal: client order id {last.client_order_id!r} or signal "
                                   f"{last.signal_id!r} already journaled") from exc
            for i, e in enumerate(events, seq + 1):
                con.execute(_INSERT_EVENT, _event_row(i, e))
            self._seq = seq + len(events)
            self._staged[last.client_order_id] = last
            return last

        return await self._write(apply)

    async def record(
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
        """Durably journal a state change (durable when this returns); returns the new record.

        The new record is built in the writer thread from the order's latest record there, so
        two changes of one order in one batch apply in the order they were submitted."""
        now = self._stamp()

        def apply(con: sqlite3.Connection) -> OrderRecord:
            current = self._staged.get(client_order_id) or self._cache.get(client_order_id) or self._get(con, client_order_id)
            if current is None:
                raise JournalError(f"order journal: no order with client order id {client_order_id!r}")
            rec = msgspec.structs.replace(
                current,
                state=state,
                reason=reason if reason is not None else current.reason,
                exchange_order_id=exchange_order_id or current.exchange_order_id,
                filled_amount=filled_amount if filled_amount is not None else current.filled_amount,
                attempts=attempts if attempts is not None else current.attempts,
                fencing_token=fencing_token if fencing_token is not None else current.fencing_token,
                unresolved=unresolved if unresolved is not None else current.unresolved,
                updated_at=now,
            )
            seq = self._seq + 1
            con.execute(_INSERT_EVENT, _event_row(seq, rec))
            con.execute(_UPDATE_CURRENT, [rec.state.value, rec.exchange_order_id, rec.attempts, rec.fencing_token,
                                          encode_money(rec.filled_amount), rec.reason, int(rec.unresolved),
                                          encode_time(now), seq, client_order_id])
            self._seq = seq
            self._staged[client_order_id] = rec
            return rec

        return await self._write(apply)

    # -- reads ------------------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = connect(self.path, readonly=self._writer is None)
            self._local.con = con
            with self._readers_lock:
                self._readers.append(con)
        return con

    @staticmethod
    def _get(con: sqlite3.Connection, client_order_id: str) -> OrderRecord | None:
        row = con.execute(_SELECT + " WHERE client_order_id = ?", [client_order_id]).fetchone()
        return _decode(row) if row else None

    def get(self, client_order_id: str) -> OrderRecord | None:
        cached = self._cache.get(client_order_id)
        if cached is not None:
            return cached
        return self._get(self._reader(), client_order_id)

    def by_signal(self, signal_id: str) -> OrderRecord | None:
        """The order journaled for ``signal_id``, if any (one indexed look-up)."""
        row = self._reader().execute(_SELECT + " WHERE signal_id = ?", [signal_id]).fetchone()
        if row is None:
            return None
        return self._cache.get(row[0]) or _decode(row)

    def by_exchange_id(self, exchange: str, exchange_order_id: str) -> OrderRecord | None:
        row = self._reader().execute(
            _SELECT + " WHERE exchange = ? AND exchange_order_id = ? AND exchange_order_id IS NOT NULL",
            [exchange, exchange_order_id]).fetchone()
        if row is None:
            return None
        return self._cache.get(row[0]) or _decode(row)

    def query(
        self, *, states: frozenset[OrderState] | set[OrderState] | None = None, exchange: str | None = None,
        limit: int = 1000, offset: int = 0, newest_first: bool = False,
    ) -> list[OrderRecord]:
        """Orders by creation time (oldest first unless ``newest_first``), at most ``limit`` from
        ``offset``: a bounded, indexed read."""
        sql = _SELECT + " WHERE 1 = 1"
        params: list[Any] = []
        if states is not None:
            values = sorted(s.value for s in states)
            sql += f" AND state IN ({', '.join('?' * len(values))})"
            params.extend(values)
        if exchange is not None:
            sql += " AND exchange = ?"
            params.append(exchange)
        # rowid order is creation (insert) order: no index of its own to keep up on every write
        sql += f" ORDER BY rowid {'DESC' if newest_first else 'ASC'} LIMIT ? OFFSET ?"
        params += [limit, offset]
        return [_decode(r) for r in self._reader().execute(sql, params).fetchall()]

    def counts_by_state(self) -> dict[str, int]:
        """How many orders are in each state (read from the state index, not the rows)."""
        rows = self._reader().execute("SELECT state, count(*) FROM orders GROUP BY state").fetchall()
        return {state: int(n) for state, n in rows}

    def by_any_exchange_id(self, exchange_order_id: str) -> OrderRecord | None:
        """The order with this exchange order id on any exchange (the CLI's look-up)."""
        row = self._reader().execute(_SELECT + " WHERE exchange_order_id = ? AND exchange_order_id IS NOT NULL LIMIT 1",
                                     [exchange_order_id]).fetchone()
        return _decode(row) if row else None

    def open_orders(self, exchange: str | None = None) -> list[OrderRecord]:
        """Non-terminal orders, oldest first (from memory in the writing process)."""
        if self._writer is None:
            return self.query(states=NON_TERMINAL, exchange=exchange, limit=1_000_000)
        rows = [r for r in list(self._cache.values()) if exchange is None or r.exchange == exchange]
        return sorted(rows, key=lambda r: (r.created_at or datetime.min.replace(tzinfo=UTC), r.client_order_id))

    def history(self, client_order_id: str) -> list[JournalEvent]:
        rows = self._reader().execute(
            'SELECT seq, client_order_id, state, "at", attempt, fencing_token, exchange_order_id, filled_amount, reason '
            "FROM order_events WHERE client_order_id = ? ORDER BY seq", [client_order_id]).fetchall()
        return [
            JournalEvent(seq=r[0], client_order_id=r[1], state=OrderState(r[2]), at=decode_time(r[3]),  # type: ignore[arg-type]
                         attempt=r[4], fencing_token=r[5], exchange_order_id=r[6], filled_amount=Decimal(r[7]),
                         reason=r[8])
            for r in rows
        ]

    def last_seq(self) -> int:
        row = self._reader().execute("SELECT coalesce(max(seq), 0) FROM order_events").fetchone()
        return int(row[0])
