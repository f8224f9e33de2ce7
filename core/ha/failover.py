"""Failover groups inside one kernel: components that stand in for each other.

Modes:

- ``active_passive`` — one member serves (the primary when healthy); when it fails the next
  healthy member takes over; with ``auto_failback`` the primary takes over again once healthy.
- ``active_active`` — every healthy member serves, in turn (round robin); a failed member leaves
  the rotation and comes back when healthy.
- ``n_plus_1`` — the primaries are in service, the others are spares; a spare replaces any failed
  in-service member; with ``auto_failback`` the recovered member takes its place back and the
  spare returns to the pool.
- ``cluster`` — k of n: ``active`` members serve at once (the first listed healthy ones), any
  other healthy member replaces one that fails, and the group counts as healthy only while at
  least ``min_healthy`` members are (crossing that line is recorded and alerted like a switch).
  Members may join (:meth:`FailoverManager.add_member`) and leave
  (:meth:`FailoverManager.remove_member`); both are recorded.

Where several members serve (active_active, cluster) ``balance`` picks the member of each call:
round robin, least loaded or weighted (:mod:`hrkernel.ha.balance`).

A member's health comes from probing it (``check()`` returning a HealthResult, or ``is_healthy()``
returning a bool; members with neither count as healthy) and from failures reported by callers
(:meth:`FailoverManager.call` reports them itself). ``fail_after`` consecutive failures make a
member unhealthy, ``recover_after`` consecutive successes make it healthy again. Every switch is
a :class:`SwitchEvent`, recorded by the failover-time monitor (DuckDB) and given to listeners.
"""

from __future__ import annotations

import enum
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import msgspec
from anyio.abc import TaskGroup

from hrkernel.ha.balance import BALANCES, pick
from hrkernel.ha.errors import GroupConfigError, NoHealthyMemberError, UnknownGroupError
from hrkernel.ha.failover_modes import check_minimum, rebalance_cluster, rebalance_n_plus_1
from hrkernel.ha.failover_time import FailoverRecord, FailoverTimeMonitor
from hrkernel.kernel.component import Component
from hrkernel.logging import get_logger
from hrkernel.types import HealthResult, HealthStatus

T = TypeVar("T")


class FailoverMode(enum.StrEnum):
    """A group's mode; equal to its plain string, so config and callers may use either."""

    ACTIVE_PASSIVE = "active_passive"
    ACTIVE_ACTIVE = "active_active"
    N_PLUS_1 = "n_plus_1"
    CLUSTER = "cluster"


MODES = tuple(m.value for m in FailoverMode)


class SwitchEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A group changed who serves. ``from_member``/``to_member`` is None when a member only left
    or joined the rotation (active/active)."""

    group: str
    mode: str
    from_member: str | None
    to_member: str | None
    cause: str
    at: float
    duration: float | None


@dataclass
class Member:
    id: str
    component: Any
    is_primary: bool
    healthy: bool = True
    fails: int = 0
    oks: int = 0
    failing_since: float | None = None
    recovering_since: float | None = None
    last_detail: str = ""
    in_flight: int = 0
    """Calls through :meth:`FailoverManager.call` running on this member now (least_loaded)."""


@dataclass
class Group:
    name: str
    mode: str
    auto_failback: bool = True
    spares: int = 1
    fail_after: int = 2
    recover_after: int = 2
    check_interval: float = 1.0
    members: dict[str, Member] = field(default_factory=dict)
    serving: list[str] = field(default_factory=list)
    """active_passive: [the active]; n_plus_1 / cluster: the in-service members; active_active:
    healthy members."""
    rr: int = 0
    balance: str = "round_robin"
    weights: dict[str, int] = field(default_factory=dict)
    credit: dict[str, int] = field(default_factory=dict)
    active: int = 1
    """cluster: how many members serve at once."""
    min_healthy: int = 1
    """cluster: fewer healthy members than this and the group is unhealthy."""
    below_min: bool = False
    started: bool = False


Listener = Callable[[SwitchEvent], Awaitable[None] | None]


def _target(component: Any) -> Any:
    """The object behind a kernel PluginComponent, or the component itself."""
    return getattr(component, "obj", component)


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
        self._stopping = anyio.Event()
        self.log = get_logger("hrkernel.ha.failover")

    # -- set-up ------------------------------------------------------------------------------
    def configure_group(
        self, name: str, mode: str = "active_passive", *, auto_failback: bool = True, spares: int = 1,
        fail_after: int = 2, recover_after: int = 2, check_interval: float = 1.0,
        balance: str = "round_robin", weights: dict[str, int] | None = None, active: int = 1, min_healthy: int = 1,
    ) -> Group:
        if mode not in MODES:
            raise GroupConfigError(f"failover group {name!r}: mode {mode!r} is not one of {', '.join(MODES)}")
        if balance not in BALANCES:
            raise GroupConfigError(f"failover group {name!r}: balance {balance!r} is not one of {', '.join(BALANCES)}")
        if mode == "cluster" and (active < 1 or min_healthy < 1):
            raise GroupConfigError(f"failover group {name!r}: cluster needs active >= 1 and min_healthy >= 1")
        mode = str(mode)  # a FailoverMode is kept as its plain name (status, logs, DuckDB)
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = Group(name=name, mode=mode)
        elif group.mode != mode:
            raise GroupConfigError(f"failover group {name!r} is {group.mode}, not {mode}")
        group.auto_failback, group.spares = auto_failback, spares
        group.fail_after, group.recover_after, group.check_interval = fail_after, recover_after, check_interval
        group.balance, group.weights = balance, dict(weights or {})
        group.active, group.min_healthy = active, min_healthy
        return group

    def register_component(
        self, component_id: str, component: Any, failover_group: str, is_primary: bool = False,
        failover_mode: str | None = None,
    ) -> None:
        """Add ``component`` to ``failover_group`` (created with ``failover_mode`` if new).

        active_passive: the member registered with ``is_primary`` (else the first) is preferred.
        n_plus_1: members with ``is_primary`` are in service, the others are spares.
        """
        group = self.groups.get(failover_group)
        if group is None:
            group = self.configure_group(failover_group, failover_mode or "active_passive")
        elif failover_mode is not None and failover_mode != group.mode:
            raise GroupConfigError(f"failover group {failover_group!r} is {group.mode}, not {failover_mode}")
        if component_id in group.members:
            raise GroupConfigError(f"failover group {failover_group!r} already has a member {component_id!r}")
        group.members[component_id] = Member(component_id, component, is_primary)
        if not group.started:
            self._initial_serving(group)
        elif group.mode == "cluster":
            # A member joining a running cluster: it starts unproven (healthy after recover_after
            # good probes) and is put in service then if a slot is free.
            member = group.members[component_id]
            member.healthy, member.oks = False, 0
            self.log.info("failover_member_joined", group=group.name, member=component_id)
        else:
            self._initial_serving(group)

    async def add_member(self, group: str, member_id: str, component: Any) -> None:
        """A member joins a running cluster: recorded now, in service once ``recover_after`` good
        probes prove it healthy and a slot is free."""
        g = self._group(group)
        self.register_component(member_id, component, group)
        await self._emit(g, None, None, f"{member_id} joined (in service once healthy)", None)

    async def remove_member(self, group: str, member_id: str, cause: str = "left the group") -> None:
        """Take ``member_id`` out of ``group`` (a member leaving a cluster); recorded like a switch.
        A serving member is replaced by the next healthy one, as if it had failed."""
        g = self._group(group)
        if member_id not in g.members:
            raise GroupConfigError(f"failover group {group!r} has no member {member_id!r} (members: {', '.join(g.members)})")
        if len(g.members) <= 1:
            raise GroupConfigError(f"failover group {group!r}: its last member cannot leave")
        member = g.members[member_id]
        if member.healthy:
            member.healthy = False
            await self._rebalance(g, member, cause)
        if member_id in g.serving:
            g.serving.remove(member_id)
            await self._emit(g, member_id, None, cause, None)
        del g.members[member_id]
        g.credit.pop(member_id, None)
        self.log.info("failover_member_left", group=group, member=member_id, cause=cause)
        if g.mode == "cluster":
            await check_minimum(self, g)

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
        self._listeners.append(listener)

    # -- running -----------------------------------------------------------------------------
    async def start(self, tg: TaskGroup) -> None:
        for group in self.groups.values():
            if group.mode == "n_plus_1" and not group.serving:
                raise GroupConfigError(f"failover group {group.name!r}: n_plus_1 needs at least one primary (in-service) member")
            group.started = True
            tg.start_soon(self._loop, group, name=f"failover:{group.name}")

    async def stop(self) -> None:
        self._stopping.set()

    async def _loop(self, group: Group) -> None:
        while not self._stopping.is_set():
            with anyio.move_on_after(group.check_interval):
                await self._stopping.wait()
            if self._stopping.is_set():
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
            await self._observe(group, member, ok, detail)

    async def _probe(self, member: Member) -> tuple[bool, str]:
        target = _target(member.component)
        check = getattr(target, "check", None)
        probe = getattr(target, "is_healthy", None)
        try:
            with anyio.fail_after(self.probe_timeout):
                if callable(check):
                    result = await check()
                    if isinstance(result, HealthResult):
                        return result.status != HealthStatus.UNHEALTHY, result.detail
                    return bool(result), ""
                if callable(probe):
                    value = probe()
                    if inspect.isawaitable(value):
                        value = await value
                    return bool(value), ""
        except TimeoutError:
            return False, f"probe timed out after {self.probe_timeout:g}s"
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, ""

    async def report_failure(self, group: str, member_id: str, cause: str) -> None:
        """A caller saw ``member_id`` fail; counts like a failed probe."""
        g = self._group(group)
        await self._observe(g, g.members[member_id], False, cause)

    async def report_success(self, group: str, member_id: str) -> None:
        g = self._group(group)
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
        """Decide who serves after ``changed`` became healthy or unhealthy."""
        if group.mode == "active_passive":
            active = group.members[group.serving[0]]
            if not changed.healthy and changed.id == active.id:
                replacement = self._first_healthy(group, exclude={active.id})
                if replacement is not None:
                    await self._switch(group, active.id, replacement.id, cause, changed.failing_since)
            elif changed.healthy and changed.is_primary and group.auto_failback and active.id != changed.id:
                await self._switch(group, active.id, changed.id, "failback: primary healthy again", changed.recovering_since)
            elif changed.healthy and not active.healthy:
                await self._switch(group, active.id, changed.id, f"{changed.id} recovered while {active.id} is down", active.failing_since)
        elif group.mode == "active_active":
            if not changed.healthy and changed.id in group.serving:
                group.serving.remove(changed.id)
                await self._emit(group, changed.id, None, cause, changed.failing_since)
            elif changed.healthy and changed.id not in group.serving:
                group.serving = [m for m in group.members if m in group.serving or m == changed.id]
                await self._emit(group, None, changed.id, cause, changed.recovering_since)
        elif group.mode == "cluster":
            await rebalance_cluster(self, group, changed, cause)
        else:
            await rebalance_n_plus_1(self, group, changed, cause)

    def group_healthy(self, group: str) -> bool:
        """cluster: at least ``min_healthy`` members healthy; other modes: one serving member healthy."""
        g = self._group(group)
        if g.mode == "cluster":
            return sum(1 for m in g.members.values() if m.healthy) >= g.min_healthy
        return any(g.members[m].healthy for m in g.serving)

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

    async def _emit(self, group: Group, from_id: str | None, to_id: str | None, cause: str, since: float | None) -> None:
        duration = None if since is None else max(0.0, self.clock() - since)
        event = SwitchEvent(
            group=group.name, mode=group.mode, from_member=from_id, to_member=to_id, cause=cause,
            at=self.wall(), duration=duration,
        )
        self.history.append(event)
        self.log.warning("failover_switch", group=group.name, mode=group.mode, from_member=from_id, to_member=to_id, cause=cause, duration_s=duration)
        await self.monitor.record(
            FailoverRecord(kind="group", group=group.name, from_member=from_id, to_member=to_id, cause=cause, at=event.at, duration=duration)
        )
        for listener in list(self._listeners):
            try:
                outcome = listener(event)
                if outcome is not None:
                    await outcome
            except Exception as exc:
                self.log.error("failover_listener_failed", group=group.name, error=f"{type(exc).__name__}: {exc}")

    # -- routing -----------------------------------------------------------------------------
    def _group(self, name: str) -> Group:
        group = self.groups.get(name)
        if group is None:
            raise UnknownGroupError(name, list(self.groups))
        return group

    def active_id(self, group: str) -> str:
        """The member the next call of ``group`` goes to (round robin where several serve)."""
        g = self._group(group)
        serving = [m for m in g.serving if g.members[m].healthy]
        if not serving:
            raise NoHealthyMemberError(g.name, list(g.members))
        if g.mode == "active_passive":
            return serving[0]
        if g.mode in ("active_active", "cluster"):
            return pick(g, serving)
        g.rr = (g.rr + 1) % len(serving)
        return serving[g.rr]

    def active(self, group: str) -> Any:
        """The component the next call of ``group`` goes to (the kernel component's object)."""
        g = self._group(group)
        return _target(g.members[self.active_id(group)].component)

    async def call(self, group: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """``await fn(member)`` on the active member; a raise counts as a failure of that member
        (and is re-raised: whether to retry is the caller's decision)."""
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
        current = from_member or g.serving[0]
        if current not in g.serving:
            raise GroupConfigError(f"failover group {group!r}: {current!r} is not serving (serving: {', '.join(g.serving)})")
        if to is None:
            target = self._first_healthy(g, exclude=set(g.serving), prefer_spares=g.mode in ("n_plus_1", "cluster"))
            if target is None:
                raise NoHealthyMemberError(group, [m for m in g.members if m not in g.serving])
            to = target.id
        if to not in g.members:
            raise GroupConfigError(f"failover group {group!r} has no member {to!r} (members: {', '.join(g.members)})")
        began = self.clock()
        if g.mode == "active_passive":
            g.serving = [to]
        else:
            g.serving[g.serving.index(current)] = to
        await self._emit(g, current, to, cause, began)
        return self.history[-1]

    def status(self) -> dict[str, Any]:
        return {
            name: {
                "mode": g.mode,
                "serving": list(g.serving),
                "balance": g.balance,
                "group_healthy": self.group_healthy(name),
                **({"active": g.active, "min_healthy": g.min_healthy} if g.mode == "cluster" else {}),
                "members": {
                    m.id: {"healthy": m.healthy, "primary": m.is_primary, "detail": m.last_detail,
                           "in_flight": m.in_flight}
                    for m in g.members.values()
                },
            }
            for name, g in self.groups.items()
        }

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "failover", "groups": {n: g.mode for n, g in self.groups.items()}}
