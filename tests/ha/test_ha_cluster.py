"""Cluster failover groups (k of n serving, min_active health), members joining and leaving at
run time, least-loaded and weighted balancing, and their configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from hrkernel.config import load_config_text
from hrkernel.errors import ConfigError
from hrkernel.ha.errors import GroupConfigError
from hrkernel.ha.failover import FailoverManager, GroupHealthChange
from hrkernel.ha.store import HAStore

from .test_ha_failover import Feed, make, probe

pytestmark = pytest.mark.anyio


def cluster(manager: FailoverManager, names: str, active: int, min_active: int | None = None, **options: Any) -> list[Feed]:
    manager.configure_group("pool", "cluster", active=active, min_active=min_active, fail_after=1, recover_after=1, **options)
    feeds = [Feed(n) for n in names]
    for feed in feeds:
        manager.register_component(feed.name, feed, "pool")
    return feeds


def changes(manager: FailoverManager) -> list[tuple[str, str | None, str | None]]:
    return [(e.change, e.from_member, e.to_member) for e in manager.history]


async def test_cluster_serves_k_of_n_and_a_standby_replaces_a_failed_member(fake_clock: Any, tmp_path: Path) -> None:
    store = HAStore(tmp_path / "ha.duckdb").open()
    manager, _ = make(fake_clock, store)
    a, b, c, d = cluster(manager, "abcd", active=2)
    served = {await manager.call("pool", Feed.fetch) for _ in range(8)}
    assert served == {"a", "b"}  # c and d stand by
    assert c.calls == d.calls == 0

    b.up = False
    await probe(manager, "pool", 1, fake_clock)
    assert manager.status()["pool"]["serving"] == ["a", "c"]
    assert {await manager.call("pool", Feed.fetch) for _ in range(8)} == {"a", "c"}
    b.up = True
    await probe(manager, "pool", 1, fake_clock)
    assert manager.status()["pool"]["serving"] == ["a", "c"]  # no failback: b is now a standby
    assert changes(manager) == [("switch", "b", "c")]
    assert manager.history[0].cause == "unhealthy: b stale"
    rows = store.failover_rows()
    assert [(r["change"], r["from"], r["to"]) for r in rows] == [("switch", "b", "c")]
    store.close()


async def test_cluster_below_min_active_is_unhealthy_and_healthy_again_when_a_member_recovers(fake_clock: Any) -> None:
    manager, _ = make(fake_clock)
    health: list[GroupHealthChange] = []
    manager.add_health_listener(health.append)
    a, b, c = cluster(manager, "abc", active=2, min_active=2)
    c.up = False  # the only standby is down: no replacement left
    await probe(manager, "pool", 1, fake_clock)
    assert manager.status()["pool"]["healthy"] is True and not health

    b.up = False
    await probe(manager, "pool", 1, fake_clock)
    status = manager.status()["pool"]
    assert status["serving"] == ["a"] and status["healthy"] is False
    assert (status["active"], status["min_active"]) == (2, 2)
    assert [(h.healthy, h.serving, h.needed) for h in health] == [(False, 1, 2)]
    assert await manager.call("pool", Feed.fetch) == "a"  # unhealthy, but still serving what it can

    c.up = True
    await probe(manager, "pool", 1, fake_clock)
    assert manager.status()["pool"]["serving"] == ["a", "c"] and manager.status()["pool"]["healthy"] is True
    assert [(h.healthy, h.serving) for h in health] == [(False, 1), (True, 2)]
    assert changes(manager) == [("deactivate", "b", None), ("activate", None, "c")]


async def test_min_active_below_active_tolerates_losing_members(fake_clock: Any) -> None:
    manager, _ = make(fake_clock)
    health: list[GroupHealthChange] = []
    manager.add_health_listener(health.append)
    a, b, c = cluster(manager, "abc", active=3, min_active=2)
    c.up = False
    await probe(manager, "pool", 1, fake_clock)
    assert manager.status()["pool"]["serving"] == ["a", "b"] and manager.status()["pool"]["healthy"] is True
    b.up = False
    await probe(manager, "pool", 1, fake_clock)
    assert manager.status()["pool"]["healthy"] is False and [h.healthy for h in health] == [False]


async def test_members_join_and_leave_while_the_manager_runs(fake_clock: Any, tmp_path: Path) -> None:
    store = HAStore(tmp_path / "ha.duckdb").open()
    manager, _ = make(fake_clock, store)
    health: list[GroupHealthChange] = []
    manager.add_health_listener(health.append)
    a, b = cluster(manager, "ab", active=2)
    async with anyio.create_task_group() as tg:
        await manager.start(tg)
        with pytest.raises(GroupConfigError, match="await join"):
            manager.register_component("c", Feed("c"), "pool")
        c = Feed("c")
        join = await manager.join("pool", "c", c)
        assert (join.change, join.to_member) == ("join", "c")
        assert manager.status()["pool"]["serving"] == ["a", "b"]  # both slots taken: c stands by

        await manager.leave("pool", "a", cause="maintenance")
        assert manager.status()["pool"]["serving"] == ["c", "b"]  # c took a's slot
        assert "a" not in manager.status()["pool"]["members"]
        assert {await manager.call("pool", Feed.fetch) for _ in range(6)} == {"b", "c"}

        await manager.leave("pool", "b")
        assert manager.status()["pool"]["serving"] == ["c"] and manager.status()["pool"]["healthy"] is False
        broken = Feed("d")
        broken.up = False
        await manager.join("pool", "d", broken)  # probed at once: joins unhealthy, serves nothing
        assert manager.status()["pool"]["serving"] == ["c"]
        broken.up = True
        await manager.probe_group("pool")
        assert manager.status()["pool"]["serving"] == ["c", "d"] and manager.status()["pool"]["healthy"] is True
        await manager.stop()
    assert changes(manager) == [
        ("join", None, "c"), ("leave", "a", None), ("switch", "a", "c"), ("leave", "b", None),
        ("deactivate", "b", None), ("join", None, "d"), ("activate", None, "d"),
    ]
    assert manager.history[2].cause == "a left: maintenance"
    assert "unhealthy: d stale" in manager.history[5].cause
    assert [h.healthy for h in health] == [False, True]
    assert [r["change"] for r in store.failover_rows()] == [c for c, _, _ in changes(manager)]
    with pytest.raises(GroupConfigError, match="no member 'zz'"):
        await manager.leave("pool", "zz")
    store.close()


async def test_a_joining_member_serves_at_once_in_active_active(fake_clock: Any) -> None:
    manager, _ = make(fake_clock)
    manager.configure_group("pool", "active_active")
    manager.register_component("a", Feed("a"), "pool")
    manager.register_component("b", Feed("b"), "pool")
    await manager.join("pool", "c", Feed("c"))
    assert {await manager.call("pool", Feed.fetch) for _ in range(6)} == {"a", "b", "c"}
    await manager.leave("pool", "a")
    assert {await manager.call("pool", Feed.fetch) for _ in range(6)} == {"b", "c"}
    assert changes(manager) == [("join", None, "c"), ("activate", None, "c"), ("leave", "a", None), ("deactivate", "a", None)]


class SlowFeed(Feed):
    """A feed whose calls last until the test lets them finish."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = anyio.Event()

    async def slow(self) -> str:
        self.calls += 1
        await self.release.wait()
        return self.name


async def test_least_loaded_sends_calls_away_from_a_member_with_calls_in_flight(fake_clock: Any) -> None:
    manager, _ = make(fake_clock)
    manager.configure_group("pool", "active_active", balance="least_loaded")
    a, b = SlowFeed("a"), SlowFeed("b")
    manager.register_component("a", a, "pool")
    manager.register_component("b", b, "pool")
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.call, "pool", SlowFeed.slow)
        tg.start_soon(manager.call, "pool", SlowFeed.slow)
        tg.start_soon(manager.call, "pool", SlowFeed.slow)
        with anyio.fail_after(5):
            while a.calls + b.calls < 3:
                await anyio.sleep(0)
        # One member got two of the three slow calls; the next calls go to the other one.
        busy, idle = (a, b) if a.calls == 2 else (b, a)
        assert (busy.calls, idle.calls) == (2, 1)
        status = manager.status()["pool"]["members"]
        assert (status[busy.name]["in_flight"], status[idle.name]["in_flight"]) == (2, 1)
        assert [await manager.call("pool", Feed.fetch) for _ in range(3)] == [idle.name] * 3
        a.release.set()
        b.release.set()
    assert manager.status()["pool"]["members"]["a"]["in_flight"] == 0
    # Idle again: equal loads rotate.
    assert sorted([await manager.call("pool", Feed.fetch) for _ in range(4)]) == ["a", "a", "b", "b"]


async def test_weighted_balance_follows_the_weights_interleaved(fake_clock: Any) -> None:
    manager, _ = make(fake_clock)
    manager.configure_group("pool", "cluster", active=3, balance="weighted")
    for name, weight in (("a", 3), ("b", 1), ("c", 1), ("standby", 5)):
        manager.register_component(name, Feed(name), "pool", weight=weight)
    served = [await manager.call("pool", Feed.fetch) for _ in range(50)]
    assert (served.count("a"), served.count("b"), served.count("c"), served.count("standby")) == (30, 10, 10, 0)
    assert "aaa" not in "".join(served)  # interleaved, not in bursts
    assert manager.status()["pool"]["members"]["a"]["weight"] == 3


def test_weights_need_a_weighted_group() -> None:
    manager = FailoverManager()
    manager.configure_group("pool", "active_active")
    with pytest.raises(GroupConfigError, match="weights apply only with balance"):
        manager.register_component("a", Feed("a"), "pool", weight=2)
    with pytest.raises(GroupConfigError, match="cluster mode needs `active`"):
        manager.configure_group("c", "cluster")
    with pytest.raises(GroupConfigError, match="min_active: must be between 1 and active"):
        manager.configure_group("c", "cluster", active=2, min_active=3)
    with pytest.raises(GroupConfigError, match="nothing to balance"):
        manager.configure_group("ap", "active_passive", balance="least_loaded")


@pytest.mark.parametrize(
    ("table", "path", "words"),
    [
        ('mode = "cluster"', "ha.groups.pool.active", "cluster mode needs `active`"),
        ('mode = "cluster"\nactive = 2\nmin_active = 3', "ha.groups.pool.min_active", "between 1 and active (2)"),
        ('mode = "cluster"\nactive = 4', "ha.groups.pool.active", "out of the 3 listed"),
        ('mode = "active_active"\nweights = { "datasource:a" = 2 }', "ha.groups.pool.weights", 'balance = "weighted"'),
        ('mode = "active_active"\nbalance = "weighted"\nweights = { "datasource:z" = 2 }', "ha.groups.pool.weights.datasource:z", "not one of"),
        ('mode = "active_active"\nbalance = "weighted"\nweights = { "datasource:a" = 0 }', "ha.groups.pool.weights.datasource:a", ">= 1"),
        ('mode = "n_plus_1"\nmin_active = 1', "ha.groups.pool.min_active", "only a cluster group"),
        ('mode = "active_passive"\nbalance = "least_loaded"', "ha.groups.pool.balance", "nothing to balance"),
        ('mode = "cluster"\nactive = 2\nbalance = "fastest"', "ha.groups.pool.balance", "'round_robin'"),
    ],
)
def test_group_config_errors_name_the_key_path(table: str, path: str, words: str) -> None:
    text = f'[ha.groups.pool]\ncomponents = ["datasource:a", "datasource:b", "datasource:c"]\n{table}\n'
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "hr.toml")
    assert f"{path}: " in str(caught.value) and words in str(caught.value)


def test_a_cluster_group_config_loads() -> None:
    text = """
[ha.groups.pool]
mode = "cluster"
components = ["datasource:a", "datasource:b", "datasource:c"]
active = 2
min_active = 1
balance = "weighted"
weights = { "datasource:a" = 2 }
"""
    group = load_config_text(text, "hr.toml").config.ha.groups["pool"]
    assert (group.mode, group.active, group.min_active, group.balance, group.weights) == (
        "cluster", 2, 1, "weighted", {"datasource:a": 2}
    )


async def test_kernel_cluster_group_alerts_below_min_active_and_shows_changes_on_the_api(tmp_path: Path) -> None:
    import socket

    import httpx

    from hrkernel.kernel import Kernel
    from hrkernel.plugins import PluginHost

    from .test_ha_component import FeedConfig, FeedPlugin, FileFeed, wait_until

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    feeds = "".join(f'[datasources.{n}]\ntype = "file_feed"\ndown_file = "{tmp_path / n}.down"\n' for n in "abc")
    text = f"""
[kernel]
data_dir = "{tmp_path / "data"}"
[dashboard]
enabled = true
host = "127.0.0.1"
port = {port}
token = "dash-token-5678"
{feeds}
[ha.groups.pool]
mode = "cluster"
components = ["datasource:a", "datasource:b", "datasource:c"]
active = 2
min_active = 2
balance = "weighted"
weights = {{ "datasource:a" = 2 }}
check_interval = "20ms"
fail_after = 1
recover_after = 1
"""
    host = PluginHost(strict=True)
    host.discover()
    host.add(FeedPlugin(), "file_feed_plugin")
    host.collect()
    kernel = Kernel.build(load_config_text(text, "test.toml"), host)

    def serving() -> list[str]:
        return list(ha.failover.status()["pool"]["serving"])

    def unhealthy_alert() -> Any:
        firing = [a for a in alerts.open.values() if a.title == "failover group unhealthy" and a.status == "firing"]
        return firing[0] if firing else None

    async with anyio.create_task_group() as tg:
        tg.start_soon(kernel.run)
        ha = kernel.get("ha")
        await wait_until(ha.may_trade, 10)
        alerts = kernel.get("alerts")
        assert serving() == ["datasource:a", "datasource:b"]
        assert ha.failover.status()["pool"]["members"]["datasource:a"]["weight"] == 2
        (tmp_path / "b.down").write_text("x")  # a standby (c) takes b's slot
        await wait_until(lambda: serving() == ["datasource:a", "datasource:c"], 5)
        (tmp_path / "c.down").write_text("x")  # no healthy standby left: below min_active
        await wait_until(lambda: serving() == ["datasource:a"], 5)
        await wait_until(lambda: unhealthy_alert() is not None, 5)
        alert = unhealthy_alert()
        assert alert.level == "error" and "1 healthy serving member(s), 2 needed" in alert.message
        assert ha.status()["groups"]["pool"]["healthy"] is False
        (tmp_path / "b.down").unlink()
        await wait_until(lambda: serving() == ["datasource:a", "datasource:b"], 5)
        await wait_until(lambda: unhealthy_alert() is None, 5)  # resolved once healthy again
        assert isinstance(ha.failover.active("pool"), FileFeed)

        await wait_until(lambda: len(ha.store.failover_rows()) == 3, 5)  # written just after the change
        rows = ha.store.failover_rows()
        assert [(r["change"], r["from"], r["to"]) for r in rows] == [
            ("switch", "datasource:b", "datasource:c"),
            ("deactivate", "datasource:c", None),
            ("activate", None, "datasource:b"),
        ]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            with anyio.fail_after(10):
                while True:  # until the dashboard listens
                    try:
                        body = (await client.get("/api/failovers")).json()
                        break
                    except httpx.ConnectError:
                        await anyio.sleep(0.05)
        assert body["configured"] is True
        data = body["data"]
        group = data["groups"]["pool"]
        assert (group["mode"], group["active"], group["min_active"], group["healthy"]) == ("cluster", 2, 2, True)
        assert group["serving"] == ["datasource:a", "datasource:b"]
        assert [h["change"] for h in data["history"] if h.get("group") == "pool"] == ["activate", "deactivate", "switch"]

        def switch_alerts() -> int:
            return sum(a.count for a in alerts.open.values() if a.title == "failover group switched")

        before = switch_alerts()
        assert before >= 3
        extra = FileFeed(FeedConfig(down_file=str(tmp_path / "extra.down")))
        await ha.failover.join("pool", "datasource:extra", extra)  # both slots taken: a standby
        await ha.failover.leave("pool", "datasource:extra", cause="test over")
        await wait_until(lambda: len(ha.store.failover_rows()) == 5, 5)
        assert [r["change"] for r in ha.store.failover_rows()[3:]] == ["join", "leave"]
        assert switch_alerts() == before  # asked-for membership changes raise no alert
        kernel.request_stop("test")


async def test_an_active_passive_group_with_no_healthy_member_is_unhealthy(fake_clock: Any) -> None:
    manager, _ = make(fake_clock)
    health: list[GroupHealthChange] = []
    manager.add_health_listener(health.append)
    manager.configure_group("feeds", "active_passive", fail_after=1, recover_after=1)
    a, b = Feed("a"), Feed("b")
    manager.register_component("a", a, "feeds", is_primary=True)
    manager.register_component("b", b, "feeds")
    a.up = False
    await probe(manager, "feeds", 1)
    assert manager.status()["feeds"]["healthy"] is True and not health  # b took over
    b.up = False
    await probe(manager, "feeds", 1)
    assert manager.status()["feeds"]["healthy"] is False
    assert manager.describe()["healthy"] == {"feeds": False}
    a.up = True
    await probe(manager, "feeds", 1)
    assert manager.status()["feeds"]["healthy"] is True
    assert [(h.healthy, h.needed) for h in health] == [(False, 1), (True, 1)]


def test_a_history_file_from_before_the_change_column_gets_it_on_open(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "ha.duckdb"
    with duckdb.connect(str(path)) as old:  # the table as earlier versions created it
        old.execute(
            "CREATE TABLE failovers (ts TIMESTAMP NOT NULL, kind VARCHAR NOT NULL, grp VARCHAR, from_member VARCHAR,"
            " to_member VARCHAR, cause VARCHAR NOT NULL, duration_s DOUBLE)"
        )
        old.execute("INSERT INTO failovers VALUES ('2020-01-01 00:00:00', 'group', 'feeds', 'a', 'b', 'stale', 0.5)")
    store = HAStore(path).open()
    store.record_failover(1.7e9, "group", "pool", None, "c", "joined", None, "join")
    rows = store.failover_rows()
    assert [(r["from"], r["to"], r["change"]) for r in rows] == [("a", "b", None), (None, "c", "join")]
    store.close()
