"""How ``n_plus_1`` and ``cluster`` groups decide who serves after a member's health changed
(called by :class:`hrkernel.ha.failover.FailoverManager`; see its module docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hrkernel.ha.failover import FailoverManager, Group, Member


async def rebalance_n_plus_1(manager: FailoverManager, group: Group, changed: Member, cause: str) -> None:
    """n_plus_1: a spare replaces a failed in-service member and steps back on failback."""
    if not changed.healthy and changed.id in group.serving:
        spare = manager._first_healthy(group, exclude=set(group.serving), prefer_spares=True)
        if spare is not None:
            group.serving[group.serving.index(changed.id)] = spare.id
            await manager._emit(group, changed.id, spare.id, cause, changed.failing_since)
    elif changed.healthy and changed.is_primary and changed.id not in group.serving and group.auto_failback:
        # Take back a slot held by a spare (or by a failed member).
        for i, holder in enumerate(group.serving):
            held = group.members[holder]
            if not held.is_primary or not held.healthy:
                group.serving[i] = changed.id
                await manager._emit(group, holder, changed.id, "failback: member healthy again", changed.recovering_since)
                return
    elif changed.healthy and changed.id not in group.serving:
        for i, holder in enumerate(group.serving):
            if not group.members[holder].healthy:
                group.serving[i] = changed.id
                await manager._emit(group, holder, changed.id, cause, group.members[holder].failing_since)
                return


async def rebalance_cluster(manager: FailoverManager, group: Group, changed: Member, cause: str) -> None:
    """cluster: a failed serving member is replaced by a healthy one not serving; a recovered
    member serves when fewer than ``active`` healthy members do."""
    if not changed.healthy and changed.id in group.serving:
        spare = manager._first_healthy(group, exclude=set(group.serving))
        if spare is not None:
            group.serving[group.serving.index(changed.id)] = spare.id
            await manager._emit(group, changed.id, spare.id, cause, changed.failing_since)
        else:
            group.serving.remove(changed.id)
            await manager._emit(group, changed.id, None, cause, changed.failing_since)
    elif changed.healthy and changed.id not in group.serving:
        healthy_serving = [m for m in group.serving if group.members[m].healthy]
        if len(healthy_serving) < group.active:
            group.serving = healthy_serving + [changed.id]
            await manager._emit(group, None, changed.id, cause, changed.recovering_since)
    await check_minimum(manager, group)

async def check_minimum(manager: FailoverManager, group: Group) -> None:
    """Record (and alert, through the listeners) when the cluster crosses ``min_healthy``."""
    healthy = sum(1 for m in group.members.values() if m.healthy)
    below = healthy < group.min_healthy
    if below == group.below_min:
        return
    group.below_min = below
    if below:
        manager.log.error("failover_group_below_minimum", group=group.name, healthy=healthy, min_healthy=group.min_healthy)
        cause = f"group unhealthy: {healthy} of {len(group.members)} members healthy, below min_healthy {group.min_healthy}"
    else:
        manager.log.info("failover_group_healthy_again", group=group.name, healthy=healthy, min_healthy=group.min_healthy)
        cause = f"group healthy again: {healthy} members healthy (min_healthy {group.min_healthy})"
    await manager._emit(group, None, None, cause, None)
