"""Failover groups inside one kernel: components that stand in for each other.

Modes:

- ``active_passive`` — one member serves (the primary when healthy); when it fails the next
  healthy member takes over; with ``auto_failback`` the primary takes over again once healthy.
- ``active_active`` — every healthy member serves, calls spread by the group's ``balance``
  policy (:mod:`hrkernel.ha.balance`); a failed member leaves the rotation and comes back when
  healthy.
- ``n_plus_1`` — the primaries are in service, the others are spares; a spare replaces any failed
  in-service member; with ``auto_failback`` the recovered member takes its place back and the
  spare returns to the pool.
- ``cluster`` — ``active`` of the n members serve (k of n), balanced like active_active; a
  failed serving member is replaced by a healthy standby (or its slot stays empty until one is
  healthy); a recovered member becomes a standby, or serves if a slot is free. No member is
  preferred, so nothing fails back. The group is unhealthy below ``min_active`` healthy
  serving members.

Members may join (:meth:`FailoverManager.join`) and leave (:meth:`FailoverManager.leave`) while
the kernel runs. A member's health comes from probing it (``check()`` returning a HealthResult,
or ``is_healthy()`` returning a bool; members with neither count as healthy) and from failures
reported by callers (:meth:`FailoverManager.call` reports them itself). ``fail_after``
consecutive failures make a member unhealthy, ``recover_after`` consecutive successes make it
healthy again. Every change (switch, activation, deactivation, join, leave) is a
:class:`SwitchEvent`, recorded by the failover-time monitor (DuckDB) and given to listeners; a
group becoming unhealthy or healthy again is a :class:`GroupHealthChange` given to health
listeners.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup

from hrkernel.ha.balance import Balancer
from hrkernel.ha.errors import GroupConfigError, NoHealthyMemberError, UnknownGroupError
from hrkernel.ha.failover_time import FailoverRecord, FailoverTimeMonitor
from hrkernel.ha.groups import (
    MODES,
    Change,
    FailoverMode,
    Group,
    GroupHealthChange,
    Member,
    SwitchEvent,
    group_settings_problem,
    probe_member,
)
from hrkernel.ha.groups import target as _target
from hrkernel.lifecycle import Component
from hrkernel.logging import get_logger

__all__ = ["MODES", "FailoverManager", "FailoverMode", "Group", "GroupHealthChange", "Member", "SwitchEvent"]

T = TypeVar("T")


Listener = Callable[[SwitchEvent], Awaitable[None] | None]
HealthListener = Callable[[GroupHealthChange], Awaitable[None] | None]


async def _tell(listeners: list[Any], event: Any, log: Any, group: str) -> None:
    for listener in list(listeners):
        try:
            outcome = listener(event)
            if outcome is not None:
                await outcome
        except Exception as exc:
            log.error("failover_listener_failed", group=group, error=f"{type(exc).__name__}: {exc}")


class FailoverManager(Component):
    name = "failover"

    def __init__(
        self,
        *,
        monitor: FailoverTimeMonitor | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        probe_timeout: float = 2.0,
    ) -> None:
        self.monitor = monitor or FailoverTimeMonitor()
        self.clock = clock
        self.wall = wall
        self.probe_timeout = probe_timeout
        self.groups: dict[str, Group] = {}
        self.history: list[SwitchEvent] = []
        self._listeners: list[Listener] = []
        self._health_listeners: list[HealthListener] = []
        self._stopping = anyio.Event()
        self._tg: TaskGroup | None = None
        self.log = get_logger("hrkernel.ha.failover")

    # -- set-up ------------------------------------------------------------------------------
    def configure_group(
        self, name: str, mode: str = "active_passive", *, auto_failback: bool = True, spares: int = 1,
        fail_after: int = 2, recover_after: int = 2, check_interval: float = 1.0,
        active: int | None = None, min_active: int | None = None, balance: str = "round_robin",
    ) -> Group:
        """Create group ``name`` (or change its settings; its mode cannot change).

        cluster: ``active`` members serve at once, ``min_active`` (default ``active``) healthy
        serving members keep the group healthy. ``balance`` spreads calls where several serve.
        """
        problem = group_settings_problem(mode, active=active, min_active=min_active, balance=balance, weights={})
        if problem is not None:
            raise GroupConfigError(f"failover group {name!r}: {problem[0]}: {problem[1]}")
        mode = str(mode)  # a FailoverMode is kept as its plain name (status, logs, DuckDB)
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = Group(name=name, mode=mode)
            if self._tg is not None:  # a group made while running gets its probe loop now
                self._tg.start_soon(self._loop, group, name=f"failover:{name}")
        elif group.mode != mode:
            raise GroupConfigError(f"failover group {name!r} is {group.mode}, not {mode}")
        group.auto_failback, group.spares = auto_failback, spares
        group.fail_after, group.recover_after, group.check_interval = fail_after, recover_after, check_interval
        group.active = active or 0
        group.min_active = (min_active if min_active is not None else active) or 0
        if group.balancer.policy != balance:
            group.balancer = Balancer(balance)
        return group

    def register_component(
        self, component_id: str, component: Any, failover_group: str, is_primary: bool = False,
        failover_mode: str | None = None, *, weight: int = 1,
    ) -> None:
        """Add ``component`` to ``failover_group`` (created with ``failover_mode`` if new) before
        the manager starts; while it runs, use :meth:`join`.

        active_passive: the member registered with ``is_primary`` (else the first) is preferred.
        n_plus_1: members with ``is_primary`` are in service, the others are spares.
        cluster: the first ``active`` members registered serve, the others stand by.
        """
        group = self.groups.get(failover_group)
        if group is not None and failover_mode is not None and failover_mode != group.mode:
            raise GroupConfigError(f"failover group {failover_group!r} is {group.mode}, not {failover_mode}")
        if self._tg is not None:
            raise GroupConfigError(
                f"failover group {failover_group!r}: the manager is running; add {component_id!r} with `await join(...)`"
            )
        if group is None:
            group = self.configure_group(failover_group, failover_mode or "active_passive")
        group.members[self._new_member_id(group, component_id, weight)] = Member(component_id, component, is_primary, weight)
        self._initial_serving(group)

    @staticmethod
    def _new_member_id(group: Group, member_id: str, weight: int) -> str:
        if member_id in group.members:
            raise GroupConfigError(f"failover group {group.name!r} already has a member {member_id!r}")
        problem = group_settings_problem(
            group.mode, active=group.active or None, min_active=group.min_active or None,
            balance=group.balancer.policy, weights={member_id: weight} if weight != 1 else {},
        )
        if problem is not None:
            raise GroupConfigError(f"failover group {group.name!r}: {problem[0]}: {problem[1]}")
        return member_id

    def _initial_serving(self, group: Group) -> None:
        ids = list(group.members)
        if group.mode == "active_passive":
            primaries = [m for m in ids if group.members[m].is_primary]
            group.serving = [primaries[0] if primaries else ids[0]]
        elif group.mode == "active_active":
            group.serving = ids
        elif group.mode == "cluster":
            group.serving = ids[: group.active]
        else:
            group.serving = [m for m in ids if group.members[m].is_primary]

    def add_listener(self, listener: Listener) -> None:
        """``listener(event)`` for every :class:`SwitchEvent`, after it is recorded."""
        self._listeners.append(listener)

    def add_health_listener(self, listener: HealthListener) -> None:
        """``listener(change)`` whenever a group becomes unhealthy or healthy again."""
        self._health_listeners.append(listener)

    # -- running -----------------------------------------------------------------------------
    async def start(self, tg: TaskGroup) -> None:
        for group in self.groups.values():
            if group.mode == "n_plus_1" and not group.serving:
                raise GroupConfigError(f"failover group {group.name!r}: n_plus_1 needs at least one primary (in-service) member")
        self._tg = tg
        for group in self.groups.values():
            tg.start_soon(self._loop, group, name=f"failover:{group.name}")
            await self._check_health(group)  # e.g. a cluster configured with fewer members than min_active

    async def stop(self) -> None:
        self._stopping.set()
        self._tg = None

    async def _loop(self, group: Group) -> None:
        while not self._stopping.is_set():
            with anyio.move_on_after(group.check_interval):
                await self._stopping.wait()
            if self._stopping.is_set() or self.groups.get(group.name) is not group:
                return
            try:
                await self.probe_group(group.name)
            except Exception as exc:  # never let one group's probe stop the kernel
                self.log.error("failover_probe_failed", group=group.name, error=f"{type(exc).__name__}: {exc}")

    async def probe_group(self, name: str) -> None:
        """Probe every member of ``name`` once and switch if that changes who should serve."""
        group = self._group(name)
        for member in list(group.members.values()):
            ok, detail = await self._probe(member)
            if group.members.get(member.id) is member:  # it may have left during the probe
                await self._observe(group, member, ok, detail)

    async def _probe(self, member: Member) -> tuple[bool, str]:
        return await probe_member(member, self.probe_timeout)

    async def report_failure(self, group: str, member_id: str, cause: str) -> None:
        """A caller saw ``member_id`` fail; counts like a failed probe."""
        g = self._group(group)
        if member_id in g.members:  # a member that left meanwhile has nothing left to count
            await self._observe(g, g.members[member_id], False, cause)

    async def report_success(self, group: str, member_id: str) -> None:
        g = self._group(group)
        if member_id in g.members:
            await self._observe(g, g.members[member_id], True, "")

    async def _observe(self, group: Group, member: Member, ok: bool, detail: str) -> None:
        now = self.clock()
        if ok:
            member.fails, member.failing_since = 0, None
            member.oks += 1
            if member.recovering_since is None:
                member.recovering_since = now
            if not member.healthy and member.oks >= group.recover_after:
                member.healthy = True
                self.log.info("failover_member_healthy", group=group.name, member=member.id)
                await self._rebalance(group, member, "recovered")
            return
        member.oks, member.recovering_since = 0, None
        member.fails += 1
        member.last_detail = detail
        if member.failing_since is None:
            member.failing_since = now
        if member.healthy and member.fails >= group.fail_after:
            member.healthy = False
            self.log.warning("failover_member_unhealthy", group=group.name, member=member.id, detail=detail)
            await self._rebalance(group, member, f"unhealthy: {detail}" if detail else "unhealthy")

    async def _rebalance(self, group: Group, changed: Member, cause: str) -> None:
        """Decide who serves after ``changed`` became healthy or unhealthy (or joined)."""
        if group.mode == "active_passive":
            await self._rebalance_active_passive(group, changed, cause)
        elif group.mode in ("active_active", "cluster"):
            slots = len(group.members) if group.mode == "active_active" else group.active
            if not changed.healthy and changed.id in group.serving:
                await self._vacate(group, changed.id, cause, changed.failing_since)
            elif changed.healthy and changed.id not in group.serving and len(group.serving) < slots:
                group.serving.append(changed.id)
                await self._emit(group, None, changed.id, cause, changed.recovering_since, Change.ACTIVATE)
        else:
            await self._rebalance_n_plus_1(group, changed, cause)
        await self._check_health(group)

    async def _rebalance_active_passive(self, group: Group, changed: Member, cause: str) -> None:
        if not group.serving:  # the last serving member left: the first healthy one serves
            if changed.healthy:
                group.serving = [changed.id]
                await self._emit(group, None, changed.id, cause, changed.recovering_since, Change.ACTIVATE)
            return
        active = group.members[group.serving[0]]
        if not changed.healthy and changed.id == active.id:
            replacement = self._first_healthy(group, exclude={active.id})
            if replacement is not None:
                await self._switch(group, active.id, replacement.id, cause, changed.failing_since)
        elif changed.healthy and changed.is_primary and group.auto_failback and active.id != changed.id:
            await self._switch(group, active.id, changed.id, "failback: primary healthy again", changed.recovering_since)
        elif changed.healthy and not active.healthy:
            await self._switch(group, active.id, changed.id, f"{changed.id} recovered while {active.id} is down", active.failing_since)

    async def _rebalance_n_plus_1(self, group: Group, changed: Member, cause: str) -> None:
        if not changed.healthy and changed.id in group.serving:
            spare = self._first_healthy(group, exclude=set(group.serving), prefer_spares=True)
            if spare is not None:
                group.serving[group.serving.index(changed.id)] = spare.id
                await self._emit(group, changed.id, spare.id, cause, changed.failing_since)
        elif changed.healthy and changed.is_primary and changed.id not in group.serving and group.auto_failback:
            # Take back a slot held by a spare (or by a failed member).
            for i, holder in enumerate(group.serving):
                held = group.members[holder]
                if not held.is_primary or not held.healthy:
                    group.serving[i] = changed.id
                    await self._emit(group, holder, changed.id, "failback: member healthy again", changed.recovering_since)
                    return
        elif changed.healthy and changed.id not in group.serving:
            for i, holder in enumerate(group.serving):
                if not group.members[holder].healthy:
                    group.serving[i] = changed.id
                    await self._emit(group, holder, changed.id, cause, group.members[holder].failing_since)
                    return

    async def _vacate(self, group: Group, member_id: str, cause: str, since: float | None) -> None:
        """``member_id`` stops serving: a healthy non-serving member takes its slot (not in
        active_active, where every healthy member serves already), else the slot stays empty."""
        replacement = None
        if group.mode != "active_active":
            replacement = self._first_healthy(group, exclude=set(group.serving), prefer_spares=group.mode == "n_plus_1")
        if replacement is not None:
            group.serving[group.serving.index(member_id)] = replacement.id
            await self._emit(group, member_id, replacement.id, cause, since)
        else:
            group.serving.remove(member_id)
            await self._emit(group, member_id, None, cause, since, Change.DEACTIVATE)

    def _first_healthy(self, group: Group, exclude: set[str], prefer_spares: bool = False) -> Member | None:
        candidates = [m for m in group.members.values() if m.healthy and m.id not in exclude]
        if group.mode == "active_passive":
            candidates.sort(key=lambda m: not m.is_primary)
        if prefer_spares:
            candidates.sort(key=lambda m: m.is_primary)
        return candidates[0] if candidates else None

    async def _switch(self, group: Group, from_id: str, to_id: str, cause: str, since: float | None) -> None:
        group.serving = [to_id]
        await self._emit(group, from_id, to_id, cause, since)

    async def _emit(
        self, group: Group, from_id: str | None, to_id: str | None, cause: str, since: float | None,
        change: Change = Change.SWITCH,
    ) -> None:
        duration = None if since is None else max(0.0, self.clock() - since)
        event = SwitchEvent(
            group=group.name, mode=group.mode, from_member=from_id, to_member=to_id, cause=cause,
            at=self.wall(), duration=duration, change=change.value,
        )
        self.history.append(event)
        self.log.warning(
            "failover_switch", group=group.name, mode=group.mode, change=change.value, from_member=from_id,
            to_member=to_id, cause=cause, duration_s=duration, serving=list(group.serving),
        )
        await self.monitor.record(
            FailoverRecord(
                kind="group", group=group.name, from_member=from_id, to_member=to_id, cause=cause, at=event.at,
                duration=duration, change=change.value,
            )
        )
        await _tell(self._listeners, event, self.log, group.name)

    async def _check_health(self, group: Group) -> None:
        """Tell the health listeners when the group crossed its ``needed`` healthy serving members."""
        up, needed = len(group.healthy_serving()), group.needed()
        healthy = up >= needed and up > 0
        if healthy == group.healthy:
            return
        group.healthy = healthy
        detail = f"{up} healthy serving member(s), {needed} needed"
        (self.log.info if healthy else self.log.error)("failover_group_health", group=group.name, healthy=healthy, detail=detail)
        change = GroupHealthChange(
            group=group.name, mode=group.mode, healthy=healthy, serving=up, needed=needed, detail=detail, at=self.wall(),
        )
        await _tell(self._health_listeners, change, self.log, group.name)

    # -- membership at run time ----------------------------------------------------------------
    async def join(
        self, group: str, member_id: str, component: Any, *, is_primary: bool = False, weight: int = 1,
        cause: str = "joined",
    ) -> SwitchEvent:
        """Add a member to a configured group while it runs.

        The member is probed once at once: healthy, it counts as healthy (like a member present
        at start) and serves if the mode gives it a slot (cluster below ``active``, active/active,
        a primary with ``auto_failback``); unhealthy, it waits for ``recover_after`` good probes.
        Records a ``join`` event (and an ``activate``/``switch`` if it serves); returns the join.
        """
        g = self._group(group)
        member = Member(self._new_member_id(g, member_id, weight), component, is_primary, weight)
        ok, detail = await self._probe(member)
        if member_id in g.members:  # joined twice concurrently
            raise GroupConfigError(f"failover group {group!r} already has a member {member_id!r}")
        member.healthy, member.last_detail = ok, detail
        if ok:
            member.oks, member.recovering_since = 1, self.clock()
        else:
            member.fails, member.failing_since = 1, self.clock()
        g.members[member_id] = member
        await self._emit(g, None, member_id, cause if ok else f"{cause} (unhealthy: {detail})", None, Change.JOIN)
        joined = self.history[-1]
        if ok:
            await self._rebalance(g, member, f"{member_id} joined")
        return joined

    async def leave(self, group: str, member_id: str, cause: str = "left") -> SwitchEvent:
        """Remove a member while the group runs (a serving member first hands its slot to a
        healthy standby, as on failure). Records a ``leave`` event, then the ``switch`` or
        ``deactivate``; returns the leave."""
        g = self._group(group)
        if member_id not in g.members:
            raise GroupConfigError(f"failover group {group!r} has no member {member_id!r} (members: {', '.join(g.members) or 'none'})")
        del g.members[member_id]
        await self._emit(g, member_id, None, cause, None, Change.LEAVE)
        left = self.history[-1]
        if member_id in g.serving:
            await self._vacate(g, member_id, f"{member_id} left: {cause}", None)
            if g.mode == "active_passive" and not g.serving:
                self.log.error("failover_group_empty", group=group, detail="no healthy member left to serve")
        await self._check_health(g)
        return left

    # -- routing -----------------------------------------------------------------------------
    def _group(self, name: str) -> Group:
        group = self.groups.get(name)
        if group is None:
            raise UnknownGroupError(name, list(self.groups))
        return group

    def active_id(self, group: str) -> str:
        """The member the next call of ``group`` goes to (by the group's ``balance`` where
        several serve)."""
        g = self._group(group)
        serving = g.healthy_serving()
        if not serving:
            raise NoHealthyMemberError(g.name, list(g.members))
        if g.mode == "active_passive":
            return serving[0].id
        return g.balancer.pick(serving).id

    def active(self, group: str) -> Any:
        """The component the next call of ``group`` goes to (the kernel component's object)."""
        g = self._group(group)
        return _target(g.members[self.active_id(group)].component)

    async def call(self, group: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """``await fn(member)`` on the active member; a raise counts as a failure of that member
        (and is re-raised: whether to retry is the caller's decision). The call counts as in
        flight on the member while it runs (``least_loaded`` balancing)."""
        member_id = self.active_id(group)
        member = self._group(group).members[member_id]
        member.in_flight += 1
        try:
            result = await fn(_target(member.component))
        except Exception as exc:
            await self.report_failure(group, member_id, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            member.in_flight -= 1
        return result

    async def failover(
        self, group: str, to: str | None = None, cause: str = "manual", from_member: str | None = None
    ) -> SwitchEvent:
        """Switch ``group`` now (manual failover): ``from_member`` (default: the first serving one)
        hands over to ``to`` (default: the next healthy member not serving)."""
        g = self._group(group)
        if g.mode == "active_active":
            raise GroupConfigError(f"failover group {group!r} is active_active: every healthy member already serves")
        if not g.serving:
            raise NoHealthyMemberError(group, list(g.members))
        current = from_member or g.serving[0]
        if current not in g.serving:
            raise GroupConfigError(f"failover group {group!r}: {current!r} is not serving (serving: {', '.join(g.serving)})")
        if to is None:
            target = self._first_healthy(g, exclude=set(g.serving), prefer_spares=g.mode == "n_plus_1")
            if target is None:
                raise NoHealthyMemberError(group, [m for m in g.members if m not in g.serving])
            to = target.id
        if to not in g.members:
            raise GroupConfigError(f"failover group {group!r} has no member {to!r} (members: {', '.join(g.members)})")
        if to in g.serving and g.mode != "active_passive":
            raise GroupConfigError(f"failover group {group!r}: {to!r} is serving already")
        began = self.clock()
        if g.mode == "active_passive":
            g.serving = [to]
        else:
            g.serving[g.serving.index(current)] = to
        await self._emit(g, current, to, cause, began)
        await self._check_health(g)
        return self.history[-1]

    def status(self) -> dict[str, Any]:
        """Per group: mode, balance, who serves, whether it is healthy, and each member."""
        return {name: g.status() for name, g in self.groups.items()}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": "failover",
            "groups": {n: g.mode for n, g in self.groups.items()},
            "healthy": {n: g.healthy for n, g in self.groups.items()},
        }
