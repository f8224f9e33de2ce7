"""The documents' failover API: get_failover_manager(), FailoverMode, register_component, start()
without a task group, FailoverMonitor — members are Nobitex adapters on two simulators."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from hrkernel.compat import FailoverManager, FailoverMode, FailoverMonitor, get_failover_manager
from hrkernel.ha.config import GroupMode
from hrkernel.ha.errors import GroupConfigError

from .conftest import start_sim

pytestmark = pytest.mark.anyio


def test_failover_mode_is_an_enum_equal_to_the_config_names() -> None:
    assert FailoverMode.ACTIVE_PASSIVE == "active_passive"
    assert {m.value for m in FailoverMode} == {"active_passive", "active_active", "n_plus_1", "cluster"}
    assert FailoverMode.CLUSTER == "cluster"
    # The enum and the config's accepted modes are the same set.
    assert {m.value for m in FailoverMode} == set(typing.get_args(GroupMode))
    assert get_failover_manager() is get_failover_manager()


async def test_active_passive_group_fails_over_when_the_primary_simulator_goes_down(
    make_adapter: Callable[..., Any],
) -> None:
    primary_sim, backup_sim = await start_sim(), await start_sim()
    manager = get_failover_manager()
    try:
        primary = await make_adapter(primary_sim.base_url, timeout=0.5, retry_attempts=1)
        backup = await make_adapter(backup_sim.base_url, timeout=0.5, retry_attempts=1)
        # Probed every 0.1 s here (the default is 1 s); the documents' call follows unchanged.
        manager.configure_group("compat-exchanges", FailoverMode.ACTIVE_PASSIVE, check_interval=0.1)
        manager.register_component(component_id="nobitex-a", component=primary, failover_group="compat-exchanges",
                                   is_primary=True, failover_mode=FailoverMode.ACTIVE_PASSIVE)
        manager.register_component(component_id="nobitex-b", component=backup, failover_group="compat-exchanges",
                                   is_primary=False, failover_mode=FailoverMode.ACTIVE_PASSIVE)
        assert manager.status()["compat-exchanges"]["mode"] == "active_passive"
        await manager.start()  # no task group: the manager runs its own
        assert manager.active_id("compat-exchanges") == "nobitex-a"
        await primary_sim.stop()
        with anyio.fail_after(10):
            while manager.active_id("compat-exchanges") != "nobitex-b":
                await anyio.sleep(0.05)
        switch = manager.history[-1]
        assert (switch.from_member, switch.to_member) == ("nobitex-a", "nobitex-b")
        # Calls now reach the backup simulator.
        market = await manager.call("compat-exchanges", lambda ex: ex.market("BTC/USDT"))
        assert market.symbol == "BTCUSDT"
        with pytest.raises(GroupConfigError, match="is active_passive, not active_active"):
            manager.register_component(component_id="x", component=backup, failover_group="compat-exchanges",
                                       failover_mode=FailoverMode.ACTIVE_ACTIVE)
    finally:
        await manager.stop()
        manager.groups.pop("compat-exchanges", None)
        await primary_sim.stop()
        await backup_sim.stop()


async def test_cluster_group_of_simulators_replaces_a_dead_member_and_takes_a_new_one_in(
    make_adapter: Callable[..., Any],
) -> None:
    sims = [await start_sim() for _ in range(3)]
    manager = FailoverManager()
    try:
        adapters = [await make_adapter(sim.base_url, timeout=0.5, retry_attempts=1) for sim in sims]
        manager.configure_group("venues", FailoverMode.CLUSTER, active=2, min_active=2, balance="least_loaded",
                                check_interval=0.1, fail_after=1, recover_after=1)
        for name, adapter in zip("abc", adapters, strict=True):
            manager.register_component(component_id=name, component=adapter, failover_group="venues")
        await manager.start()
        assert manager.status()["venues"]["serving"] == ["a", "b"]
        await sims[0].stop()  # a serving member's exchange goes away: c stands in
        with anyio.fail_after(10):
            while manager.status()["venues"]["serving"] != ["c", "b"]:
                await anyio.sleep(0.05)
        for _ in range(6):  # every call now reaches a live simulator
            market = await manager.call("venues", lambda ex: ex.market("BTC/USDT"))
            assert market.symbol == "BTCUSDT"
        assert manager.status()["venues"]["healthy"] is True

        sims.append(await start_sim())  # a fourth venue joins while running, as a standby
        joined = await manager.join("venues", "d", await make_adapter(sims[3].base_url, timeout=0.5, retry_attempts=1))
        assert (joined.change, joined.to_member) == ("join", "d")
        await sims[1].stop()
        with anyio.fail_after(10):
            while manager.status()["venues"]["serving"] != ["c", "d"]:
                await anyio.sleep(0.05)
        await manager.leave("venues", "a", cause="decommissioned")
        assert [(e.change, e.from_member, e.to_member) for e in manager.history] == [
            ("switch", "a", "c"), ("join", None, "d"), ("switch", "b", "d"), ("leave", "a", None),
        ]
    finally:
        await manager.stop()
        for sim in sims:
            await sim.stop()


async def test_a_manager_started_without_a_task_group_stops_its_probe_loops() -> None:
    class Counting:
        probes = 0

        async def is_healthy(self) -> bool:
            Counting.probes += 1
            return True

    manager = FailoverManager()
    manager.configure_group("g", FailoverMode.ACTIVE_ACTIVE, check_interval=0.02)
    manager.register_component(component_id="m", component=Counting(), failover_group="g")
    async with manager:
        with anyio.fail_after(5):
            while Counting.probes < 2:
                await anyio.sleep(0.01)
    seen = Counting.probes
    await anyio.sleep(0.1)
    assert Counting.probes == seen  # nothing left running after stop


def test_failover_monitor_keeps_history_and_flags_slow_failovers() -> None:
    monitor = FailoverMonitor(target_failover_seconds=30)
    fast = monitor.record_failover("hr-a", "hr-b", 2.5)
    slow = monitor.record_failover("hr-b", "hr-a", 45.0)
    assert fast.within_target and not slow.within_target
    assert [(e.old_leader, e.new_leader) for e in monitor.history] == [("hr-a", "hr-b"), ("hr-b", "hr-a")]
    stats = monitor.statistics()
    assert stats["count"] == 2 and stats["over_target"] == 1 and stats["max"] == 45.0
    with pytest.raises(ValueError, match="failover_time_seconds"):
        monitor.record_failover("a", "b", -1)
    bounded = FailoverMonitor(target_failover_seconds=1, history_size=3)
    for i in range(5):
        bounded.record_failover(f"n{i}", f"n{i + 1}", 0.1)
    assert [e.old_leader for e in bounded.history] == ["n2", "n3", "n4"]
