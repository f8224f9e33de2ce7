"""One request budget per Nobitex credential, shared by every process that uses the token.

Nobitex counts requests per token (and per IP), not per process: an HA pair, a restarted kernel and
the CLI all spend the same per-endpoint windows, and a 429's ``backOff`` applies to all of them
(probing inside it three times blocks the token for two minutes). A limiter that lives in one
process starts empty after a restart or a takeover while the exchange still remembers the calls
before it. So the sliding log of sends and the ``backOff`` deadlines live where every process
sharing the token reads them:

- :class:`RedisBudget` — the HA backend's Redis (two kernels, or one kernel with the Redis lease).
  One Lua script checks and records a send atomically, on the Redis server's clock.
- :class:`FileBudget` — a SQLite file under ``data_dir`` for a lone kernel: a restart, or the CLI
  beside the kernel, sees what the exchange already counted.

Keys are named after a hash of the token, never the token. A store that cannot be reached is not a
reason to stop trading: :class:`~hrkernel_nobitex.guards.EndpointLimits` falls back to its own
local log (and says so once in the log) until the store answers again.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

__all__ = ["Budget", "FileBudget", "RedisBudget", "credential_key"]


def credential_key(token: str) -> str:
    """A stable name for a credential that does not reveal it (first 16 hex of its SHA-256)."""
    return hashlib.sha256(f"nobitex\x1f{token}".encode()).hexdigest()[:16]


class Budget(Protocol):
    """Where the sends and back-offs of one credential are counted."""

    async def take(self, endpoint: str, count: int, per: float) -> float:
        """Record one send on ``endpoint`` if it fits (``count`` per ``per`` seconds, and no
        ``backOff`` running) and return 0; otherwise record nothing and return the seconds until
        a slot opens."""
        ...

    async def back_off(self, endpoint: str, seconds: float) -> None:
        """The exchange answered 429 with ``backOff``: nobody sharing the token calls ``endpoint``
        for ``seconds``."""
        ...

    async def aclose(self) -> None: ...


_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then return tostring(blocked - now) end
local count = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
if count <= 0 then return '0' end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - per)
if redis.call('ZCARD', KEYS[1]) >= count then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(math.max(tonumber(first[2]) + per - now, 0.001))
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(per * 1000) + 1000)
return '0'
"""

_BACK_OFF = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local untl = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > cur then
  redis.call('SET', KEYS[1], tostring(untl), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""


class RedisBudget:
    """The budget in Redis: ``<prefix>:<credential>:<endpoint>:sent`` (a sorted set of send times)
    and ``...:blocked`` (the end of a ``backOff``), both expiring on their own."""

    def __init__(self, url: str, credential: str, *, prefix: str = "hrkernel:ratelimit:nobitex",
                 timeout: float = 0.5) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._take = self._redis.register_script(_TAKE)
        self._back_off = self._redis.register_script(_BACK_OFF)
        self._base = f"{prefix}:{credential}"
        self._ids = itertools.count()
        self._me = f"{os.getpid()}-{time.time_ns()}"
        self.where = f"redis {url.split('@')[-1]}"

    async def take(self, endpoint: str, count: int, per: float) -> float:
        keys = [f"{self._base}:{endpoint}:sent", f"{self._base}:{endpoint}:blocked"]
        answer = await self._take(keys=keys, args=[count, per, f"{self._me}-{next(self._ids)}"])
        return float(answer)

    async def back_off(self, endpoint: str, seconds: float) -> None:
        await self._back_off(keys=[f"{self._base}:{endpoint}:blocked"], args=[max(0.0, seconds)])

    async def aclose(self) -> None:
        await self._redis.aclose()


class FileBudget:
    """The budget in a SQLite file (wall-clock times, so a restart reads them right). Each check
    and record is one ``BEGIN IMMEDIATE`` transaction: processes sharing the file take turns."""

    def __init__(self, path: str | Path, credential: str) -> None:
        self.path = Path(path)
        self._credential = credential
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        self.where = f"file {self.path}"

    def _open(self) -> sqlite3.Connection:
        """Opened on first use: building the exchange does no I/O."""
        if self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(str(self.path), timeout=2.0, isolation_level=None, check_same_thread=False)
            # A rollback journal, not WAL: WAL's index is a memory-mapped file, and on a data dir
            # that turns read-only or immutable a write to that mapping kills the kernel with
            # SIGBUS; a rollback journal's write() fails with an error, and the limits fall back
            # to this process's own count (see EndpointLimits._store_failed).
            con.execute("PRAGMA journal_mode=TRUNCATE")
            # A lost last send after a power cut undercounts by one: a budget, not a ledger.
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("CREATE TABLE IF NOT EXISTS sends (credential TEXT, endpoint TEXT, at REAL)")
            con.execute("CREATE INDEX IF NOT EXISTS sends_by_endpoint ON sends (credential, endpoint, at)")
            con.execute("CREATE TABLE IF NOT EXISTS back_offs (credential TEXT, endpoint TEXT, until REAL, "
                        "PRIMARY KEY (credential, endpoint))")
            self._con = con
        return self._con

    async def take(self, endpoint: str, count: int, per: float) -> float:
        # Sub-millisecond local writes: run inline rather than paying a thread hop per request.
        with self._lock:
            con, now = self._open(), time.time()
            con.execute("BEGIN IMMEDIATE")
            try:
                row = con.execute("SELECT until FROM back_offs WHERE credential = ? AND endpoint = ?",
                                  (self._credential, endpoint)).fetchone()
                if row is not None and row[0] > now:
                    return float(row[0] - now)
                if count <= 0:
                    return 0.0
                con.execute("DELETE FROM sends WHERE credential = ? AND endpoint = ? AND at <= ?",
                            (self._credential, endpoint, now - per))
                used, first = con.execute("SELECT count(*), min(at) FROM sends WHERE credential = ? AND endpoint = ?",
                                          (self._credential, endpoint)).fetchone()
                if used >= count:
                    return max(float(first) + per - now, 0.001)
                con.execute("INSERT INTO sends VALUES (?, ?, ?)", (self._credential, endpoint, now))
                return 0.0
            finally:
                con.execute("COMMIT")

    async def back_off(self, endpoint: str, seconds: float) -> None:
        until = time.time() + max(0.0, seconds)
        with self._lock:
            self._open().execute(
                "INSERT INTO back_offs VALUES (?, ?, ?) ON CONFLICT (credential, endpoint) "
                "DO UPDATE SET until = max(until, excluded.until)", (self._credential, endpoint, until))

    async def aclose(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

