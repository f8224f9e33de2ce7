from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from hrkernel.bus.events import BookEvent, GapEvent, TickerEvent
from hrkernel.bus.memory import MemoryBus
from hrkernel.types import HealthStatus
from hrkernel_datasources.config import ReplayConfig
from hrkernel_datasources.replay import ReplaySource

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "datasources"
PUBLIC = {"hrkernel", "hrkernel.spec", "hrkernel.types", "hrkernel.errors", "hrkernel.exchange",
          "hrkernel.resilience", "hrkernel.bus.events"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_plugin_imports_only_the_kernels_public_api() -> None:
    for path in sorted(PLUGIN_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            for name in names:
                if name.split(".")[0] == "hrkernel":
                    assert name in PUBLIC, f"{path.name} imports {name}"
                assert name.split(".")[0] not in ("core", "plugins"), f"{path.name} imports {name}"


def test_malformed_records_are_counted_logged_once_per_kind_and_dropped(recording, book) -> None:  # type: ignore[no-untyped-def]
    path = recording([
        book("BTCIRT", "100", "101"),
        '{"kind": "book", "symbol": "BTCIRT"}',
        '{"kind": "book", "symbol": "BTCIRT", "bids": "x"}',
        '{"kind": "trade", "price": "abc"}',
        "not json at all",
        '{"kind": "ticker", "time": "2026-01-01T00:00:00Z", "source": "r", "symbol": "BTCIRT", "last": "5"}',
    ])
    source = ReplaySource("r", ReplayConfig(path=str(path)))
    with capture_logs() as logs:
        records = source.records()
    assert [type(r).__name__ if r else None for r in records] == ["BookEvent", None, None, None, None, "TickerEvent"]
    assert source.counts["malformed"] == 4
    assert sorted(e["kind"] for e in logs if e["event"] == "datasource_malformed_message") == ["book", "not_json", "trade"]


def test_csv_recordings_decode_to_typed_events(recording) -> None:  # type: ignore[no-untyped-def]
    path = recording([
        "kind,time,symbol,last,best_bid,best_ask,price,amount,side,sequence",
        "ticker,2026-01-01T00:00:00Z,BTCIRT,100.5,100,101,,,,1",
        "trade,2026-01-01T00:00:01Z,BTCIRT,,,,100.7,0.25,buy,2",
        "trade,2026-01-01T00:00:02Z,BTCIRT,,,,oops,0.25,buy,3",
    ], name="feed.csv")
    source = ReplaySource("r", ReplayConfig(path=str(path)))
    records = source.records()
    assert isinstance(records[0], TickerEvent) and records[0].last == Decimal("100.5")
    assert records[1].price == Decimal("100.7")  # type: ignore[union-attr]
    assert records[2] is None and source.counts["malformed"] == 1


def test_crossed_books_and_sequence_gaps_emit_gap_events_and_resync(book) -> None:  # type: ignore[no-untyped-def]
    from hrkernel.bus.events import decode

    clock = Clock()
    source = ReplaySource("r", ReplayConfig(path="unused"), clock=clock)
    seen: list[object] = []
    source.listeners.append(seen.append)
    assert source.ingest(decode(book("BTCIRT", "100", "101", seq=1).encode()))
    assert not source.ingest(decode(book("BTCIRT", "102", "101", seq=2).encode()))  # crossed: dropped
    assert source.latest_book("BTCIRT")[0].bids[0].price == Decimal("100")  # type: ignore[index]
    # The resync dropped the sequence baseline: the next snapshot starts a new one...
    assert source.ingest(decode(book("BTCIRT", "100", "101", seq=3).encode()))
    assert source.counts["gaps"] == 0
    assert source.ingest(decode(book("BTCIRT", "100", "101", seq=5).encode()))  # ...and 3 -> 5 is a gap
    gaps = [e for e in seen if isinstance(e, GapEvent)]
    assert [g.reason.split(":")[0] for g in gaps] == ["crossed book", "sequence gap"]
    assert source.counts["crossed"] == 1 and source.counts["gaps"] == 1 and source.counts["resyncs"] == 2


@pytest.mark.anyio
async def test_cache_exposes_age_and_the_freshness_check_follows_max_age(book) -> None:  # type: ignore[no-untyped-def]
    from hrkernel.bus.events import decode

    clock = Clock()
    source = ReplaySource("r", ReplayConfig(path="unused", max_age=5.0), clock=clock)  # type: ignore[arg-type]
    assert (await source.check()).status == HealthStatus.UNHEALTHY
    source.ingest(decode(book("BTCIRT", "100", "101").encode()))
    clock.now += 4.0
    event, age = source.latest_book("BTCIRT")  # type: ignore[misc]
    assert age == 4.0 and isinstance(event, BookEvent)
    assert (await source.check()).status == HealthStatus.HEALTHY
    clock.now += 1.5
    result = await source.check()
    assert result.status == HealthStatus.UNHEALTHY and "stale" in result.detail


@pytest.mark.anyio
async def test_replay_publishes_on_the_bus_when_one_is_running(recording, book) -> None:  # type: ignore[no-untyped-def]
    bus = MemoryBus()
    sub = bus.subscribe("marketdata", "test")

    class Ctx:
        def component(self, name: str) -> object:
            assert name == "bus"
            return bus

    path = recording([book("BTCIRT", "100", "101"), book("BTCIRT", "99", "100")])
    source = ReplaySource("r", ReplayConfig(path=str(path), interval=0.01, loop=False), context=Ctx())  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        await source.start(tg)
        with anyio.fail_after(3):
            first = await sub.__anext__()
            second = await sub.__anext__()
        await source.stop()
    assert [d.event.bids[0].price for d in (first, second)] == [Decimal("100"), Decimal("99")]  # type: ignore[attr-defined]
