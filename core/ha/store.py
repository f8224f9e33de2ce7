"""DuckDB history of health results, recovery attempts and failovers (``<data_dir>/ha.duckdb``).

Times are stored as naive UTC ``TIMESTAMP``s (``TIMESTAMPTZ`` would need pytz to read back).

Writes are small and synchronous behind a lock; async callers use :func:`anyio.to_thread.run_sync`
so a slow disk never stalls the event loop.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS health_history (
        ts TIMESTAMP NOT NULL, check_name VARCHAR NOT NULL, status VARCHAR NOT NULL,
        reported VARCHAR NOT NULL, latency_ms DOUBLE, detail VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS recovery_attempts (
        ts TIMESTAMP NOT NULL, check_name VARCHAR NOT NULL, attempt INTEGER NOT NULL,
        outcome VARCHAR NOT NULL, detail VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS failovers (
        ts TIMESTAMP NOT NULL, kind VARCHAR NOT NULL, grp VARCHAR, from_member VARCHAR,
        to_member VARCHAR, cause VARCHAR NOT NULL, duration_s DOUBLE)""",
    # Added with cluster groups (join/leave/activate/deactivate/switch); files written before
    # it get the column on open, NULL in their old rows.
    "ALTER TABLE failovers ADD COLUMN IF NOT EXISTS change VARCHAR",
]


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC).replace(tzinfo=None)  # stored as naive UTC


class HAStore:
    """One DuckDB file (or ``:memory:``) holding the HA tables."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db: duckdb.DuckDBPyConnection | None = None

    def open(self) -> HAStore:
        with self._lock:
            if self._db is None:
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._db = duckdb.connect(self.path)
                for statement in _SCHEMA:
                    self._db.execute(statement)
        return self

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _execute(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        if self._db is None:
            self.open()
        with self._lock:
            assert self._db is not None
            cursor = self._db.execute(sql, params or [])
            return cursor.fetchall() if cursor.description else []

    def record_health(self, at: float, check: str, status: str, reported: str, latency: float | None, detail: str) -> None:
        self._execute(
            "INSERT INTO health_history VALUES (?, ?, ?, ?, ?, ?)",
            [_ts(at), check, status, reported, None if latency is None else latency * 1000, detail],
        )

    def record_recovery(self, at: float, check: str, attempt: int, outcome: str, detail: str) -> None:
        self._execute("INSERT INTO recovery_attempts VALUES (?, ?, ?, ?, ?)", [_ts(at), check, attempt, outcome, detail])

    def record_failover(
        self, at: float, kind: str, group: str | None, from_member: str | None, to_member: str | None,
        cause: str, duration: float | None, change: str | None = None,
    ) -> None:
        self._execute(
            "INSERT INTO failovers (ts, kind, grp, from_member, to_member, cause, duration_s, change)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [_ts(at), kind, group, from_member, to_member, cause, duration, change],
        )

    def health_trend(self, check: str, bucket_seconds: int = 60, limit: int = 500) -> list[dict[str, Any]]:
        """Per time bucket: results, share healthy, mean and max latency (for dashboard charts)."""
        rows = self._execute(
            """SELECT time_bucket(to_seconds(?), ts) AS bucket, count(*),
                      avg(CASE WHEN status = 'healthy' THEN 1.0 ELSE 0.0 END), avg(latency_ms), max(latency_ms)
               FROM health_history WHERE check_name = ? GROUP BY bucket ORDER BY bucket DESC LIMIT ?""",
            [bucket_seconds, check, limit],
        )
        return [
            {"bucket": r[0].isoformat(), "count": r[1], "healthy_share": r[2], "latency_ms_mean": r[3], "latency_ms_max": r[4]}
            for r in reversed(rows)
        ]

    def health_rows(self, check: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE check_name = ?", [check]) if check else ("", [])
        rows = self._execute(f"SELECT ts, check_name, status, reported, latency_ms, detail FROM health_history {where} ORDER BY ts, rowid", params)
        keys = ("at", "check", "status", "reported", "latency_ms", "detail")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def recovery_rows(self, check: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE check_name = ?", [check]) if check else ("", [])
        rows = self._execute(f"SELECT ts, check_name, attempt, outcome, detail FROM recovery_attempts {where} ORDER BY ts, rowid", params)
        keys = ("at", "check", "attempt", "outcome", "detail")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def failover_rows(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._execute(
            "SELECT ts, kind, grp, from_member, to_member, cause, duration_s, change FROM failovers"
            " ORDER BY ts DESC, rowid DESC LIMIT ?", [limit]
        )
        keys = ("at", "kind", "group", "from", "to", "cause", "duration_s", "change")
        return [dict(zip(keys, r, strict=True)) for r in reversed(rows)]
