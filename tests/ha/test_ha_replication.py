"""Hot-standby replication on a real (private) Redis: replicas of the journal (SQLite) + ledger (DuckDB).

Each "instance" here is a journal file and a DuckDB file with a real OrderJournal and Ledger and a Replicator; the
lease is played by setting ``<prefix>:token`` (what RedisLease's INCR does) before ``take_over``.
Process-level runs (two `hrkernel run`s, SIGKILL) are in test_ha_replication_processes.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import duckdb
import pytest
import redis.asyncio as aioredis

from hrkernel.ha.replica_db import JOURNAL_TABLES, TABLES
from hrkernel.ha.replication import Replicator, read_status
from hrkernel.ledger import Ledger
from hrkernel.orders.journal import OrderJournal, OrderRecord, OrderState

pytestmark = pytest.mark.anyio

PREFIX = "rp"


class Instance:
    """One replica: its database, journal, ledger and replicator."""

    def __init__(self, name: str, path: Path, url: str, **options: Any) -> None:
        self.name = name
        self.con = duckdb.connect(str(path))
        self.jpath = path.with_suffix(".journal.sqlite")
        self.journal = OrderJournal(self.jpath)
        self.ledger = Ledger(self.con)
        settings: dict[str, Any] = {"interval": 0.02, "maxlen": 100_000, "batch": 50}
        settings.update(options)
        self.rep = Replicator(self.con, self.jpath, redis_url=url, key_prefix=PREFIX, instance_id=name, **settings)
        self.demoted = 0
        self.rep.on_demoted = self._demoted

    def _demoted(self) -> None:
        self.demoted += 1

    def fresh(self) -> None:
        """What the orders component does on takeover: journal and ledger rebuilt from the rows."""
        self.journal.close()
        self.journal = OrderJournal(self.jpath)
        self.ledger = Ledger(self.con)

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        if table in JOURNAL_TABLES:
            cols = ", ".join(JOURNAL_TABLES[table])
            con = sqlite3.connect(self.jpath)
            try:
                return con.execute(f"SELECT {cols} FROM {table} ORDER BY {cols}").fetchall()
            finally:
                con.close()
        cols = ", ".join(c for c, _ in TABLES[table])
        return self.con.cursor().execute(f"SELECT {cols} FROM {table} ORDER BY ALL").fetchall()

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        return {t: self.rows(t) for t in [*JOURNAL_TABLES, *TABLES]}

    async def order(self, i: int, *, fills: int = 1) -> None:
        """Journal an order through to VERIFIED and post its fills (like the pipeline does)."""
        coid = f"hr{self.name}{i:05d}"
        await self.journal.create(OrderRecord(
            client_order_id=coid, signal_id=f"sig-{self.name}-{i}", exchange="nobitex", symbol="BTCUSDT", base="BTC",
            quote="USDT", side="buy", type="market", amount=Decimal("0.001"), price=None, state=OrderState.PREPARED))
        await self.journal.record(coid, OrderState.SUBMITTING, attempts=1, fencing_token=self.rep.my_token)
        await self.journal.record(coid, OrderState.ACKED, exchange_order_id=f"x{self.name}{i}")
        for f in range(fills):
            self.ledger.post_many([_fill_tx(f"t-{self.name}-{i}-{f}", coid)])
        await self.journal.record(coid, OrderState.FILLED, filled_amount=Decimal("0.001"))
        await self.journal.record(coid, OrderState.VERIFIED)


def _fill_tx(trade_id: str, coid: str) -> Any:
    from hrkernel.exchange import Fill, Side
    from hrkernel.ledger import fill_transaction

    fill = Fill(trade_id=trade_id, order_id=coid, symbol="BTCUSDT", side=Side.BUY, amount=Decimal("0.0005"),
                price=Decimal("65000.123456789"), fee=Decimal("0.0000001"), fee_currency="BTC", time=datetime.now(UTC))
    return fill_transaction("nobitex", "BTC", "USDT", fill, order_ref=coid)


@pytest.fixture
async def cluster(redis_server: Any, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await cluster.add(name, **options)`` → a started Instance; ``cluster.elect(inst)``."""
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    await client.set(f"{PREFIX}:token", 0)
    made: list[Instance] = []

    class Cluster:
        redis = client
        url = redis_server.url
        server = redis_server
        instances = made

        async def add(self, name: str, **options: Any) -> Instance:
            inst = Instance(name, tmp_path / f"{name}.duckdb", redis_server.url, **options)
            await inst.rep.start(tg)
            made.append(inst)
            return inst

        async def elect(self, inst: Instance) -> int:
            token = int(await client.incr(f"{PREFIX}:token"))
            await inst.rep.take_over(token)
            inst.fresh()
            return token

    async with anyio.create_task_group() as tg:
        yield Cluster()
        for inst in made:
            await inst.rep.aclose()
        tg.cancel_scope.cancel()
    for inst in made:
        inst.journal.close()
        inst.con.close()
    await client.aclose()


async def until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await anyio.sleep(0.01)


async def test_standby_has_the_leaders_rows_with_the_same_seqs_and_balances(cluster: Any) -> None:
    a = await cluster.add("a")
    b = await cluster.add("b")
    await cluster.elect(a)
    a.ledger.deposit("nobitex", "USDT", Decimal("10000"), reason="opening balance")
    for i in range(120):  # more than one batch per table
        await a.order(i, fills=2)
    await until(lambda: b.rep.pos.seq == a.journal._seq and b.rep.pos.tx == a.ledger._next_id - 1)
    assert b.snapshot() == a.snapshot()
    assert Ledger(b.con).balances() == a.ledger.balances()
    assert OrderJournal.reader(b.jpath).history("hra00007") == a.journal.history("hra00007")
    lag = b.rep.lag()
    assert lag["mode"] == "follow" and lag["p50"] is not None and lag["max"] is not None
    assert a.rep.lag()["mode"] == "lead"


async def test_a_standby_started_late_catches_up_from_the_stream(cluster: Any) -> None:
    a = await cluster.add("a")
    await cluster.elect(a)
    for i in range(30):
        await a.order(i)
    await until(lambda: a.rep.pos.seq == a.journal._seq)
    late = await cluster.add("late")
    await until(lambda: late.rep.pos.seq == a.journal._seq and late.rep.pos.tx == a.rep.pos.tx)
    assert late.snapshot() == a.snapshot()


async def test_a_new_leader_continues_the_history_and_drops_the_deposed_leaders_unpublished_tail(cluster: Any) -> None:
    a = await cluster.add("a")
    b = await cluster.add("b")
    c = await cluster.add("c")
    await cluster.elect(a)
    for i in range(10):
        await a.order(i)
    await until(lambda: b.rep.pos.seq == a.journal._seq == c.rep.pos.seq)
    published = a.snapshot()
    await a.rep._lock.acquire()  # a's publisher stalls: it commits rows it does not publish
    await a.order(100)
    await a.order(101)
    await cluster.elect(b)  # b drains the stream and marks its tenure at what the stream held
    assert b.snapshot() == published
    await b.order(200)
    await b.order(201)
    await until(lambda: c.rep.pos.seq == b.journal._seq)
    assert c.snapshot() == b.snapshot()
    assert [r[0] for r in c.rows("orders")] == [*(f"hra{i:05d}" for i in range(10)), "hrb00200", "hrb00201"]
    # a's publisher resumes: its append is refused (b's token), it follows b and its tail goes
    a.rep._lock.release()
    await until(lambda: a.demoted == 1)
    await until(lambda: a.rep.pos.seq == b.journal._seq and a.rep.pos.token == b.rep.my_token)
    assert a.snapshot() == b.snapshot()


async def test_a_deposed_leaders_late_appends_are_refused_and_lower_tokens_ignored(cluster: Any) -> None:
    a = await cluster.add("a")
    b = await cluster.add("b")
    old = await cluster.elect(a)
    await a.order(1)
    await until(lambda: b.rep.pos.seq == a.journal._seq)
    new = await cluster.elect(b)
    assert new > old
    await a.order(2)  # a, paused past its lease, resumes and commits: its append is refused by the fence
    await until(lambda: a.demoted == 1)
    await b.order(3)
    # a forged late entry with the old token (as if appended without the fence) is ignored too
    await cluster.redis.xadd(f"{PREFIX}:replication", {
        "n": 999, "kind": "batch", "token": old, "instance": "a", "after_seq": 0, "last_seq": 99, "after_tx": 0,
        "last_tx": 0, "commit_ms": int(time.time() * 1000), "data": json.dumps({"order_events": [], "orders": []})})
    c = await cluster.add("c")
    await until(lambda: c.rep.pos.seq == b.journal._seq and c.rep.ignored_entries == 1)
    assert c.rep.pos.mode == "follow"
    assert c.snapshot() == b.snapshot()
    await until(lambda: a.rep.pos.seq == b.journal._seq)
    assert a.snapshot() == b.snapshot()
    assert "hra00002" not in [r[0] for r in b.rows("orders")]


async def test_a_trimmed_stream_makes_a_standby_rebuild_and_a_rebuilt_leader_starts_afresh(cluster: Any) -> None:
    a = await cluster.add("a", batch=5)
    await cluster.elect(a)
    for i in range(40):
        await a.order(i)
    await until(lambda: a.rep.pos.seq == a.journal._seq)
    await cluster.redis.xtrim(f"{PREFIX}:replication", maxlen=3)
    late = await cluster.add("late")
    await until(lambda: late.rep.pos.mode == "rebuild")
    assert late.snapshot() == {t: [] for t in [*JOURNAL_TABLES, *TABLES]}
    assert late.rep.lag()["seconds"] is None and "trimmed" in (late.rep.pos.reason or "")
    await a.order(41)  # still rebuilding: nothing applied
    await anyio.sleep(0.3)
    assert late.rows("orders") == []
    # the rebuilding standby is elected: it starts from nothing, and a follows it (wiped too)
    await cluster.elect(late)
    late.ledger.deposit("nobitex", "USDT", Decimal("5"), reason="opening balance (first reconciliation)")
    await late.order(1)
    await until(lambda: a.rep.pos.mode == "follow" and a.rep.pos.seq == late.journal._seq and a.rep.pos.tx == 2)
    assert a.snapshot() == late.snapshot()
    assert Ledger(a.con).balances() == late.ledger.balances()


async def test_after_redis_lost_the_stream_the_leader_republishes_and_standbys_rebuild_from_it(cluster: Any) -> None:
    a = await cluster.add("a")
    b = await cluster.add("b")
    await cluster.elect(a)
    for i in range(20):
        await a.order(i)
    await until(lambda: b.rep.pos.seq == a.journal._seq)
    await cluster.redis.delete(f"{PREFIX}:replication")  # like a restart without persistence
    await cluster.elect(a)  # same instance, next tenure
    await a.order(50)
    await until(lambda: b.rep.pos.seq == a.journal._seq)
    assert b.rep.pos.mode == "follow"
    assert b.snapshot() == a.snapshot()


async def test_every_instance_reports_its_lag_in_redis(cluster: Any) -> None:
    a = await cluster.add("a")
    b = await cluster.add("b")
    await cluster.elect(a)
    await a.order(1)
    await until(lambda: b.rep.pos.seq == a.journal._seq)
    await anyio.sleep(1.2)
    status = await read_status(cluster.redis, PREFIX, "b")
    assert status is not None
    assert status["mode"] == "follow" and status["entries"] == 0 and status["seconds"] == 0.0
    assert status["seq"] == a.journal._seq and status["stream_length"] >= 2
    assert (await read_status(cluster.redis, PREFIX, "a") or {})["mode"] == "lead"
    assert await read_status(cluster.redis, PREFIX, "nobody") is None


async def test_a_standbys_pipeline_reads_the_replicated_rows_and_cannot_write(cluster: Any) -> None:
    from hrkernel.orders.errors import NotLeaderError
    from hrkernel.orders.standby import StandbyJournal, StandbyLedger

    a = await cluster.add("a")
    b = await cluster.add("b")
    await cluster.elect(a)
    journal = StandbyJournal(lambda: OrderJournal.reader(b.jpath), lambda: b.rep.version)
    ledger = StandbyLedger(lambda: Ledger(b.con.cursor()), lambda: b.rep.version)
    await a.order(1)
    await until(lambda: b.rep.pos.seq == a.journal._seq)
    assert journal.get("hra00001").state is OrderState.VERIFIED
    assert ledger.balances() == a.ledger.balances()
    await a.order(2)  # the views follow what replication applies (no stale cache)
    await until(lambda: b.rep.pos.seq == a.journal._seq)
    assert [r.client_order_id for r in journal.query()] == ["hra00001", "hra00002"]
    assert ledger.balances() == a.ledger.balances()
    with pytest.raises(NotLeaderError):
        await journal.record("hra00001", OrderState.FAILED)
    with pytest.raises(NotLeaderError):
        ledger.deposit("nobitex", "USDT", Decimal("1"))
    assert b.snapshot() == a.snapshot()


async def test_after_a_redis_restart_without_persistence_the_standby_follows_again(cluster: Any) -> None:
    a = await cluster.add("a")
    b = await cluster.add("b")
    await cluster.elect(a)
    for i in range(5):
        await a.order(i)
    await until(lambda: b.rep.pos.seq == a.journal._seq)
    await anyio.to_thread.run_sync(cluster.server.restart)  # stream, token counter and all gone
    # RedisLease seeds a missing counter with the server's clock in ms: tokens keep rising
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        await cluster.redis.set(f"{PREFIX}:token", int(time.time() * 1000))
    except RedisConnectionError:  # this test's own connection died with the server: once more
        await cluster.redis.set(f"{PREFIX}:token", int(time.time() * 1000))
    await until(lambda: a.demoted == 1)  # its token is no longer the current one
    await cluster.elect(a)
    await a.order(10)
    await until(lambda: b.rep.pos.seq == a.journal._seq and b.rep.pos.mode == "follow", timeout=15)
    assert b.snapshot() == a.snapshot()


async def test_a_rebuilding_replica_defers_leadership_once_to_one_that_has_the_history(cluster: Any) -> None:
    a = await cluster.add("a", batch=5)
    b = await cluster.add("b")
    await cluster.elect(a)
    for i in range(10):
        await a.order(i)
    await until(lambda: b.rep.pos.seq == a.journal._seq)
    await cluster.redis.xtrim(f"{PREFIX}:replication", maxlen=2)
    c = await cluster.add("c")
    await until(lambda: c.rep.pos.mode == "rebuild")
    await anyio.sleep(1.2)  # b has reported that it follows
    with pytest.raises(RuntimeError, match="b has the history"):
        await cluster.elect(c)  # the takeover fails: the lease would go to b
    assert c.rep.pos.mode == "rebuild" and b.snapshot() == a.snapshot()
    await cluster.elect(c)  # once a minute at most: if it wins again, it leads
    assert c.rep.pos.mode == "lead"
    await until(lambda: b.rep.pos.seq == 0 and b.rep.pos.mode == "follow")
    assert b.snapshot() == c.snapshot() == {t: [] for t in [*JOURNAL_TABLES, *TABLES]}


def test_replication_ships_the_columns_the_journal_and_ledger_create_and_declares_none_of_its_own(
        tmp_path: Path) -> None:
    """The replicated columns are exactly those of a real journal file and a real ledger database
    (in their order): a column added to either is shipped without a second schema to keep up."""
    journal = OrderJournal(tmp_path / "j.sqlite")
    journal.close()
    con = sqlite3.connect(tmp_path / "j.sqlite")
    try:
        for table, cols in JOURNAL_TABLES.items():
            real = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
            assert [c.strip('"') for c in cols] == real
    finally:
        con.close()
    db = duckdb.connect(str(tmp_path / "l.duckdb"))
    try:
        Ledger(db)
        for table, cols in TABLES.items():
            real = db.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
                              "ORDER BY ordinal_position", [table]).fetchall()
            assert cols == [(n, t) for n, t in real]
    finally:
        db.close()
