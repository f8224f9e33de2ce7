"""The journal's SQLite file: schema, row codecs and the group-commit writer thread.

Internal to :mod:`hrkernel.orders.journal` (and replication, which ships the same rows).

Durability: WAL mode with ``synchronous=FULL`` syncs the write-ahead log on every COMMIT, so a
transaction is on disk when ``COMMIT`` returns. ONE thread writes (:class:`GroupCommitWriter`):
the writes that arrive while it commits are taken together into the next transaction, so N
orders written at once share one fdatasync instead of paying N. Each write runs inside its own
SAVEPOINT: a write refused by a constraint (a signal journaled twice) is undone alone and the
others of its batch still commit. Readers use connections of their own (WAL lets them read while
the writer writes) and never wait for the writer. Only this process opens the file while it runs
(``unix-excl``, see :func:`connect`); other processes ask the kernel's API.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hrkernel.logging import get_logger
from hrkernel.orders.errors import JournalError, JournalWriteError
from hrkernel.orders.faults import fault_point
from hrkernel.orders.journal_wal import WalFrames, wal_frames

__all__ = ["EVENT_COLUMNS", "GroupCommitWriter", "ORDER_COLUMNS", "SCHEMA", "connect", "decode_time", "encode_time", "is_locked", "refresh_current"]

log = get_logger("hrkernel.orders.journal")

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    signal_id TEXT NOT NULL UNIQUE,
    exchange TEXT NOT NULL,
    symbol TEXT NOT NULL,
    base TEXT NOT NULL,
    quote TEXT NOT NULL,
    side TEXT NOT NULL,
    type TEXT NOT NULL,
    amount TEXT NOT NULL,
    price TEXT,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL,
    exchange_order_id TEXT,
    attempts INTEGER NOT NULL,
    fencing_token INTEGER,
    filled_amount TEXT NOT NULL,
    reason TEXT,
    unresolved INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    last_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_state ON orders (state);
CREATE INDEX IF NOT EXISTS orders_by_exchange_id ON orders (exchange, exchange_order_id)
    WHERE exchange_order_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS order_events (
    seq INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL,
    state TEXT NOT NULL,
    "at" TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    fencing_token INTEGER,
    exchange_order_id TEXT,
    filled_amount TEXT NOT NULL,
    reason TEXT,
    unresolved INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS order_events_by_order ON order_events (client_order_id, seq);
CREATE TABLE IF NOT EXISTS journal_ping (id INTEGER PRIMARY KEY, "at" TEXT NOT NULL);
"""
# ``order_events`` is the journal proper: one row per state change, ``seq`` rising by one per row
# (allocated by the one writer, so gap-free in commit order). ``orders`` holds each order's fixed
# facts and, in the same transaction as every event, a copy of its latest event (``last_seq``):
# reads of the current state are then one indexed look-up instead of a window over the history.
# ``journal_ping`` is the one row ``OrderJournal.ping`` rewrites to learn the disk takes writes again.
# Money is TEXT (the exact Decimal string), times are UTC as "YYYY-MM-DD HH:MM:SS.ffffff".
# Every index entry is one more page in the WAL frame set a commit syncs, so a new order touches
# few: creation order is the rowid (insert order, no index), the state index carries the rowid
# for paging, and the exchange-id index is partial (an order has no exchange id when created).

ORDER_COLUMNS = ["client_order_id", "signal_id", "exchange", "symbol", "base", "quote", "side", "type", "amount",
                 "price", "created_at", "state", "exchange_order_id", "attempts", "fencing_token", "filled_amount",
                 "reason", "unresolved", "updated_at", "last_seq"]
EVENT_COLUMNS = ["seq", "client_order_id", "state", '"at"', "attempt", "fencing_token", "exchange_order_id",
                 "filled_amount", "reason", "unresolved"]

_REFRESH = (
    "UPDATE orders SET (state, exchange_order_id, attempts, fencing_token, filled_amount, reason, unresolved, "
    "updated_at, last_seq) = (SELECT e.state, e.exchange_order_id, e.attempt, e.fencing_token, e.filled_amount, "
    'e.reason, e.unresolved, e."at", e.seq FROM order_events e WHERE e.client_order_id = orders.client_order_id '
    "ORDER BY e.seq DESC LIMIT 1) WHERE client_order_id = ? "
    "AND EXISTS (SELECT 1 FROM order_events e WHERE e.client_order_id = orders.client_order_id)"
)


def encode_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def decode_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None


def encode_money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the journal file (autocommit mode: transactions are explicit).

    Through SQLite's ``unix-excl`` VFS: the connections of this process share the file (and see
    each other's commits) but hold it exclusively against other processes, and in exchange the
    WAL index lives in heap memory instead of a memory-mapped ``-shm`` file. With the ``-shm``
    mapping, a data dir turned read-only (immutable attribute) killed the process with SIGBUS on
    the next store into the mapping, by a writer or a reader; now a write fails with an I/O error
    (a :class:`JournalWriteError`: new orders halt) and reads keep working. Another process
    (the CLI) gets "database is locked" while a kernel runs and asks that kernel instead.
    ``readonly`` opens it for reading only. ``busy_timeout`` covers the brief moments a
    checkpoint or the schema set-up holds a lock."""
    mode = "&mode=ro" if readonly else ""
    con = sqlite3.connect(f"file:{quote(str(Path(path)))}?vfs=unix-excl{mode}", uri=True, isolation_level=None,
                          check_same_thread=False)
    con.execute("PRAGMA busy_timeout = 5000")
    return con


def is_locked(exc: BaseException) -> bool:
    """``exc`` says another process (a running kernel) holds the journal file."""
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def refresh_current(con: sqlite3.Connection, client_order_ids: list[str]) -> None:
    """Copy each order's latest event into its ``orders`` row (after events were applied or
    removed other than by the writer: replication, truncation)."""
    con.executemany(_REFRESH, [(c,) for c in client_order_ids])


def _report_torn_tail(con: sqlite3.Connection, path: Path, before: WalFrames | None) -> None:
    """After SQLite recovered the file: say what of the WAL's tail it dropped (a transaction a
    crash cut short, or a corrupt frame; never acknowledged: its COMMIT had not returned). SQLite
    drops it silently; ``before`` is what the file held before it was opened. The replayed frame
    count is the second column of a PASSIVE checkpoint (which also folds them into the file)."""
    if before is None:
        return
    try:
        replayed = int(con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    except sqlite3.Error as exc:  # e.g. a read-only data dir: nothing can be checkpointed
        log.warning("journal_wal_unchecked", path=str(path), error=f"{type(exc).__name__}: {exc}")
        return
    dropped = max(0, before.frames - replayed)
    if dropped or before.partial_bytes:
        log.warning("journal_torn_tail", path=str(path), dropped_frames=dropped + (1 if before.partial_bytes else 0),
                    dropped_bytes=dropped * before.frame_size + before.partial_bytes, replayed_frames=replayed,
                    detail="the last transaction in the write-ahead log is incomplete or corrupt (cut short by a "
                           "crash); it was never acknowledged and is dropped, every committed one before it is kept")


class Write:
    """One order's writes, applied by the writer thread inside one SAVEPOINT of a batch.

    ``future`` is resolved once the batch is durable (or refused). With ``loop`` it is an asyncio
    future of that loop, resolved there by one thread-safe call per batch (not one per write: a
    batch of 16 wakes the loop once); without, a :class:`concurrent.futures.Future`."""

    __slots__ = ("apply", "future", "loop")

    def __init__(self, apply: Callable[[sqlite3.Connection], Any],
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.apply = apply
        self.loop = loop
        self.future: asyncio.Future[Any] | concurrent.futures.Future[Any] = (
            loop.create_future() if loop is not None else concurrent.futures.Future())

    def start(self) -> bool:
        """Called by the writer before applying: False if the caller gave up (cancelled) first,
        and then nothing of it is written. (A caller cancelled after this may see its write done
        anyway, as with any cancelled request.)"""
        if isinstance(self.future, concurrent.futures.Future):
            return self.future.set_running_or_notify_cancel()
        return not self.future.cancelled()


def _resolve(outcomes: list[tuple[Write, Any]]) -> None:
    """On the writer's side: hand each write its result (or error)."""
    for w, r in outcomes:
        f = w.future
        if f.done():  # an asyncio caller that was cancelled meanwhile
            continue
        if isinstance(r, BaseException):
            f.set_exception(r)
        else:
            f.set_result(r)


class GroupCommitWriter:
    """The journal's one writer: a thread that commits queued writes in batches.

    ``submit`` queues a write and returns its future, resolved once its batch is durable (or with
    the error that refused it). ``on_commit(results)`` runs in the writer thread after each
    durable commit, before any future of the batch resolves (the journal updates its cache there,
    so a caller that sees its write done also sees it in the cache). A batch that cannot be made
    durable (disk full, data dir read-only, I/O error) is rolled back whole — nothing of it is
    half-written — and every write of it fails with :class:`JournalWriteError`; ``failed`` holds
    that error until a later batch commits again (the disk came back).

    Checkpoints (copying the WAL back into the database file, with an fsync of that file) do not
    run inside a commit: SQLite's automatic checkpoint would make every ~100th order wait for
    one. A checkpointer thread with its own connection runs them (PASSIVE: never blocking the
    writer) every ``checkpoint_every`` transactions; the writer then copies the few frames it
    appended meanwhile, after its next batch's callers were told, so the WAL restarts and stays
    bounded (a PASSIVE checkpoint racing a steady writer never catches up by itself)."""

    def __init__(self, path: str | Path, *, setup: Callable[[sqlite3.Connection], None],
                 on_commit: Callable[[list[tuple[Write, Any]]], None],
                 on_rollback: Callable[[], None], checkpoint_every: int = 64) -> None:
        self.path = Path(path)
        wal = wal_frames(self.path)  # before SQLite's recovery reads (and later reuses) the WAL
        self._con = connect(self.path)
        self._con.execute("PRAGMA journal_mode = WAL")
        self._con.execute("PRAGMA synchronous = FULL")
        self._con.execute("PRAGMA wal_autocheckpoint = 0")
        _report_torn_tail(self._con, self.path, wal)
        self._con.executescript(SCHEMA)
        setup(self._con)
        self._on_commit = on_commit
        self._on_rollback = on_rollback
        self._queue: list[Write] = []
        self._lock = threading.Lock()
        # The writer blocks on a C-level queue (one token per wake-up), not a Condition: the wake
        # is one futex hand-off, with no Python-level waiter lock made and torn down per write.
        self._wakeups: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._closing = False
        self.failed: JournalWriteError | None = None
        self.transactions = 0
        """Committed transactions (each one fdatasync of the WAL)."""
        self.writes = 0
        """Writes committed (one per create/record call)."""
        self.largest_batch = 0
        self.checkpoints = 0
        """Checkpoints the checkpointer thread ran."""
        self._checkpoint_every = checkpoint_every
        self._catch_up = False
        self._checkpoint_requests: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name=f"journal-checkpoint:{self.path.name}",
                                              daemon=True)
        self._checkpointer.start()
        self._thread = threading.Thread(target=self._run, name=f"journal-writer:{self.path.name}", daemon=True)
        self._thread.start()

    def submit(self, write: Write, *, wake: bool = True) -> asyncio.Future[Any] | concurrent.futures.Future[Any]:
        """Queue ``write``; with ``wake=False`` the writer starts on it only at the next
        :meth:`wake` (the caller gathers more writes into the same batch first)."""
        with self._lock:
            if self._closing:
                raise JournalWriteError(f"order journal {self.path}: closed (the kernel is stopping)")
            self._queue.append(write)
        if wake:
            self._wakeups.put(None)
        return write.future

    def wake(self) -> None:
        self._wakeups.put(None)

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, stop the threads, close the connection (SQLite checkpoints
        the WAL into the database as the last connection closes)."""
        with self._lock:
            self._closing = True
        self._wakeups.put(None)
        self._thread.join(timeout)
        self._checkpoint_requests.put(False)
        self._checkpointer.join(timeout)
        if not self._thread.is_alive():
            self._con.close()

    def _run(self) -> None:
        while True:
            self._wakeups.get()
            while True:
                with self._lock:
                    batch, self._queue = self._queue, []
                    closing = self._closing
                # Writes whose caller gave up (cancelled) before the batch started are not written.
                live = [w for w in batch if w.start()]
                if live:
                    self._commit(live)
                if not closing:
                    break
                if not batch:  # closing, and everything queued before it is committed
                    return

    def _checkpoint_loop(self) -> None:
        con: sqlite3.Connection | None = None
        reported = False
        try:
            while self._checkpoint_requests.get():
                try:
                    if con is None:
                        con = connect(self.path)
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                    reported = False
                    # The bulk is copied; the frames the writer appended meanwhile keep the WAL
                    # from being restarted (it restarts only once every frame is in the database),
                    # so the writer finishes the checkpoint after its next batch: a few frames.
                    self._catch_up = True
                except sqlite3.Error as exc:
                    # The WAL keeps growing until the disk takes writes again; the writer's own
                    # failure (if any) halts orders. Reported once per outage.
                    if not reported:
                        reported = True
                        log.warning("journal_checkpoint_failed", path=str(self.path), error=f"{type(exc).__name__}: {exc}")
        finally:
            if con is not None:
                con.close()

    def _commit(self, batch: list[Write]) -> None:
        con = self._con
        results: list[tuple[Write, Any]] = []
        alone = len(batch) == 1
        try:
            con.execute("BEGIN IMMEDIATE")
            for w in batch:
                if alone:
                    # No SAVEPOINT: a write refused by a constraint rolls the transaction back,
                    # which undoes exactly that write (two statements fewer per lone order).
                    try:
                        results.append((w, w.apply(con)))
                    except (JournalError, sqlite3.IntegrityError) as exc:
                        con.execute("ROLLBACK")
                        self._on_rollback()
                        self._deliver([(w, exc if isinstance(exc, JournalError) else JournalError(str(exc)))])
                        return
                    continue
                con.execute("SAVEPOINT w")
                try:
                    results.append((w, w.apply(con)))
                    con.execute("RELEASE w")
                except (JournalError, sqlite3.IntegrityError) as exc:
                    # Refused alone (e.g. a signal journaled twice); the batch goes on.
                    con.execute("ROLLBACK TO w")
                    con.execute("RELEASE w")
                    results.append((w, exc if isinstance(exc, JournalError) else JournalError(str(exc))))
            if len(batch) > 1:
                fault_point("journal_group_before_commit")
            con.execute("COMMIT")
            if len(batch) > 1:
                fault_point("journal_group_after_commit")
        except BaseException as exc:
            try:
                if con.in_transaction:
                    con.execute("ROLLBACK")
            except sqlite3.Error as rb:
                log.error("journal_rollback_failed", error=f"{type(rb).__name__}: {rb}")
            self._on_rollback()
            self.failed = JournalWriteError(
                f"order journal {self.path}: a commit failed ({type(exc).__name__}: {exc}); nothing of that "
                "batch was written. New orders stay halted until the data dir takes writes again (space, "
                "permissions, a read-only file system)")
            log.critical("journal_write_failed", path=str(self.path), error=f"{type(exc).__name__}: {exc}",
                         batch=len(batch))
            self._deliver([(w, self.failed) for w in batch])
            return
        self.failed = None
        self.transactions += 1
        self.writes += len(batch)
        self.largest_batch = max(self.largest_batch, len(batch))
        if self.transactions % self._checkpoint_every == 0:
            self._checkpoint_requests.put(True)
        self._on_commit([(w, r) for w, r in results if not isinstance(r, BaseException)])
        self._deliver(results)
        if self._catch_up:
            # After the callers were told (this delays only a batch that arrives meanwhile): copy
            # the frames appended since the checkpointer's pass, so the next commit restarts the
            # WAL at its beginning and the file stays bounded.
            self._catch_up = False
            try:
                con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                log.warning("journal_checkpoint_failed", path=str(self.path), error=f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _deliver(outcomes: list[tuple[Write, Any]]) -> None:
        """Resolve the futures: directly for thread futures, with ONE thread-safe call per event
        loop for asyncio ones."""
        by_loop: dict[asyncio.AbstractEventLoop | None, list[tuple[Write, Any]]] = {}
        for w, r in outcomes:
            by_loop.setdefault(w.loop, []).append((w, r))
        for loop, items in by_loop.items():
            if loop is None:
                _resolve(items)
                continue
            try:
                loop.call_soon_threadsafe(_resolve, items)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                log.warning("journal_result_undelivered", writes=len(items))
