"""Alert history in DuckDB: alerts, deliveries per channel, acknowledgements, silences (internal).

The file is opened per batch and closed again so ``hrkernel alerts list|ack`` can open it while
the kernel runs (DuckDB lets one process hold a file at a time). Methods are synchronous and
thread-safe; the manager calls them from a worker thread so the event loop never waits on disk.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id VARCHAR PRIMARY KEY,
    fingerprint VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    level VARCHAR NOT NULL,
    title VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    context VARCHAR NOT NULL,
    count BIGINT NOT NULL,
    first_seen DOUBLE NOT NULL,
    last_seen DOUBLE NOT NULL,
    status VARCHAR NOT NULL,
    suppressed VARCHAR,
    resolved_at DOUBLE,
    ack_by VARCHAR,
    ack_at DOUBLE,
    ack_note VARCHAR
);
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id VARCHAR NOT NULL,
    channel VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    sent_at DOUBLE NOT NULL,
    ok BOOLEAN NOT NULL,
    reason VARCHAR
);
"""

ALERT_COLUMNS = (
    "id", "fingerprint", "source", "level", "title", "message", "context", "count", "first_seen",
    "last_seen", "status", "suppressed", "resolved_at", "ack_by", "ack_at", "ack_note",
)

LOCK_RETRY_SECONDS = 5.0


class HistoryError(Exception):
    """The history file could not be used."""


class History:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._ready = False

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """One short-lived connection; waits (bounded) while another process holds the file."""
        with self._lock:
            deadline = time.monotonic() + LOCK_RETRY_SECONDS
            while True:
                try:
                    if read_only and not self.path.exists():
                        raise HistoryError(f"no alert history at {self.path}")
                    if not read_only:
                        self.path.parent.mkdir(parents=True, exist_ok=True)
                    con = duckdb.connect(str(self.path), read_only=read_only)
                    break
                except duckdb.IOException as exc:  # held by another process: wait and retry
                    if time.monotonic() > deadline:
                        raise HistoryError(f"alert history {self.path} is busy: {exc}") from exc
                    time.sleep(0.05)
            try:
                if not self._ready and not read_only:
                    con.execute(_SCHEMA)
                    self._ready = True
                yield con
            finally:
                con.close()

    # -- writes ---------------------------------------------------------------------------------

    def apply(self, ops: list[tuple[str, dict[str, Any]]]) -> None:
        """Apply a batch of ``("alert", row)`` / ``("delivery", row)`` / ``("ack", row)`` ops.

        One transaction; an alert written several times in the batch is upserted once with its
        last state, and rows go in as multi-row statements (DuckDB is slow row by row).
        """
        if not ops:
            return
        alerts: dict[str, dict[str, Any]] = {}
        deliveries: list[list[Any]] = []
        acks: list[dict[str, Any]] = []
        for kind, row in ops:
            if kind == "alert":
                alerts[row["id"]] = row
            elif kind == "delivery":
                deliveries.append([row["alert_id"], row["channel"], row["kind"], row["at"], row["ok"], row.get("reason")])
            elif kind == "ack":
                acks.append(row)
            else:  # pragma: no cover - programming error
                raise ValueError(f"unknown history op {kind!r}")
        with self.connect() as con:
            con.execute("BEGIN")
            for chunk in _chunks([self._alert_values(r) for r in alerts.values()], 500):
                con.execute(
                    f"INSERT INTO alerts ({', '.join(ALERT_COLUMNS[:13])}) VALUES "
                    + ", ".join([f"({', '.join('?' * 13)})"] * len(chunk))
                    + " ON CONFLICT (id) DO UPDATE SET level = excluded.level, message = excluded.message, "
                    "context = excluded.context, count = excluded.count, last_seen = excluded.last_seen, "
                    "status = excluded.status, suppressed = excluded.suppressed, resolved_at = excluded.resolved_at",
                    [v for values in chunk for v in values],
                )
            for chunk in _chunks(deliveries, 500):
                con.execute(
                    "INSERT INTO deliveries VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk)),
                    [v for values in chunk for v in values],
                )
            for row in acks:
                self._ack(con, row["id"], row["who"], row["at"], row.get("note", ""))
            con.execute("COMMIT")

    @staticmethod
    def _alert_values(row: dict[str, Any]) -> list[Any]:
        values = [row.get(c) for c in ALERT_COLUMNS[:13]]
        values[6] = json.dumps(row.get("context") or {}, default=str, sort_keys=True)
        return values

    @staticmethod
    def _ack(con: duckdb.DuckDBPyConnection, alert_id: str, who: str, at: float, note: str) -> int:
        found = con.execute(
            "UPDATE alerts SET ack_by = ?, ack_at = ?, ack_note = ? WHERE id = ? OR fingerprint = ? "
            "RETURNING id",
            [who, at, note, alert_id, alert_id],
        ).fetchall()
        return len(found)

    def acknowledge(self, alert_id: str, who: str, note: str = "", at: float | None = None) -> list[str]:
        """Acknowledge an alert by id (or every alert with that fingerprint); returns the ids."""
        with self.connect() as con:
            rows = con.execute(
                "UPDATE alerts SET ack_by = ?, ack_at = ?, ack_note = ? WHERE id = ? OR fingerprint = ? "
                "RETURNING id",
                [who, at if at is not None else time.time(), note, alert_id, alert_id],
            ).fetchall()
        return [r[0] for r in rows]

    # -- reads ----------------------------------------------------------------------------------

    def query(
        self,
        *,
        status: str | None = None,
        unacknowledged: bool = False,
        source: str | None = None,
        limit: int = 100,
        read_only: bool = False,
    ) -> list[dict[str, Any]]:
        """Alerts, newest first, each with its ``deliveries`` (list of dicts)."""
        where: list[str] = []
        args: list[Any] = []
        if status:
            where.append("status = ?")
            args.append(status)
        if source:
            where.append("source = ?")
            args.append(source)
        if unacknowledged:
            where.append("ack_by IS NULL")
        sql = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY last_seen DESC, id LIMIT ?"
        args.append(limit)
        with self.connect(read_only=read_only) as con:
            if read_only and not _has_table(con, "alerts"):
                return []
            rows = [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in con.execute(sql, args).fetchall()]
            ids = [r["id"] for r in rows]
            deliveries: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
            if ids:
                for alert_id, channel, kind, at, ok, reason in con.execute(
                    "SELECT alert_id, channel, kind, sent_at, ok, reason FROM deliveries "
                    f"WHERE alert_id IN ({', '.join('?' * len(ids))}) ORDER BY sent_at, channel",
                    ids,
                ).fetchall():
                    deliveries[alert_id].append(
                        {"channel": channel, "kind": kind, "at": at, "ok": ok, "reason": reason}
                    )
        for row in rows:
            row["context"] = json.loads(row["context"])
            row["deliveries"] = deliveries[row["id"]]
        return rows

    def acknowledged(self, ids: list[str]) -> dict[str, str]:
        """Which of ``ids`` are acknowledged (possibly by another process): id → who."""
        if not ids:
            return {}
        with self.connect() as con:
            rows = con.execute(
                f"SELECT id, ack_by FROM alerts WHERE ack_by IS NOT NULL AND id IN ({', '.join('?' * len(ids))})",
                ids,
            ).fetchall()
        return {r[0]: r[1] for r in rows}


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).fetchone()[0]  # type: ignore[index]
    )


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
