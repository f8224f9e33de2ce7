from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from hrkernel.bus.events import SignalAction, SignalEvent
from hrkernel.signals.inbox import SignalInbox


def sig(n: int) -> SignalEvent:
    return SignalEvent(time=datetime(2026, 1, 1, tzinfo=UTC), signal_id=f"s{n}", source="tv", exchange="nobitex",
                       symbol="BTCIRT", action=SignalAction.BUY)


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_concurrent_accepts_share_fsyncs_and_all_are_durable(tmp_path: Path) -> None:
    inbox = SignalInbox(tmp_path / "inbox.jsonl")
    inbox.open()
    results: list[bool] = []

    async def accept(n: int) -> None:
        results.append(await inbox.accept(sig(n)))

    async with anyio.create_task_group() as tg:
        for n in range(200):
            tg.start_soon(accept, n)
    assert results.count(True) == 200
    assert inbox.batches < 200, "concurrent appends must be group-committed"
    inbox.close()
    again = SignalInbox(tmp_path / "inbox.jsonl")
    again.open()
    assert len(again.pending) == 200
    again.close()


@pytest.mark.anyio
async def test_retention_forgets_processed_ids_only(tmp_path: Path) -> None:
    clock = Clock()
    inbox = SignalInbox(tmp_path / "inbox.jsonl", retention=100.0, clock=clock)
    inbox.open()
    await inbox.accept(sig(1))
    await inbox.accept(sig(2))
    await inbox.done("s1")
    clock.now += 101
    assert inbox.prune() == 1  # s1 processed and old: forgotten; s2 still pending: kept
    assert set(inbox.seen) == {"s2"}
    inbox.close()
    reopened = SignalInbox(tmp_path / "inbox.jsonl", retention=100.0, clock=clock)
    reopened.open()  # compaction drops s1 from the file as well
    assert set(reopened.seen) == {"s2"} and set(reopened.pending) == {"s2"}
    assert "s1" not in (tmp_path / "inbox.jsonl").read_text()
    reopened.close()


@pytest.mark.anyio
async def test_a_failed_write_fails_every_append_of_its_batch(tmp_path: Path) -> None:
    inbox = SignalInbox(tmp_path / "inbox.jsonl")
    inbox.open()
    inbox.close()  # the fd is gone: the next write fails
    inbox._fd = 10_000  # an invalid descriptor
    outcomes: list[str] = []

    async def accept(n: int) -> None:
        try:
            await inbox.accept(sig(n))
            outcomes.append("ok")
        except OSError:
            outcomes.append("error")

    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(accept, n)
    assert outcomes == ["error"] * 5
    assert inbox.pending == {} and inbox.seen == {}  # a failed accept is not remembered as seen
