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


# -- cluster mode (k of n) and balancing -------------------------------------------------------


def cluster(fake_clock: Any, n: int = 4, **options: Any) -> tuple[FailoverManager, list[SwitchEvent], dict[str, Feed]]:
    manager, events = make(fake_clock)
    manager.configure_group("feeds", "cluster", fail_after=2, recover_after=2, **options)
    feeds = {name: Feed(name) for name in "abcd"[:n]}
    for name, feed in feeds.items():
        manager.register_component(name, feed, "feeds")
    return manager, events, feeds


async def test_a_cluster_serves_k_of_n_replaces_failed_members_and_tracks_its_minimum(fake_clock: Any) -> None:
    manager, events, feeds = cluster(fake_clock, active=2, min_healthy=3)
    assert manager.status()["feeds"]["serving"] == ["a", "b"]
    assert {await manager.call("feeds", Feed.fetch) for _ in range(4)} == {"a", "b"}
    feeds["b"].up = False
    await probe(manager, "feeds", 2, fake_clock)
    assert manager.status()["feeds"]["serving"] == ["a", "c"]
    assert (events[-1].from_member, events[-1].to_member) == ("b", "c")
    assert manager.group_healthy("feeds")  # a, c, d healthy: 3 >= min_healthy
    feeds["c"].up = False
    await probe(manager, "feeds", 2, fake_clock)
    assert manager.status()["feeds"]["serving"] == ["a", "d"]
    assert not manager.group_healthy("feeds") and not manager.status()["feeds"]["group_healthy"]
    assert "group unhealthy: 2 of 4 members healthy, below min_healthy 3" in events[-1].cause
    assert {await manager.call("feeds", Feed.fetch) for _ in range(4)} == {"a", "d"}
    feeds["b"].up = True
    await probe(manager, "feeds", 2, fake_clock)
    assert manager.group_healthy("feeds") and events[-1].cause.startswith("group healthy again: 3")
    assert manager.status()["feeds"]["serving"] == ["a", "d"]  # k already serve: b stands by
    feeds["a"].up = feeds["d"].up = False
    await probe(manager, "feeds", 2, fake_clock)
    assert manager.status()["feeds"]["serving"] == ["b"]  # fewer healthy than k: all of them serve


async def test_members_join_and_leave_a_running_cluster_and_every_change_is_recorded(fake_clock: Any) -> None:
    import anyio

    manager, events, feeds = cluster(fake_clock, n=2, active=2, min_healthy=2)
    async with anyio.create_task_group() as tg:
        await manager.start(tg)
        c = Feed("c")
        await manager.add_member("feeds", "c", c)
        assert events[-1].cause == "c joined (in service once healthy)"
        assert not manager.status()["feeds"]["members"]["c"]["healthy"]  # unproven until probed
        await manager.remove_member("feeds", "a")
        assert manager.status()["feeds"]["serving"] == ["b"]
        assert (events[-2].from_member, events[-2].to_member) == ("a", None)
        assert "below min_healthy 2" in events[-1].cause
        await probe(manager, "feeds", 2, fake_clock)
        assert manager.status()["feeds"]["serving"] == ["b", "c"]
        assert (events[-2].from_member, events[-2].to_member) == (None, "c")
        assert events[-1].cause.startswith("group healthy again")
        with pytest.raises(GroupConfigError, match="no member 'zz'"):
            await manager.remove_member("feeds", "zz")
        await manager.stop()
        tg.cancel_scope.cancel()


async def test_least_loaded_sends_calls_away_from_a_member_that_is_busy(fake_clock: Any) -> None:
    import anyio

    manager, _ = make(fake_clock)
    manager.configure_group("feeds", "active_active", balance="least_loaded")
    feeds = {name: Feed(name) for name in "ab"}
    for name, feed in feeds.items():
        manager.register_component(name, feed, "feeds")
    release = anyio.Event()
    started = anyio.Event()

    async def slow(feed: Feed) -> str:
        started.set()
        await release.wait()
        return feed.name

    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.call, "feeds", slow)
        await started.wait()
        busy = next(m for m, info in manager.status()["feeds"]["members"].items() if info["in_flight"] == 1)
        others = [await manager.call("feeds", Feed.fetch) for _ in range(5)]
        assert busy not in others and len(set(others)) == 1
        release.set()
    # idle again: calls spread over both in turn
    assert {await manager.call("feeds", Feed.fetch) for _ in range(4)} == {"a", "b"}


async def test_weighted_balancing_gives_each_member_its_share_interleaved(fake_clock: Any) -> None:
    manager, events, feeds = cluster(fake_clock, n=3, active=2, balance="weighted", weights={"a": 3, "b": 1})
    picks = [await manager.call("feeds", Feed.fetch) for _ in range(8)]
    assert picks[:4] == ["a", "a", "b", "a"] and picks.count("a") == 6 and picks.count("b") == 2
    feeds["a"].up = False
    await probe(manager, "feeds", 2, fake_clock)
    picks = [await manager.call("feeds", Feed.fetch) for _ in range(4)]
    assert set(picks) == {"b", "c"}  # c (weight 1) replaced a


def test_cluster_and_balance_options_are_checked_in_the_config() -> None:
    from hrkernel.config import load_config_text
    from hrkernel.errors import ConfigError

    base = '[ha.groups.g]\ncomponents = ["datasource:a", "datasource:b", "datasource:c"]\n'
    ok = load_config_text(base + 'mode = "cluster"\nactive = 2\nmin_healthy = 2\nbalance = "weighted"\n'
                          'weights = { "datasource:a" = 2 }\n', environ={}).config.ha.groups["g"]
    assert ok.active_count() == 2 and ok.weights == {"datasource:a": 2}
    assert load_config_text(base + 'mode = "cluster"\n', environ={}).config.ha.groups["g"].active_count() == 2
    for extra, error in [
        ('mode = "cluster"\nactive = 4\n', "1 <= active <= 3"),
        ('mode = "cluster"\nmin_healthy = 0\n', "1 <= min_healthy <= 3"),
        ('mode = "active_passive"\nbalance = "least_loaded"\n', "balance applies to active_active and cluster"),
        ('mode = "active_passive"\nactive = 2\n', "active and min_healthy apply to mode"),
        ('mode = "active_active"\nbalance = "weighted"\nweights = { "datasource:x" = 2 }\n', "not in components"),
    ]:
        with pytest.raises(ConfigError, match=error):
            load_config_text(base + extra, environ={})
