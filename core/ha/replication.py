"""Hot standby: the leader's journal and ledger replicated to standbys through one Redis Stream.

Stream ``<key_prefix>:replication`` (capped at ``[ha] replication_maxlen`` entries, approximately).
Every entry carries the fencing token of the tenure that wrote it, the seq / tx_id range it covers
(``after_*`` → ``last_*``), its commit wall time and the rows (JSON). Entries are appended by a
Lua script that first checks ``<key_prefix>:token`` still holds the writer's token: once another
instance acquired the lease (the counter moved on), nothing of the deposed leader lands any more.

- **Leader** (``lead``): every ``replication_interval`` it reads the rows committed after its
  published position from its own DuckDB (never on the order path) and appends them. It keeps
  publishing its tail after losing the lease for as long as no successor exists (the token is
  still current), and becomes a follower the moment the fenced append is refused.
- **Takeover** (:meth:`Replicator.take_over`, an HA takeover step run before reconciliation): the
  new leader applies everything still in the stream, then appends a *tenure marker* with its
  token and the position the stream covers (compare-and-append: only if no entry came after the
  last one it applied). Rows of its own beyond that position (a tail it never published) are
  published next. If the stream no longer ends where this replica's knowledge ends (Redis lost
  the stream), the marker says (0, 0) and the whole database is published again, which rebuilds
  every standby.
- **Standby** (``follow``): ``XREAD``s from the last entry it applied. An entry of a lower token
  than the highest seen is a paused old leader's and is ignored. A tenure marker deletes this
  replica's rows beyond its position (a deposed leader's unpublished tail, reconciled by the new
  leader from the exchange). A batch must continue exactly where this replica stands (same token,
  ``after_*`` equal to its position); anything else means entries were trimmed or lost: the
  replica wipes the replicated tables and waits (``rebuild``) — as leader, start-up reconciliation
  rebuilds its ledger from the exchange (opening balance, orphans adopted), or a marker (0, 0)
  brings the history back. The rebuild is logged and alerted.

Replication lag is the time from a row's commit on the leader to its apply here, and the number
of stream entries not applied yet; :meth:`Replicator.lag` reports it, and every instance writes it
to the hash ``<key_prefix>:replication:status:<instance>`` (expires when the instance stops
reporting) for ``hrkernel status``.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import duckdb
import msgspec
import redis.asyncio as aioredis
from anyio.abc import TaskGroup
from redis.exceptions import RedisError

from hrkernel.ha.replica_db import Batch, Position, ReplicaStore
from hrkernel.logging import get_logger

__all__ = ["Replicator", "replication_keys", "read_status"]

_APPEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, ''} end
if ARGV[3] ~= '' then
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  local id = '0-0'
  if #last > 0 then id = last[1][1] end
  if id ~= ARGV[3] then return {-1, id} end
end
local n = redis.call('INCR', KEYS[3])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'n', n, unpack(ARGV, 4))
return {n, id}
"""
"""Fenced append: only while the fencing counter holds the writer's token; with ARGV[3], only if
the stream's last entry is that id (the takeover marker: nothing slipped in after the drain)."""

Alert = Callable[[str, str, dict[str, Any]], Awaitable[None] | None]


def replication_keys(prefix: str, instance_id: str = "") -> dict[str, str]:
    return {
        "stream": f"{prefix}:replication",
        "counter": f"{prefix}:replication:n",
        "token": f"{prefix}:token",
        "status": f"{prefix}:replication:status:{instance_id}",
    }


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, n = stream_id.partition("-")
    return int(ms), int(n or 0)


class _Entry(msgspec.Struct, kw_only=True):
    id: str
    n: int
    kind: str
    token: int
    instance: str
    after_seq: int
    last_seq: int
    after_tx: int
    last_tx: int
    commit_ms: int
    data: str

    @classmethod
    def parse(cls, stream_id: str, fields: dict[str, str]) -> _Entry:
        return cls(
            id=stream_id, n=int(fields.get("n", 0)), kind=fields.get("kind", ""), token=int(fields.get("token", 0)),
            instance=fields.get("instance", ""), after_seq=int(fields.get("after_seq", 0)),
            last_seq=int(fields.get("last_seq", 0)), after_tx=int(fields.get("after_tx", 0)),
            last_tx=int(fields.get("last_tx", 0)), commit_ms=int(fields.get("commit_ms", 0)), data=fields.get("data", ""),
        )


class Replicator:
    """One instance's side of replication (leader and standby alike); see the module docstring."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        journal: str | Path,
        *,
        redis_url: str,
        key_prefix: str,
        instance_id: str,
        interval: float = 0.05,
        maxlen: int = 100_000,
        batch: int = 500,
        timeout: float = 2.0,
        alert: Alert | None = None,
    ) -> None:
        self.store = ReplicaStore(con, journal)
        self.redis_url = redis_url
        self.keys = replication_keys(key_prefix, instance_id)
        self.instance_id = instance_id
        self.interval = interval
        self.maxlen = maxlen
        self.batch = batch
        self.timeout = timeout
        self._alert = alert
        self.log = get_logger("hrkernel.ha.replication", instance=instance_id)
        self.pos = Position()
        self.version = 0
        """Moves whenever replicated rows change here (standby views re-read after it moved)."""
        self.my_token: int | None = None
        self.on_demoted: Callable[[], None] | None = None
        """Called (in the event loop) when this leader's appends are refused: another instance leads."""
        self._lock = anyio.Lock()
        self._client: aioredis.Redis | None = None
        self._reader: aioredis.Redis | None = None
        self._script: Any = None
        self._delays: deque[float] = deque(maxlen=1000)
        """Commit-to-apply (standby) or commit-to-publish (leader) delays of recent entries, seconds."""
        self._last_commit_ms = 0
        self._behind = 0
        self._stream_counter = 0
        self._last_error: str | None = None
        self._token_checked = 0.0
        self._saved_at = 0.0
        self._started_ms = 0
        self._deferred_at = -1e9
        self._stopping = False
        self.applied_entries = 0
        self.ignored_entries = 0

    # -- lifecycle ----------------------------------------------------------------------------------

    def _connect(self, timeout: float) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=timeout,
                                       socket_connect_timeout=timeout)

    async def start(self, tg: TaskGroup) -> None:
        self._started_ms = int(time.time() * 1000)
        self.pos = await anyio.to_thread.run_sync(self.store.load)
        if self.pos.mode == "lead":  # a leader that stopped: it follows until it is elected again
            self.pos.mode = "follow"
        self._client = self._connect(self.timeout)
        self._reader = self._connect(self.timeout + 1.0)
        tg.start_soon(self.run, name="ha:replication")
        tg.start_soon(self._report_loop, name="ha:replication-status")

    async def aclose(self) -> None:
        self._stopping = True
        for client in (self._client, self._reader):
            if client is not None:
                try:
                    with anyio.move_on_after(0.5):
                        await client.delete(self.keys["status"])
                    await client.aclose()
                except (RedisError, OSError):
                    pass
        self._client = self._reader = self._script = None
        try:
            await anyio.to_thread.run_sync(self.store.save, msgspec.structs.replace(self.pos))
        except duckdb.Error as exc:
            self.log.warning("replication_position_not_saved", error=f"{type(exc).__name__}: {exc}")
        await anyio.to_thread.run_sync(self.store.close)

    async def run(self) -> None:
        while not self._stopping:
            try:
                if self.pos.mode == "lead":
                    began = time.monotonic()
                    more = await self._publish_once()
                    if not more:  # one look every interval, however long the last one took
                        await anyio.sleep(max(0.0, self.interval - (time.monotonic() - began)))
                else:
                    await self._follow_once()
                if self._last_error is not None:
                    self.log.info("replication_redis_back")
                    self._last_error = None
            except (RedisError, OSError, TimeoutError) as exc:
                if self._stopping:
                    return
                error = f"{type(exc).__name__}: {exc}"
                if error != self._last_error:
                    self.log.warning("replication_redis_error", error=error, mode=self.pos.mode)
                self._last_error = error
                await anyio.sleep(min(1.0, self.interval * 10))
            except Exception as exc:  # a bug must not stop the kernel; it is logged and retried
                if self._stopping:
                    return
                self.log.error("replication_failed", error=f"{type(exc).__name__}: {exc}", mode=self.pos.mode)
                await anyio.sleep(1.0)

    # -- leader -------------------------------------------------------------------------------------

    async def _append(self, fields: dict[str, Any], *, expect_last: str = "") -> tuple[int, str]:
        assert self._client is not None and self.my_token is not None
        args: list[Any] = [str(self.my_token), self.maxlen, expect_last]
        for key, value in fields.items():
            args += [key, value]
        if self._script is None:
            self._script = self._client.register_script(_APPEND)  # EVALSHA, reloaded after a Redis restart
        reply = await self._script(keys=[self.keys["token"], self.keys["stream"], self.keys["counter"]], args=args)
        return int(reply[0]), str(reply[1])

    def _fields(self, kind: str, batch: Batch) -> dict[str, Any]:
        return {
            "kind": kind, "token": self.my_token, "instance": self.instance_id,
            "after_seq": batch.after_seq, "last_seq": batch.last_seq, "after_tx": batch.after_tx,
            "last_tx": batch.last_tx, "commit_ms": batch.commit_ms,
            "data": msgspec.json.encode(batch.rows).decode() if kind == "batch" else "",
        }

    async def _publish_once(self) -> bool:
        """Append the rows committed since the last append; True if more may be waiting."""
        async with self._lock:
            if self.pos.mode != "lead":
                return False
            batch = await anyio.to_thread.run_sync(self.store.read_new, self.pos.seq, self.pos.tx, self.batch)
            if batch.empty:
                self._behind = 0
                await self._check_successor()
                return False
            n, stream_id = await self._append(self._fields("batch", batch))
            if n <= 0:
                self._demote(f"append refused: the fencing token moved past {self.my_token}")
                return False
            self.pos.seq, self.pos.tx, self.pos.stream_id, self.pos.counter = batch.last_seq, batch.last_tx, stream_id, n
            if time.monotonic() - self._saved_at >= 1.0:
                # A stale saved position only makes this replica re-read its own entries (applied
                # idempotently) after a restart, so it is saved once a second, not per append.
                self._saved_at = time.monotonic()
                await anyio.to_thread.run_sync(self.store.save, msgspec.structs.replace(self.pos))
            self._delays.append(max(0.0, time.time() - batch.commit_ms / 1000))
            self._last_commit_ms = batch.commit_ms
            full = max(len(batch.rows["order_events"]), len(batch.rows["ledger_tx"])) >= self.batch
            return full

    async def _check_successor(self) -> None:
        """With nothing to publish, notice (twice a second) that another instance took over."""
        now = time.monotonic()
        if now - self._token_checked < 0.5 or self._client is None:
            return
        self._token_checked = now
        current = await self._client.get(self.keys["token"])
        if current is not None and current != str(self.my_token):
            self._demote(f"the fencing token moved past {self.my_token}")

    def _demote(self, reason: str) -> None:
        self.log.warning("replication_demoted", reason=reason, fence=self.my_token)
        self.pos.mode = "follow"
        self._saved_at = 0.0
        self.my_token = None
        if self.on_demoted is not None:
            self.on_demoted()

    async def take_over(self, token: int) -> None:
        """HA takeover step: apply what the stream holds, append the tenure marker, then lead.

        Raises if the stream keeps moving (an append slipped in after the drain five times) or
        Redis cannot be reached: the takeover fails and the lease is given up."""
        async with self._lock:
            if self.pos.mode == "rebuild":
                await self._defer_to_a_replica()
            self.my_token = token
            for _ in range(5):
                last = await self._drain()
                republish = last != self.pos.stream_id or self.pos.mode == "rebuild"
                seq, tx = (0, 0) if republish else (self.pos.seq, self.pos.tx)
                marker = Batch(after_seq=seq, last_seq=seq, after_tx=tx, last_tx=tx,
                               commit_ms=int(time.time() * 1000), rows={})
                n, stream_id = await self._append(self._fields("tenure", marker), expect_last=last)
                if n == 0:
                    raise RuntimeError(f"replication: the fencing token moved past {token} during the takeover")
                if n < 0:
                    continue
                if republish and self.pos.mode != "rebuild" and self.pos.stream_id != "0-0":
                    self.log.warning("replication_republish", reason="the stream no longer holds this replica's "
                                     "last entry (Redis lost it): the whole database is published again")
                was_rebuilding = self.pos.mode == "rebuild"
                self.pos = Position(stream_id=stream_id, seq=seq, tx=tx, token=token, counter=n, mode="lead")
                await anyio.to_thread.run_sync(self.store.save, msgspec.structs.replace(self.pos))
                local = await anyio.to_thread.run_sync(self.store.local_max)
                self.log.info("replication_leading", fence=token, after_seq=seq, after_tx=tx,
                              local_seq=local[0], local_tx=local[1], rebuilt=was_rebuilding)
                self._behind = 0
                return
            raise RuntimeError("replication: the stream kept moving during the takeover")

    async def _defer_to_a_replica(self) -> None:
        """A replica that lost its history should not lead while another one has it: leading, it
        would start a fresh history that every standby then follows (their copies wiped). If an
        instance reported following in the last 3 s, raise once (the takeover fails, the lease is
        released and that instance acquires it); at most once a minute, so a replica that cannot
        lead after all never keeps this one out."""
        assert self._client is not None
        now = time.monotonic()
        if now - self._deferred_at < 60.0:
            return
        pattern = self.keys["status"].rsplit(":", 1)[0] + ":*"
        fresh_ms = time.time() * 1000 - 3000
        async for key in self._client.scan_iter(match=pattern, count=100):
            if key == self.keys["status"]:
                continue
            mode, updated = await self._client.hmget(key, ["mode", "updated_ms"])
            if mode == "follow" and updated and int(updated) >= fresh_ms:
                self._deferred_at = now
                other = key.rsplit(":", 1)[1]
                self.log.warning("replication_leadership_deferred", to=other,
                                 reason="this replica lost its history; another one has it")
                raise RuntimeError(f"replication: this replica is rebuilding; {other} has the history and should lead")

    async def _drain(self) -> str:
        """Apply every entry after this replica's position; returns the stream's last id."""
        assert self._client is not None
        while True:
            entries: Any = await self._client.xrange(self.keys["stream"], min=f"({self.pos.stream_id}", count=self.batch)
            if not entries:
                break
            for stream_id, fields in entries:
                await self._handle(_Entry.parse(stream_id, fields))
        last: Any = await self._client.xrevrange(self.keys["stream"], count=1)
        return str(last[0][0]) if last else "0-0"

    # -- standby ------------------------------------------------------------------------------------

    async def _follow_once(self) -> None:
        assert self._reader is not None
        block = max(1, int(self.interval * 4000))
        reply: Any = await self._reader.xread({self.keys["stream"]: self.pos.stream_id}, count=self.batch, block=block)
        if not reply:
            self._behind = 0
            return
        async with self._lock:
            if self.pos.mode == "lead":
                return  # became leader meanwhile: the takeover drained from the position itself
            for _stream, entries in reply:
                for stream_id, fields in entries:
                    if _id_key(stream_id) <= _id_key(self.pos.stream_id):
                        continue
                    await self._handle(_Entry.parse(stream_id, fields))
            self._behind = max(0, self._stream_counter - self.pos.counter)

    async def _handle(self, entry: _Entry) -> None:
        """Apply one entry (or skip it), moving the stored position in the same transaction."""
        pos = msgspec.structs.replace(self.pos, stream_id=entry.id, counter=entry.n)
        if entry.token < self.pos.token:
            self.ignored_entries += 1
            self.log.warning("replication_stale_entry_ignored", entry_fence=entry.token, fence=self.pos.token,
                             instance_of_entry=entry.instance)
            await anyio.to_thread.run_sync(self.store.move, pos)
        elif entry.kind == "tenure":
            pos.token = entry.token
            if self.pos.mode == "rebuild":
                if entry.after_seq == 0 and entry.after_tx == 0:
                    pos.mode, pos.reason, pos.seq, pos.tx = "follow", None, 0, 0
                    self.log.info("replication_rebuilt_from_stream", fence=entry.token)
                await anyio.to_thread.run_sync(self.store.move, pos)
            elif entry.after_seq > self.pos.seq or entry.after_tx > self.pos.tx:
                await self._rebuild(pos, f"tenure {entry.token} starts after seq {entry.after_seq} / tx {entry.after_tx}, "
                                         f"this replica has seq {self.pos.seq} / tx {self.pos.tx}")
                return
            else:
                pos.seq, pos.tx = entry.after_seq, entry.after_tx
                removed = await anyio.to_thread.run_sync(self.store.truncate_after, entry.after_seq, entry.after_tx, pos)
                if removed:
                    self.log.warning("replication_tail_dropped", rows=removed, fence=entry.token, after_seq=entry.after_seq,
                                     after_tx=entry.after_tx, reason="a deposed leader's unpublished rows; the new leader "
                                     "reconciled them from the exchange")
        elif self.pos.mode == "rebuild":
            await anyio.to_thread.run_sync(self.store.move, pos)
        elif entry.token != self.pos.token or entry.after_seq > self.pos.seq or entry.after_tx > self.pos.tx:
            await self._rebuild(pos, f"entry {entry.id} (token {entry.token}, after seq {entry.after_seq} / tx "
                                     f"{entry.after_tx}) does not continue this replica (token {self.pos.token}, seq "
                                     f"{self.pos.seq} / tx {self.pos.tx}): entries were trimmed or lost")
            return
        else:
            rows = msgspec.json.decode(entry.data) if entry.data else {}
            pos.seq, pos.tx = max(self.pos.seq, entry.last_seq), max(self.pos.tx, entry.last_tx)
            await anyio.to_thread.run_sync(self.store.apply, rows, pos)
            self.applied_entries += 1
            if entry.commit_ms >= self._started_ms:  # a backlog from before this start is catch-up, not lag
                self._delays.append(max(0.0, time.time() - entry.commit_ms / 1000))
            self._last_commit_ms = entry.commit_ms
        self.pos = pos
        self.version += 1

    async def _rebuild(self, pos: Position, reason: str) -> None:
        pos.mode, pos.reason, pos.seq, pos.tx = "rebuild", reason, 0, 0
        await anyio.to_thread.run_sync(self.store.wipe, pos)
        self.pos = pos
        self.version += 1
        self.log.error("replication_rebuild", reason=reason,
                       action="replicated tables wiped; rebuilt by reconciliation when this instance leads")
        if self._alert is not None:
            try:
                result = self._alert("error", "replication history lost: standby wiped, rebuilds on takeover",
                                     {"reason": reason, "instance": self.instance_id})
                if result is not None:
                    await result
            except Exception as exc:  # an alert must never stop replication
                self.log.error("replication_alert_failed", error=f"{type(exc).__name__}: {exc}")

    # -- lag ----------------------------------------------------------------------------------------

    def lag(self) -> dict[str, Any]:
        """Where this replica stands and how far behind: ``seconds`` (0 when caught up, else the
        age of the last applied commit), ``entries`` not applied yet, and ``p50`` / ``max`` of the
        last 1000 commit-to-apply (standby) / commit-to-publish (leader) delays, counting rows
        committed since this instance started (a backlog read at start-up is catch-up)."""
        behind = self._behind
        seconds = 0.0 if behind <= 0 else max(0.0, time.time() - self._last_commit_ms / 1000) if self._last_commit_ms else None
        delays = list(self._delays)
        return {
            "mode": self.pos.mode,
            "seconds": None if self.pos.mode == "rebuild" else seconds,
            "entries": behind,
            "seq": self.pos.seq,
            "tx": self.pos.tx,
            "token": self.pos.token,
            "p50": round(statistics.median(delays), 4) if delays else None,
            "max": round(max(delays), 4) if delays else None,
            "reason": self.pos.reason,
            "error": self._last_error,
        }

    async def _report_loop(self) -> None:
        while not self._stopping:
            await anyio.sleep(1.0)
            client = self._client
            if client is None:
                continue
            try:
                counter = await client.get(self.keys["counter"])
                self._stream_counter = int(counter or 0)
                if self.pos.mode != "lead":
                    self._behind = max(0, self._stream_counter - self.pos.counter)
                lag = self.lag()
                await client.hset(self.keys["status"], mapping={
                    k: "" if v is None else str(v) for k, v in {**lag, "updated_ms": int(time.time() * 1000)}.items()})
                await client.pexpire(self.keys["status"], 10_000)
            except (RedisError, OSError, TimeoutError):
                continue  # the main loop logs Redis trouble once


async def read_status(client: aioredis.Redis, prefix: str, instance_id: str) -> dict[str, Any] | None:
    """What an instance last reported about its replication (for ``hrkernel status``), or None."""
    keys = replication_keys(prefix, instance_id)
    raw: Any = await client.hgetall(keys["status"])
    length = await client.xlen(keys["stream"])
    if not raw:
        return None
    out: dict[str, Any] = {k: (v if v != "" else None) for k, v in raw.items()}
    for key in ("seconds", "p50", "max"):
        if out.get(key) is not None:
            out[key] = float(out[key])
    for key in ("entries", "seq", "tx", "token", "updated_ms"):
        if out.get(key) is not None:
            out[key] = int(out[key])
    out["stream_length"] = int(length)
    return out
