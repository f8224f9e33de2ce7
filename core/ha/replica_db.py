"""The storage side of hot-standby replication: read new journal/ledger rows, apply replicated ones.

The replicated tables are the journal's ``orders`` / ``order_events`` (SQLite, the journal file:
see :mod:`hrkernel.orders.journal_store`) and the ledger's ``ledger_tx`` / ``ledger_posting``
(DuckDB); their schemas belong to the journal and :mod:`hrkernel.ledger.ledger` and are not
changed here. ``order_events.seq`` and ``ledger_tx.tx_id`` rise by one per row in the writing
process, so a replica's position is just (last seq, last tx_id) plus the id of the last stream
entry it applied; it lives in the DuckDB table ``ha_replication``, updated in the SAME DuckDB
transaction as the ledger rows it describes, so ledger rows are applied exactly once. Journal rows
are applied first, in their own SQLite transaction, and idempotently (``INSERT OR IGNORE`` keyed
by client order id and seq, then each order's current state recomputed from its events): a crash
between the two transactions re-applies the entry, which changes nothing in the journal.

Journal values are already text (money) and integers; ledger values travel as text for DECIMAL
and TIMESTAMP columns (exact: never through float) and are cast back by DuckDB on insert. Every
method here is synchronous and uses its own connections; callers run them in a worker thread.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import msgspec

from hrkernel.duckdb_conn import rollback
from hrkernel.ledger.ledger import SCHEMA as LEDGER_SCHEMA
from hrkernel.orders.journal_store import (
    EVENT_COLUMNS,
    ORDER_COLUMNS,
    SCHEMA,
    connect,
    decode_time,
    refresh_current,
)

__all__ = ["Batch", "Position", "ReplicaStore", "TABLES"]

JOURNAL_TABLES: dict[str, list[str]] = {"orders": ORDER_COLUMNS, "order_events": EVENT_COLUMNS}
"""The journal's tables (SQLite) and their columns, as the journal defines them."""

def _ledger_tables() -> dict[str, list[tuple[str, str]]]:
    """The ledger's tables and their (column, type) pairs, read from DuckDB's catalog after
    running the ledger's own ``SCHEMA`` in memory: replication follows the ledger's schema and
    re-declares nothing (a column added to the ledger is replicated without a change here)."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(LEDGER_SCHEMA)
        out: dict[str, list[tuple[str, str]]] = {}
        for table in ("ledger_tx", "ledger_posting"):
            rows = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
                               "ORDER BY ordinal_position", [table]).fetchall()
            out[table] = [(str(name), str(kind)) for name, kind in rows]
        return out
    finally:
        con.close()


TABLES: dict[str, list[tuple[str, str]]] = _ledger_tables()
"""The ledger's replicated tables (DuckDB) and their columns, as the ledger's schema defines them."""

_TEXT = ("DECIMAL", "TIMESTAMP")

META_SCHEMA = """
CREATE TABLE IF NOT EXISTS ha_replication (
    id INTEGER PRIMARY KEY,
    stream_id VARCHAR NOT NULL,
    seq BIGINT NOT NULL,
    tx BIGINT NOT NULL,
    token BIGINT NOT NULL,
    counter BIGINT NOT NULL,
    mode VARCHAR NOT NULL,
    reason VARCHAR,
    updated_at TIMESTAMP NOT NULL
);
"""


class Position(msgspec.Struct, kw_only=True):
    """Where this replica stands: the rows the stream covers and the last entry applied."""

    stream_id: str = "0-0"
    """Id of the last stream entry applied (or published by this instance)."""
    seq: int = 0
    """Last ``order_events.seq`` the stream covers (applied from it or published to it)."""
    tx: int = 0
    """Last ``ledger_tx.tx_id`` the stream covers."""
    token: int = 0
    """Highest fencing token seen on the stream: entries of lower tokens are a deposed leader's."""
    counter: int = 0
    """The stream-wide entry number of the last entry applied (for "entries behind")."""
    mode: str = "follow"
    """``follow``, ``lead`` or ``rebuild`` (history lost: wait to rebuild by reconciliation)."""
    reason: str | None = None


class Batch(msgspec.Struct, kw_only=True):
    """New rows of the leader's database, as read by :meth:`ReplicaStore.read_new`."""

    after_seq: int
    last_seq: int
    after_tx: int
    last_tx: int
    commit_ms: int
    """Wall time (ms) of the oldest journal event in the batch, or of the read when it has none."""
    rows: dict[str, list[list[Any]]]

    @property
    def empty(self) -> bool:
        return self.last_seq == self.after_seq and self.last_tx == self.after_tx


def _select(table: str) -> str:
    cols = [f"CAST({c} AS VARCHAR)" if t.startswith(_TEXT) else c for c, t in TABLES[table]]
    return f"SELECT {', '.join(cols)} FROM {table}"


def _insert(table: str) -> str:
    parts = []
    for i, (_, t) in enumerate(TABLES[table], 1):
        parts.append(f"unnest(${i}::VARCHAR[])::{t}" if t.startswith(_TEXT) else f"unnest(${i}::{t}[])")
    return f"INSERT OR IGNORE INTO {table} SELECT {', '.join(parts)}"


def _columns(rows: list[list[Any]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


def _contiguous(ids: list[int], after: int) -> int:
    """How many of ``ids`` (sorted) follow ``after`` without a hole."""
    count = 0
    for expected, got in enumerate(ids, after + 1):
        if got != expected:
            break
        count += 1
    return count


def _jselect(table: str) -> str:
    return f"SELECT {', '.join(JOURNAL_TABLES[table])} FROM {table}"


def _jinsert(table: str) -> str:
    cols = JOURNAL_TABLES[table]
    return f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


class ReplicaStore:
    """Replication reads and writes on the journal file (SQLite) and the ledger's DuckDB database
    (connections of its own; thread-safe by a lock)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, journal: str | Path, *, hole_timeout: float = 5.0) -> None:
        self._cur = con.cursor()
        self._jcon: sqlite3.Connection = connect(journal)
        self._jcon.execute("PRAGMA journal_mode = WAL")
        self._jcon.execute("PRAGMA synchronous = FULL")
        self._jcon.executescript(SCHEMA)
        self._lock = threading.Lock()
        self.hole_timeout = hole_timeout
        """A missing seq/tx_id is waited for this long (a commit still in flight), then skipped."""
        self._holes: dict[str, tuple[int, float]] = {}
        self._cur.execute(META_SCHEMA)

    def close(self) -> None:
        """Close the cursor once no call is running on it (later calls raise)."""
        with self._lock:
            self._cur.close()
            self._jcon.close()

    # -- position --------------------------------------------------------------------------------

    def load(self) -> Position:
        with self._lock:
            row = self._cur.execute(
                "SELECT stream_id, seq, tx, token, counter, mode, reason FROM ha_replication WHERE id = 1").fetchone()
        if row is None:
            return Position()
        return Position(stream_id=row[0], seq=row[1], tx=row[2], token=row[3], counter=row[4], mode=row[5], reason=row[6])

    def _save(self, pos: Position) -> None:
        self._cur.execute(
            "INSERT OR REPLACE INTO ha_replication VALUES (1, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
            [pos.stream_id, pos.seq, pos.tx, pos.token, pos.counter, pos.mode, pos.reason],
        )

    def save(self, pos: Position) -> None:
        with self._lock:
            self._save(pos)

    def local_max(self) -> tuple[int, int]:
        with self._lock:
            seq = self._jcon.execute("SELECT coalesce(max(seq), 0) FROM order_events").fetchone()
            tx = self._cur.execute("SELECT coalesce(max(tx_id), 0) FROM ledger_tx").fetchone()
        return int(seq[0]) if seq else 0, int(tx[0]) if tx else 0

    def counts(self) -> dict[str, int]:
        with self._lock:
            out = {t: int(self._jcon.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in JOURNAL_TABLES}
            out.update({t: int(self._cur.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
                        for t in TABLES})
            return out

    # -- the leader's side -------------------------------------------------------------------------

    def _take(self, kind: str, ids: list[int], after: int) -> int:
        """How many rows to publish: the hole-free prefix, or all of them once a hole is old."""
        count = _contiguous(ids, after)
        if count == len(ids):
            self._holes.pop(kind, None)
            return count
        hole = after + count + 1
        seen = self._holes.get(kind)
        if seen is None or seen[0] != hole:
            self._holes[kind] = (hole, time.monotonic())
            return count
        if time.monotonic() - seen[1] >= self.hole_timeout:
            self._holes.pop(kind, None)
            return len(ids)  # never committed (a rolled-back write): do not wait for it forever
        return count

    def read_new(self, after_seq: int, after_tx: int, limit: int) -> Batch:
        """Rows committed after (``after_seq``, ``after_tx``): at most ``limit`` events and
        ``limit`` ledger transactions, each a hole-free run, with the ``orders`` rows of the
        events' orders and the postings of the transactions."""
        cur, jcon = self._cur, self._jcon
        with self._lock:
            events = jcon.execute(_jselect("order_events") + " WHERE seq > ? ORDER BY seq LIMIT ?",
                                  [after_seq, limit]).fetchall()
            events = events[: self._take("seq", [r[0] for r in events], after_seq)]
            orders: list[Any] = []
            if events:
                ids = sorted({r[1] for r in events})
                orders = jcon.execute(
                    _jselect("orders") + f" WHERE client_order_id IN ({', '.join('?' * len(ids))})", ids).fetchall()
            txs = cur.execute(_select("ledger_tx") + " WHERE tx_id > ? ORDER BY tx_id LIMIT ?", [after_tx, limit]).fetchall()
            txs = txs[: self._take("tx", [r[0] for r in txs], after_tx)]
            postings: list[Any] = []
            if txs:
                postings = cur.execute(
                    _select("ledger_posting") + " WHERE tx_id IN (SELECT unnest(?::BIGINT[])) ORDER BY tx_id",
                    [[r[0] for r in txs]]).fetchall()
        first = decode_time(min(r[3] for r in events)) if events else None
        commit_ms = int(first.timestamp() * 1000) if first is not None else int(time.time() * 1000)
        return Batch(
            after_seq=after_seq, last_seq=events[-1][0] if events else after_seq,
            after_tx=after_tx, last_tx=txs[-1][0] if txs else after_tx, commit_ms=commit_ms,
            rows={"orders": [list(r) for r in orders], "order_events": [list(r) for r in events],
                  "ledger_tx": [list(r) for r in txs], "ledger_posting": [list(r) for r in postings]},
        )

    # -- a standby's side --------------------------------------------------------------------------

    def _transaction(self, work: Any, pos: Position) -> None:
        with self._lock:
            cur = self._cur
            cur.execute("BEGIN TRANSACTION")
            try:
                work(cur)
                self._save(pos)
                cur.execute("COMMIT")
            except BaseException:
                rollback(cur)
                raise

    def _journal_transaction(self, work: Any) -> None:
        jcon = self._jcon
        jcon.execute("BEGIN IMMEDIATE")
        try:
            work(jcon)
            jcon.execute("COMMIT")
        except BaseException:
            if jcon.in_transaction:
                jcon.execute("ROLLBACK")
            raise

    def apply(self, rows: dict[str, list[list[Any]]], pos: Position) -> None:
        """Insert replicated rows (each at most once) and move the position: the journal's rows in
        one SQLite transaction (idempotent), then the ledger's rows and the position in one DuckDB
        transaction."""

        def journal(jcon: sqlite3.Connection) -> None:
            for table in ("orders", "order_events"):
                if rows.get(table):
                    jcon.executemany(_jinsert(table), rows[table])
            if rows.get("order_events"):
                refresh_current(jcon, sorted({r[1] for r in rows["order_events"]}))

        def work(cur: duckdb.DuckDBPyConnection) -> None:
            txs = rows.get("ledger_tx") or []
            if not txs:
                return
            ids = [r[0] for r in txs]
            have = {r[0] for r in cur.execute(
                "SELECT tx_id FROM ledger_tx WHERE tx_id IN (SELECT unnest(?::BIGINT[]))", [ids]).fetchall()}
            new_txs = [r for r in txs if r[0] not in have]
            if not new_txs:
                return  # postings have no key: only those of transactions new here are inserted
            cur.execute(_insert("ledger_tx"), _columns(new_txs, len(TABLES["ledger_tx"])))
            new_ids = {r[0] for r in new_txs}
            postings = [r for r in rows.get("ledger_posting") or [] if r[0] in new_ids]
            if postings:
                cur.execute(_insert("ledger_posting").replace("INSERT OR IGNORE", "INSERT"),
                            _columns(postings, len(TABLES["ledger_posting"])))

        with self._lock:
            if rows.get("orders") or rows.get("order_events"):
                self._journal_transaction(journal)
        self._transaction(work, pos)

    def truncate_after(self, seq: int, tx: int, pos: Position) -> int:
        """Delete rows beyond (``seq``, ``tx``) — a deposed leader's unpublished tail, which its
        successor reconciled from the exchange itself. Returns how many rows went."""
        removed = [0]

        def journal(jcon: sqlite3.Connection) -> None:
            touched = [r[0] for r in jcon.execute(
                "SELECT DISTINCT client_order_id FROM order_events WHERE seq > ?", [seq]).fetchall()]
            removed[0] += jcon.execute("DELETE FROM order_events WHERE seq > ?", [seq]).rowcount
            removed[0] += jcon.execute(
                "DELETE FROM orders WHERE client_order_id NOT IN (SELECT client_order_id FROM order_events)").rowcount
            refresh_current(jcon, touched)

        def work(cur: duckdb.DuckDBPyConnection) -> None:
            for sql, arg in (
                ("DELETE FROM ledger_posting WHERE tx_id > ?", tx),
                ("DELETE FROM ledger_tx WHERE tx_id > ?", tx),
            ):
                row = cur.execute(sql, [arg]).fetchone()
                removed[0] += int(row[0]) if row else 0

        with self._lock:
            self._journal_transaction(journal)
        self._transaction(work, pos)
        return removed[0]

    def wipe(self, pos: Position) -> None:
        """Delete every replicated row (history lost: this replica is rebuilt by reconciliation)."""
        self.truncate_after(0, 0, pos)

    def move(self, pos: Position) -> None:
        """Move the position only (an entry skipped on purpose)."""
        self._transaction(lambda cur: None, pos)
