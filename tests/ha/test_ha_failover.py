"""Failover groups: active/passive with failback, active/active balancing, N+1 spares, history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hrkernel.ha.errors import GroupConfigError, NoHealthyMemberError, UnknownGroupError
from hrkernel.ha.failover import FailoverManager, SwitchEvent
from hrkernel.ha.failover_time import FailoverRecord, FailoverTimeMonitor, percentile
from hrkernel.ha.store import HAStore
from hrkernel.types import HealthResult, HealthStatus

pytestmark = pytest.mark.anyio


class Feed:
    """A data source whose health the test switches; ``check`` is what the manager probes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True
        self.calls = 0

    async def check(self) -> HealthResult:
        if self.up:
            return HealthResult(status=HealthStatus.HEALTHY)
        return HealthResult(status=HealthStatus.UNHEALTHY, detail=f"{self.name} stale")

    async def fetch(self) -> str:
        self.calls += 1
        if not self.up:
            raise ConnectionError(f"{self.name} down")
        return self.name


async def probe(manager: FailoverManager, group: str, times: int, clock: Any = None, step: float = 0.5) -> None:
    for _ in range(times):
        await manager.probe_group(group)
        if clock is not None:
            clock.advance(step)


def make(fake_clock: Any, store: HAStore | None = None) -> tuple[FailoverManager, list[SwitchEvent]]:
    manager = FailoverManager(monitor=FailoverTimeMonitor(target=10.0, store=store), clock=fake_clock, wall=lambda: 1.7e9)
    events: list[SwitchEvent] = []
    manager.add_listener(events.append)
    return manager, events


async def test_active_passive_fails_over_and_back_with_durations_in_duckdb(fake_clock: Any, tmp_path: Path) -> None:
    store = HAStore(tmp_path / "ha.duckdb").open()
    manager, events = make(fake_clock, store)
    a, b = Feed("a"), Feed("b")
    manager.configure_group("feeds", "active_passive", fail_after=2, recover_after=3)
    manager.register_component("datasource:a", a, "feeds", is_primary=True)
    manager.register_component("datasource:b", b, "feeds")
    assert await manager.call("feeds", Feed.fetch) == "a"

    a.up = False
    await probe(manager, "feeds", 1, fake_clock)
    assert manager.active("feeds") is a  # one failed probe is not enough
    await probe(manager, "feeds", 1, fake_clock)
    assert manager.active("feeds") is b
    assert await manager.call("feeds", Feed.fetch) == "b"

    a.up = True
    await probe(manager, "feeds", 2, fake_clock)
    assert manager.active("feeds") is b  # not yet recover_after good probes
    await probe(manager, "feeds", 1, fake_clock)
    assert manager.active("feeds") is a

    assert [(e.from_member, e.to_member) for e in events] == [("datasource:a", "datasource:b"), ("datasource:b", "datasource:a")]
    assert "a stale" in events[0].cause and events[1].cause.startswith("failback")
    assert events[0].duration == pytest.approx(0.5) and events[1].duration == pytest.approx(1.0)
    rows = store.failover_rows()
    assert [(r["group"], r["from"], r["to"]) for r in rows] == [
        ("feeds", "datasource:a", "datasource:b"), ("feeds", "datasource:b", "datasource:a")
    ]
    assert rows[0]["duration_s"] == pytest.approx(0.5) and rows[0]["kind"] == "group"
    store.close()


async def test_active_passive_without_failback_stays_on_the_backup(fake_clock: Any) -> None:
    manager, events = make(fake_clock)
    a, b = Feed("a"), Feed("b")
    manager.configure_group("feeds", "active_passive", auto_failback=False, fail_after=1, recover_after=1)
    manager.register_component("a", a, "feeds", is_primary=True)
    manager.register_component("b", b, "feeds")
    a.up = False
    await probe(manager, "feeds", 1)
    a.up = True
    await probe(manager, "feeds", 3)
    assert manager.active("feeds") is b and len(events) == 1


async def test_failures_reported_by_calls_trigger_failover(fake_clock: Any) -> None:
    manager, events = make(fake_clock)
    a, b = Feed("a"), Feed("b")
    manager.register_component("a", a, "feeds", is_primary=True, failover_mode="active_passive")
    manager.register_component("b", b, "feeds")
    a.up = False
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await manager.call("feeds", Feed.fetch)
    assert await manager.call("feeds", Feed.fetch) == "b"
    assert events[0].cause.startswith("unhealthy: ConnectionError")


async def test_active_active_balances_over_healthy_members_only(fake_clock: Any) -> None:
    manager, events = make(fake_clock)
    feeds = [Feed(n) for n in "abc"]
    manager.configure_group("pool", "active_active", fail_after=1, recover_after=1)
    for feed in feeds:
        manager.register_component(feed.name, feed, "pool")
    served = [await manager.call("pool", Feed.fetch) for _ in range(9)]
    assert sorted(served) == sorted("abc" * 3)
    feeds[1].up = False
    await probe(manager, "pool", 1)
    served = [await manager.call("pool", Feed.fetch) for _ in range(6)]
    assert sorted(served) == sorted("acacac")
    feeds[1].up = True
    await probe(manager, "pool", 1)
    served = [await manager.call("pool", Feed.fetch) for _ in range(3)]
    assert sorted(served) == ["a", "b", "c"]
    assert [(e.from_member, e.to_member) for e in events] == [("b", None), (None, "b")]
    for feed in feeds:
        feed.up = False
    await probe(manager, "pool", 1)
    with pytest.raises(NoHealthyMemberError, match="pool"):
        manager.active("pool")


async def test_n_plus_1_spare_replaces_any_failed_member_and_returns(fake_clock: Any) -> None:
    manager, events = make(fake_clock)
    a, b, spare = Feed("a"), Feed("b"), Feed("spare")
    manager.configure_group("venues", "n_plus_1", fail_after=1, recover_after=1)
    manager.register_component("a", a, "venues", is_primary=True)
    manager.register_component("b", b, "venues", is_primary=True)
    manager.register_component("spare", spare, "venues")
    assert sorted({await manager.call("venues", Feed.fetch) for _ in range(4)}) == ["a", "b"]
    b.up = False
    await probe(manager, "venues", 1)
    assert manager.status()["venues"]["serving"] == ["a", "spare"]
    assert sorted({await manager.call("venues", Feed.fetch) for _ in range(4)}) == ["a", "spare"]
    b.up = True
    await probe(manager, "venues", 1)
    assert manager.status()["venues"]["serving"] == ["a", "b"]
    assert [(e.from_member, e.to_member) for e in events] == [("b", "spare"), ("spare", "b")]


async def test_manual_failover_and_clear_errors(fake_clock: Any) -> None:
    manager, events = make(fake_clock)
    manager.register_component("a", Feed("a"), "feeds", is_primary=True, failover_mode="active_passive")
    manager.register_component("b", Feed("b"), "feeds")
    event = await manager.failover("feeds", cause="manual: operator")
    assert (event.from_member, event.to_member, event.cause) == ("a", "b", "manual: operator")
    assert manager.active_id("feeds") == "b"
    await probe(manager, "feeds", 3)
    assert manager.active_id("feeds") == "b"  # a healthy primary does not undo a manual failover
    with pytest.raises(UnknownGroupError, match="no failover group 'nope'"):
        await manager.failover("nope")
    with pytest.raises(GroupConfigError, match="no member 'zz'"):
        await manager.failover("feeds", to="zz")
    with pytest.raises(GroupConfigError, match="is active_passive, not active_active"):
        manager.register_component("c", Feed("c"), "feeds", failover_mode="active_active")


async def test_failover_time_stats_and_slow_alert() -> None:
    monitor = FailoverTimeMonitor(target=2.0, window=5)
    slow: list[tuple[FailoverRecord, float]] = []
    monitor.add_slow_listener(lambda record, target: slow.append((record, target)))
    for duration in (0.5, 1.0, 1.5, 3.0, 1.0, 0.8):
        await monitor.record(FailoverRecord(kind="leadership", cause="lease acquired", at=0.0, duration=duration))
    stats = monitor.stats("leadership")
    assert stats["count"] == 5  # window
    assert stats["last"] == 0.8 and stats["max"] == 3.0
    assert stats["mean"] == pytest.approx((1.0 + 1.5 + 3.0 + 1.0 + 0.8) / 5)
    assert stats["p95"] == 3.0
    assert [r.duration for r, _ in slow] == [3.0] and slow[0][1] == 2.0
    assert monitor.stats("group")["count"] == 0
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50) == 5
