"""What a failover group is made of: its mode, members, who serves, and the events it emits.

The :class:`hrkernel.ha.failover.FailoverManager` owns the behaviour; this module holds the data
and the checks of a group's settings, so both the manager's API and ``[ha.groups.<name>]`` refuse
the same bad combinations with the same words.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgspec

from hrkernel.ha.balance import BALANCES, Balancer
from hrkernel.types import HealthResult, HealthStatus


class FailoverMode(enum.StrEnum):
    """A group's mode; equal to its plain string, so config and callers may use either."""

    ACTIVE_PASSIVE = "active_passive"
    ACTIVE_ACTIVE = "active_active"
    N_PLUS_1 = "n_plus_1"
    CLUSTER = "cluster"


MODES = tuple(m.value for m in FailoverMode)


class Change(enum.StrEnum):
    """What a :class:`SwitchEvent` records."""

    SWITCH = "switch"
    """A serving slot moved from ``from_member`` to ``to_member``."""
    ACTIVATE = "activate"
    """``to_member`` started serving; nobody stopped."""
    DEACTIVATE = "deactivate"
    """``from_member`` stopped serving; nobody took its place."""
    JOIN = "join"
    """``to_member`` joined the group (serving or not: an ``activate`` follows if it serves)."""
    LEAVE = "leave"
    """``from_member`` left the group (a ``switch`` or ``deactivate`` follows if it served)."""


class SwitchEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A change of a group's membership or of who serves (see :class:`Change`)."""

    group: str
    mode: str
    from_member: str | None
    to_member: str | None
    cause: str
    at: float
    duration: float | None
    change: str = Change.SWITCH.value


class GroupHealthChange(msgspec.Struct, frozen=True, kw_only=True):
    """A group became healthy or unhealthy: whether enough of its serving members are healthy
    (``min_active`` in cluster mode, one in the other modes)."""

    group: str
    mode: str
    healthy: bool
    serving: int
    """Healthy members serving now."""
    needed: int
    detail: str
    at: float


@dataclass
class Member:
    id: str
    component: Any
    is_primary: bool
    weight: int = 1
    healthy: bool = True
    fails: int = 0
    oks: int = 0
    failing_since: float | None = None
    recovering_since: float | None = None
    last_detail: str = ""
    in_flight: int = 0
    """Calls through ``FailoverManager.call`` running on this member now (least_loaded)."""


@dataclass
class Group:
    name: str
    mode: str
    auto_failback: bool = True
    spares: int = 1
    fail_after: int = 2
    recover_after: int = 2
    check_interval: float = 1.0
    active: int = 0
    """cluster: how many members serve at once (k of n)."""
    min_active: int = 0
    """cluster: fewest healthy serving members for the group to count as healthy."""
    balancer: Balancer = field(default_factory=Balancer)
    members: dict[str, Member] = field(default_factory=dict)
    serving: list[str] = field(default_factory=list)
    """active_passive: [the active]; n_plus_1: the in-service members; active_active: healthy
    members; cluster: up to ``active`` healthy members, in the order they took a slot."""
    healthy: bool = True

    def needed(self) -> int:
        """Healthy serving members the group needs to count as healthy."""
        return self.min_active if self.mode == FailoverMode.CLUSTER else 1

    def healthy_serving(self) -> list[Member]:
        return [self.members[m] for m in self.serving if self.members[m].healthy]

    def status(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "mode": self.mode,
            "balance": self.balancer.policy,
            "healthy": self.healthy,
            "serving": list(self.serving),
            "members": {
                m.id: {
                    "healthy": m.healthy, "primary": m.is_primary, "serving": m.id in self.serving,
                    "weight": m.weight, "in_flight": m.in_flight, "detail": m.last_detail,
                }
                for m in self.members.values()
            },
        }
        if self.mode == FailoverMode.CLUSTER:
            entry["active"], entry["min_active"] = self.active, self.min_active
        return entry


def target(component: Any) -> Any:
    """The object behind a kernel PluginComponent, or the component itself."""
    return getattr(component, "obj", component)


async def probe_member(member: Member, timeout: float) -> tuple[bool, str]:
    """Probe one member: ``check()`` (a HealthResult or a truthy value), else ``is_healthy()``
    (sync or async), else healthy. A raise or a probe slower than ``timeout`` is a failure."""
    obj = target(member.component)
    check = getattr(obj, "check", None)
    probe = getattr(obj, "is_healthy", None)
    try:
        with anyio.fail_after(timeout):
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
        return False, f"probe timed out after {timeout:g}s"
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


def group_settings_problem(
    mode: str, *, active: int | None, min_active: int | None, balance: str, weights: Mapping[str, int],
) -> tuple[str | tuple[str, ...], str] | None:
    """The first bad combination of a group's settings as ``(key, message)``, or None.

    Shared by :meth:`FailoverManager.configure_group` and ``[ha.groups.<name>]`` validation.
    """
    if mode not in MODES:
        return "mode", f"{mode!r} is not one of {', '.join(MODES)}"
    if balance not in BALANCES:
        return "balance", f"{balance!r} is not one of {', '.join(BALANCES)}"
    if mode == FailoverMode.CLUSTER:
        if active is None:
            return "active", "cluster mode needs `active`: how many members serve at once"
        if active < 1:
            return "active", f"must be >= 1, found {active}"
        if min_active is not None and not 1 <= min_active <= active:
            return "min_active", f"must be between 1 and active ({active}), found {min_active}"
    else:
        for key, value in (("active", active), ("min_active", min_active)):
            if value is not None:
                return key, f"only a cluster group has {key} (this group is {mode})"
    if mode == FailoverMode.ACTIVE_PASSIVE and balance != "round_robin":
        return "balance", "an active_passive group has one serving member: there is nothing to balance"
    if weights and balance != "weighted":
        return "weights", f"weights apply only with balance = \"weighted\" (this group balances {balance})"
    for member, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            return ("weights", member), f"must be a whole number >= 1, found {weight!r}"
    return None
