"""The journal: durable state changes, full history, duplicate protection, survives reopening;
group commit (concurrent orders share one transaction), and a disk that refuses writes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import anyio
import pytest

from hrkernel.orders.errors import JournalError, JournalWriteError
from hrkernel.orders.journal import OrderJournal, OrderRecord, OrderState
from hrkernel_chaos.readonly import ReadOnlyDir

pytestmark = pytest.mark.anyio


def _rec(coid: str = "hrabc", signal: str = "s1") -> OrderRecord:
    return OrderRecord(client_order_id=coid, signal_id=signal, exchange="nobitex", symbol="BTCIRT", base="BTC",
                       quote="IRT", side="buy", type="limit", amount=D("0.01"), price=D("100"), state=OrderState.PREPARED)


def _seqs(path: Path) -> list[int]:
    con = sqlite3.connect(path)
    try:
        return [r[0] for r in con.execute("SELECT seq FROM order_events ORDER BY seq")]
    finally:
        con.close()


async def test_state_changes_build_a_full_history_that_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = OrderJournal(path)
    await journal.create(_rec())
    await journal.record("hrabc", OrderState.SUBMITTING, attempts=1, fencing_token=7)
    await journal.record("hrabc", OrderState.UNKNOWN, reason="timeout")
    await journal.record("hrabc", OrderState.ACKED, exchange_order_id="42")
    await journal.record("hrabc", OrderState.FILLED, filled_amount=D("0.01"))
    await journal.record("hrabc", OrderState.VERIFIED)
    journal.close()

    again = OrderJournal(path)
    rec = again.get("hrabc")
    assert rec is not None and rec.state is OrderState.VERIFIED and rec.is_terminal
    assert rec.exchange_order_id == "42" and rec.attempts == 1 and rec.fencing_token == 7
    assert rec.filled_amount == D("0.01")
    history = again.history("hrabc")
    assert [e.state for e in history] == [OrderState.PREPARED, OrderState.SUBMITTING, OrderState.UNKNOWN,
                                          OrderState.ACKED, OrderState.FILLED, OrderState.VERIFIED]
    assert history[2].reason == "timeout" and history[1].fencing_token == 7
    assert all(a.at <= b.at for a, b in zip(history, history[1:], strict=False))
    await again.create(_rec("hrdef", "s2"))
    assert [r.client_order_id for r in again.open_orders()] == ["hrdef"]
    assert again.by_signal("s1") == rec and again.by_exchange_id("nobitex", "42") == rec
    assert again.counts_by_state() == {"VERIFIED": 1, "PREPARED": 1}
    assert [r.client_order_id for r in again.query(newest_first=True, limit=1)] == ["hrdef"]
    again.close()


async def test_the_same_signal_or_client_id_cannot_be_journaled_twice(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.sqlite")
    await journal.create(_rec())
    with pytest.raises(JournalError, match="already journaled"):
        await journal.create(_rec("other", "s1"))
    with pytest.raises(JournalError, match="already journaled"):
        await journal.create(_rec("hrabc", "s9"))
    with pytest.raises(JournalError, match="no order"):
        await journal.record("nope", OrderState.ACKED)
    assert len(journal.query()) == 1
    assert journal.failed is None  # a refused write is not a failed journal
    journal.close()


async def test_prepared_and_submitting_in_one_commit_keep_seq_gap_free_and_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = OrderJournal(path)
    assert journal.by_signal("s1") is None
    rec = await journal.create(_rec(), then=OrderState.SUBMITTING, attempts=1, fencing_token=7)
    assert (rec.state, rec.attempts, rec.fencing_token) == (OrderState.SUBMITTING, 1, 7)
    assert journal.by_signal("s1") == rec == journal.get("hrabc")
    with pytest.raises(JournalError, match="already journaled"):
        await journal.create(_rec("hrxyz", "s1"), then=OrderState.SUBMITTING, attempts=1)
    assert journal.get("hrxyz") is None
    await journal.record("hrabc", OrderState.ACKED, exchange_order_id="42")
    await journal.create(_rec("hrdef", "s2"))
    journal.close()

    again = OrderJournal(path)
    history = again.history("hrabc")
    assert [(e.state, e.attempt, e.fencing_token) for e in history] == [
        (OrderState.PREPARED, 0, None), (OrderState.SUBMITTING, 1, 7), (OrderState.ACKED, 1, 7)]
    assert history[0].at == history[1].at  # one commit
    # The failed duplicate took no sequence number: seq stays 1, 2, 3, ... with no gap.
    assert _seqs(path) == [1, 2, 3, 4]
    assert again.get("hrabc").state is OrderState.ACKED  # type: ignore[union-attr]
    assert [r.client_order_id for r in again.open_orders()] == ["hrabc", "hrdef"]
    again.close()


async def test_concurrent_orders_share_one_commit_and_a_refused_one_does_not_fail_the_batch(tmp_path: Path) -> None:
    """16 orders journaled at once cost at most 3 transactions (fsyncs per order <= 0.2), not 16;
    a duplicate among them is refused alone while the rest of its batch commits, seq gap-free."""
    path = tmp_path / "j.sqlite"
    journal = OrderJournal(path)
    results: dict[str, object] = {}

    async def one(i: int, signal: str) -> None:
        try:
            results[f"hr{i:03d}"] = await journal.create(_rec(f"hr{i:03d}", signal), then=OrderState.SUBMITTING,
                                                         attempts=1)
        except JournalError as exc:
            results[f"hr{i:03d}"] = exc

    async with anyio.create_task_group() as tg:
        for i in range(16):
            tg.start_soon(one, i, "dup" if i in (3, 9) else f"s{i}")
    stats = journal.stats
    assert stats["writes"] == 16 and stats["transactions"] <= 3, stats
    refused = [k for k, v in results.items() if isinstance(v, JournalError)]
    assert len(refused) == 1 and refused[0] in ("hr003", "hr009")
    assert len(journal.open_orders()) == 15
    journal.close()
    assert _seqs(path) == list(range(1, 31))  # 15 orders x 2 events, no hole left by the refused one
    assert len(OrderJournal.reader(path).query()) == 15


async def test_changes_of_one_order_in_one_batch_apply_in_order(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.sqlite")
    await journal.create(_rec())
    async with anyio.create_task_group() as tg:
        tg.start_soon(journal.record, "hrabc", OrderState.SUBMITTING)
        tg.start_soon(journal.record, "hrabc", OrderState.ACKED)
    assert [e.state for e in journal.history("hrabc")] == [OrderState.PREPARED, OrderState.SUBMITTING,
                                                           OrderState.ACKED]
    assert journal.get("hrabc").state is OrderState.ACKED  # type: ignore[union-attr]
    journal.close()


async def test_a_read_only_data_dir_fails_writes_reports_once_and_leaves_nothing_half_written(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    journal = OrderJournal(data / "j.sqlite")
    assert journal.by_signal("s1") is None  # this thread's reader has read the journal once
    await journal.create(_rec())  # ... and the WAL moved on since: its next read moves its read mark
    failures: list[JournalWriteError] = []
    recoveries: list[bool] = []
    journal.on_failure = failures.append
    journal.on_recovered = lambda: recoveries.append(True)
    os.sync()  # with a mapped -shm WAL index, its pages are clean now: a store into them would fault
    ro = ReadOnlyDir(data)
    if ro.make_readonly() != "immutable attribute":
        ro.restore()
        pytest.skip("needs root and a file system with the immutable attribute")
    try:
        with pytest.raises(JournalWriteError, match="nothing of that batch was written"):
            await journal.create(_rec("hrdef", "s2"), then=OrderState.SUBMITTING, attempts=1)
        with pytest.raises(JournalWriteError):
            await journal.record("hrabc", OrderState.SUBMITTING)
        with pytest.raises(JournalWriteError):
            await journal.ping()
        assert journal.get("hrabc").state is OrderState.PREPARED  # type: ignore[union-attr]  # from memory
        # Reads that move the read mark keep working: the WAL index is in heap memory
        # (unix-excl VFS), not a mapped -shm file a store into would SIGBUS on.
        assert journal.by_signal("s1").client_order_id == "hrabc"  # type: ignore[union-attr]
        assert [e.state for e in journal.history("hrabc")] == [OrderState.PREPARED]
    finally:
        ro.restore()
    assert len(failures) == 1 and journal.failed is not None and recoveries == []
    await journal.ping()  # the disk takes writes again
    assert recoveries == [True] and journal.failed is None
    journal.close()
    again = OrderJournal(data / "j.sqlite")
    assert [r.client_order_id for r in again.query()] == ["hrabc"]
    assert [e.state for e in again.history("hrabc")] == [OrderState.PREPARED]
    assert again.get("hrdef") is None and _seqs(data / "j.sqlite") == [1]
    again.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB ext4 file system on a loop device (needs root): a disk that really fills up."""
    image, mnt = tmp_path / "disk.img", tmp_path / "tiny"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(4 << 20)
    if os.geteuid() != 0 or subprocess.run(["mkfs.ext4", "-q", str(image)], capture_output=True).returncode != 0 \
            or subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small loop file system")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_a_full_disk_fails_the_whole_batch_and_leaves_nothing_half_written(tiny_disk: Path) -> None:
    path = tiny_disk / "j.sqlite"
    journal = OrderJournal(path)
    for i in range(3):
        await journal.create(_rec(f"hr{i}", f"s{i}"))
    with open(tiny_disk / "filler", "wb") as f:  # noqa: ASYNC230 - the test fills the disk on purpose
        try:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError:
            pass
    outcomes: list[object] = []

    async def one(i: int) -> None:
        try:
            outcomes.append(await journal.create(_rec(f"hrbig{i}", f"big{i}", ), reason="x" * 20_000))
        except JournalWriteError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(16):
            tg.start_soon(one, i)
    assert outcomes and all(isinstance(o, JournalWriteError) for o in outcomes), outcomes
    assert "disk is full" in str(outcomes[0]) or "No space" in str(outcomes[0])
    journal.close()
    (tiny_disk / "filler").unlink()
    again = OrderJournal(path)
    assert sorted(r.client_order_id for r in again.query()) == ["hr0", "hr1", "hr2"]
    assert _seqs(path) == [1, 2, 3]
    again.close()


async def test_checkpoints_run_beside_the_writer_and_keep_the_wal_bounded(tmp_path: Path) -> None:
    """SQLite's automatic checkpoint is off for the writer (no order's commit waits for one); the
    checkpointer thread must then keep the WAL from growing with every order."""
    path = tmp_path / "j.sqlite"
    journal = OrderJournal(path)
    try:
        for i in range(300):  # ~6 WAL pages each: ~7 MB of WAL if nothing checkpointed
            await journal.create(_rec(f"hr{i:04d}", f"s{i}"), then=OrderState.SUBMITTING)
        with anyio.fail_after(10):
            while journal.stats["checkpoints"] < 4:
                await anyio.sleep(0.01)
        assert journal.stats["transactions"] == 300
        assert Path(f"{path}-wal").stat().st_size < 3_000_000
    finally:
        journal.close()
    assert _seqs(path) == list(range(1, 601))
