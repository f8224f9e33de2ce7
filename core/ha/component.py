"""The kernel's HA component: the lease, leadership transitions, failover groups, their history.

The composition root (:mod:`hrkernel.kernel.assembly`) hands it to the parts that need it (the
orders component gets it as its lease view) and hands it the bus, the alert system and the
lookup of failover-group members. Parts use:

- :meth:`HAComponent.may_trade` (alias ``holds_with_margin``) — instant: leader with margin *and*
  the takeover (start-up reconciliation) of this tenure finished. Check it before preparing an
  order. Pass the component itself wherever a lease view is expected.
- :meth:`HAComponent.fence_check` — the last hop, right before an order leaves: ``may_trade()``
  plus one atomic round trip to the lease backend. Send :attr:`HAComponent.token` with the order.
- :meth:`HAComponent.add_takeover_step` — ``async step(token)`` awaited on every gain before
  trading is allowed (reconciliation registers here). A step that raises gives the lease up.
- :meth:`HAComponent.add_listener` — ``listener(event)`` after a takeover completed (gained)
  and at once on loss (trading already stopped), e.g. for the open-orders policy.

Leadership changes and health status changes are also published on the bus (topics
``leadership`` and ``health``), best effort, in the background; group switches and slow
failovers raise alerts, and a failover group with too few healthy serving members raises an
error alert, resolved when it has enough again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import redis.exceptions
from anyio.abc import TaskGroup

from hrkernel.ha.config import HASection
from hrkernel.ha.errors import GroupConfigError, HAError
from hrkernel.ha.failover import FailoverManager, GroupHealthChange, SwitchEvent
from hrkernel.ha.failover_time import FailoverRecord, FailoverTimeMonitor
from hrkernel.ha.lease import Clock, LeadershipEvent, Lease, LocalLease
from hrkernel.ha.probes import RedisReachable, probes
from hrkernel.ha.store import HAStore
from hrkernel.lifecycle import Component
from hrkernel.logging import get_logger

if TYPE_CHECKING:
    from hrkernel.bus.base import Bus
    from hrkernel.ha.health import HealthChange, HealthMonitor

TOPIC_LEADERSHIP = "leadership"
"""Bus topic of :class:`hrkernel.bus.events.LeadershipEvent` (gained after takeover, lost)."""
TOPIC_HEALTH = "health"
"""Bus topic of :class:`hrkernel.bus.events.HealthEvent` (reported status changes)."""

__all__ = ["AlertSink", "HAComponent", "RedisReachable", "probes"]

TakeoverStep = Callable[[int], Awaitable[None]]
Listener = Callable[[LeadershipEvent], Awaitable[None] | None]

ORDERS_FLOWING_WINDOW = 300.0
"""Seconds after a takeover within which the first accepted order measures the failover."""

_TRANSIENT = (OSError, TimeoutError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
"""Errors of a takeover step that mean "Redis or the network went away", not a bug."""


class AlertSink(Protocol):
    """What HA asks of the alert system (:class:`hrkernel.alerts.manager.AlertSystem`)."""

    @property
    def running(self) -> bool: ...

    def send_alert_nowait(self, *, source: str, level: str, title: str, message: str = ...,
                          context: Mapping[str, Any] | None = ...,
                          fingerprint_keys: list[str] | None = ...) -> Any: ...

    def resolve(self, *, source: str | None = ..., title: str | None = ...,
                context: Mapping[str, Any] | None = ..., fingerprint_keys: list[str] | None = ...) -> Any: ...


class HAComponent(Component):
    name = "ha"

    def __init__(
        self,
        config: HASection,
        instance_id: str,
        *,
        data_dir: Path | None = None,
        lease: Lease | None = None,
        notify: Callable[..., None] | None = None,
        ready: Callable[[], bool] | None = None,
        clock: Clock = time.monotonic,
        bus: Bus | None = None,
        members: Callable[[str], Any] | None = None,
    ) -> None:
        self.config = config
        self.instance_id = instance_id
        self.clock = clock
        self.log = get_logger("hrkernel.ha", instance=instance_id)
        self.lease: Lease = lease if lease is not None else self._make_lease(config, instance_id, clock)
        self.store = HAStore(data_dir / "ha.duckdb") if data_dir is not None else None
        self.failover_monitor = FailoverTimeMonitor(float(config.failover_target), config.failover_stats_window, self.store)
        self.failover = FailoverManager(monitor=self.failover_monitor, clock=clock)
        self.health: HealthMonitor | None = None
        self._notify = notify
        self._ready = ready or (lambda: True)
        self._bus = bus
        """Where leadership and health changes are published (None: nowhere)."""
        self._members = members
        """The part named by a ``[ha.groups.*] components`` entry, or None (see :meth:`start`)."""
        self._alerts: AlertSink | None = None
        self._takeover_steps: list[TakeoverStep] = []
        self._listeners: list[Listener] = []
        self._trading_token: int | None = None
        self._awaiting_first_order: tuple[int, float, float | None, str | None] | None = None
        """After a takeover: (token, clock at the lease gain, lease gap, previous leader) until this
        tenure's first order is accepted by the exchange (see :meth:`order_accepted`)."""
        self._tenure_began_wall: float | None = None
        """Wall-clock time this instance last acquired the lease (the start of its tenure)."""
        self._tg: TaskGroup | None = None
        self._checks: dict[str, Any] = {}
        self.replication: Any = None
        """The :class:`hrkernel.ha.replication.Replicator` of this instance, once the orders
        component (which owns the database) attached it."""
        if config.backend == "redis":
            self._checks["redis_reachable"] = RedisReachable(config.redis_url, float(config.renew_interval) * 4)
        self.lease.add_listener(self._on_lease_event)

    @staticmethod
    def _make_lease(config: HASection, instance_id: str, clock: Clock) -> Lease:
        if config.backend == "local":
            return LocalLease(instance_id, clock=clock)
        from hrkernel.ha.redis_lease import RedisLease

        return RedisLease(
            instance_id, config.redis_url, key_prefix=config.key_prefix, ttl=float(config.lease_ttl),
            renew_interval=float(config.renew_interval), margin=float(config.margin),
            retry_max=float(config.retry_max), admin_token=config.admin_token, clock=clock,
        )

    # -- what other components use ------------------------------------------------------------
    @property
    def token(self) -> int | None:
        return self._trading_token if self.may_trade() else None

    def may_trade(self) -> bool:
        return self._trading_token is not None and self._trading_token == self.lease.token and self.lease.holds_with_margin()

    def holds_with_margin(self) -> bool:
        """Same as :meth:`may_trade`, so this component can stand where a lease is expected
        (the order pipeline's ``LeaseView``) and add the takeover gate to it."""
        return self.may_trade()

    async def fence_check(self) -> bool:
        return self.may_trade() and await self.lease.fence_check() and self.may_trade()

    async def step_down(self, reason: str = "step-down requested") -> None:
        """Give the lease up now so a standby takes over (this instance sits out one TTL)."""
        release = getattr(self.lease, "release", None)
        if release is None:
            raise HAError("this instance uses the local lease: there is no standby to hand over to")
        self._trading_token = None
        await release(reason=reason)

    def is_leader(self) -> bool:
        """This instance holds the lease (whether or not its takeover gate is open yet)."""
        return bool(self.lease.is_leader)

    async def live_standbys(self) -> list[str]:
        """Other running instances that reported themselves standby within one lease TTL (the
        Redis lease's member keys); always empty with the local lease."""
        members = getattr(self.lease, "live_members", None)
        if members is None:
            return []
        return sorted(name for name, role in (await members()).items() if role == "standby")

    def add_takeover_step(self, step: TakeoverStep) -> None:
        self._takeover_steps.append(step)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def replication_enabled(self) -> bool:
        """Whether the journal and ledger are replicated between instances (redis backend)."""
        return self.config.backend == "redis" and self.config.replication

    def attach_replication(self, replicator: Any) -> None:
        self.replication = replicator

    def replication_lag(self) -> dict[str, Any] | None:
        """This instance's replication: ``mode`` (lead / follow / rebuild), ``seconds`` behind the
        leader's commits (0 when caught up), ``entries`` not applied yet, recent delays; None
        without replication."""
        return self.replication.lag() if self.replication is not None else None

    def health_checks(self) -> dict[str, Any]:
        """Checks the health monitor should run for HA (Redis reachable when Redis is used)."""
        return dict(self._checks)

    def attach_alerts(self, alerts: AlertSink) -> None:
        """The alert system (built after HA) raises HA's alerts: group switches, slow failovers."""
        self._alerts = alerts

    def attach_health(self, monitor: HealthMonitor) -> None:
        self.health = monitor
        monitor.add_listener(self._publish_health)

    # -- events on the bus (best effort, never in the way of a transition) --------------------------
    async def _publish(self, topic: str, event: Any, *, inline: bool = False) -> None:
        """Publish in the background, or now (``inline``, bounded) when it must beat shutdown."""
        bus = self._bus
        if bus is None or self._tg is None:
            return

        async def send() -> None:
            try:
                with anyio.fail_after(0.5 if inline else 2.0):
                    await bus.publish(topic, event)
            except Exception as exc:
                self.log.warning("ha_event_not_published", topic=topic, error=f"{type(exc).__name__}: {exc}")

        if inline:
            await send()
        else:
            self._tg.start_soon(send, name=f"ha:publish:{topic}")

    async def _publish_leadership(self, event: LeadershipEvent) -> None:
        from hrkernel.bus.events import LeadershipEvent as BusLeadership

        # A loss is published before returning: at shutdown the bus stops right after HA.
        await self._publish(
            TOPIC_LEADERSHIP,
            BusLeadership(
                time=datetime.fromtimestamp(event.at or time.time(), tz=UTC), instance_id=self.instance_id,
                leader=event.gained, fencing_token=event.token, reason=event.reason,
            ),
            inline=not event.gained,
        )

    async def _publish_health(self, change: HealthChange) -> None:
        from hrkernel.bus.events import HealthEvent

        await self._publish(
            TOPIC_HEALTH,
            HealthEvent(
                time=datetime.fromtimestamp(change.at, tz=UTC), component=change.check,
                status=change.status.value, detail=change.detail,
            ),
        )

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, tg: TaskGroup) -> None:
        self._tg = tg
        if self.store is not None:
            await anyio.to_thread.run_sync(self.store.open)
        self._configure_groups()
        self.failover.add_listener(self._alert_switch)
        self.failover.add_health_listener(self._alert_group_health)
        self.failover_monitor.add_slow_listener(self._alert_slow)
        await self.failover.start(tg)
        await self.lease.start(tg)

    def _alert(self, **alert: Any) -> None:
        """Raise an alert through the kernel's alert manager, when there is one running."""
        alerts = self._alerts
        if alerts is None or not alerts.running:
            return
        try:
            alerts.send_alert_nowait(source="ha", **alert)
        except Exception as exc:  # an alert must never break a failover
            self.log.error("ha_alert_failed", error=f"{type(exc).__name__}: {exc}")

    def _alert_switch(self, event: SwitchEvent) -> None:
        if event.change in ("join", "leave"):
            return  # asked for by whoever called join()/leave(); logged and in the history
        took = "" if event.duration is None else f" after {event.duration:.2f}s"
        self._alert(
            level="warning", title="failover group switched",
            message=f"{event.group}: {event.from_member or '-'} -> {event.to_member or '-'}{took} ({event.cause})",
            context={
                "group": event.group, "from": event.from_member, "to": event.to_member, "cause": event.cause,
                "change": event.change,
            },
            fingerprint_keys=["group"],
        )

    def _alert_group_health(self, change: GroupHealthChange) -> None:
        """An error alert while a group has too few healthy serving members, resolved when it
        has enough again (the status says the same: ``groups.<name>.healthy``)."""
        title, context = "failover group unhealthy", {"group": change.group}
        if not change.healthy:
            self._alert(
                level="error", title=title, message=f"{change.group} ({change.mode}): {change.detail}",
                context={**context, "serving": change.serving, "needed": change.needed}, fingerprint_keys=["group"],
            )
            return
        alerts = self._alerts
        if alerts is not None and alerts.running:
            try:
                alerts.resolve(source="ha", title=title, context=context, fingerprint_keys=["group"])
            except Exception as exc:  # an alert must never break a failover
                self.log.error("ha_alert_failed", error=f"{type(exc).__name__}: {exc}")

    def _alert_slow(self, record: FailoverRecord, target: float) -> None:
        self._alert(
            level="error", title="failover slower than target",
            message=f"{record.kind} failover took {record.duration:.2f}s (target {target:g}s): {record.cause}",
            context={"kind": record.kind, "group": record.group, "duration_s": record.duration},
            fingerprint_keys=["kind", "group"],
        )

    def _configure_groups(self) -> None:
        for name, group in self.config.groups.items():
            self.failover.configure_group(
                name, group.mode, auto_failback=group.auto_failback, spares=group.spares,
                fail_after=group.fail_after, recover_after=group.recover_after,
                check_interval=float(group.check_interval), active=group.active, min_active=group.min_active,
                balance=group.balance,
            )
            in_service = len(group.components) - group.spares
            for index, member in enumerate(group.components):
                component = self._members(member) if self._members else None
                if component is None:
                    raise GroupConfigError(f"ha.groups.{name}.components: no component named {member!r} in this kernel")
                primary = index == 0 if group.mode != "n_plus_1" else index < in_service
                self.failover.register_component(
                    member, component, name, is_primary=primary, weight=group.weights.get(member, 1)
                )

    async def stop(self) -> None:
        self._trading_token = None
        await self.failover.stop()
        await self.lease.stop()
        for check in self._checks.values():
            await check.aclose()
        if self.store is not None:
            self.store.close()

    # -- leadership transitions ----------------------------------------------------------------
    async def _on_lease_event(self, event: LeadershipEvent) -> None:
        if event.gained:
            began = self.clock()
            self._tenure_began_wall = time.time()
            if self._tg is not None:
                self._tg.start_soon(self._take_over, event, began, name="ha:takeover")
            else:
                await self._take_over(event, began)
            return
        self._trading_token = None  # first: no order may pass from here on
        self._call_hook("hr_leadership_lost", reason=event.reason)
        await self._publish_leadership(event)
        await self._tell(event)

    async def _take_over(self, event: LeadershipEvent, began: float) -> None:
        token = event.token
        assert token is not None
        while not self._ready():
            await anyio.sleep(0.01)
            if self.lease.token != token:
                return
        for step in list(self._takeover_steps):
            if self.lease.token != token:
                return
            try:
                await step(token)
            except Exception as exc:
                # Redis going away mid-takeover (restarting, cut off) is the weather, not a fault
                # in the step: the lease is given up below and the takeover tried again.
                emit = self.log.warning if isinstance(exc, _TRANSIENT) else self.log.error
                emit("takeover_step_failed", fence=token, step=repr(step), error=f"{type(exc).__name__}: {exc}")
                release = getattr(self.lease, "release", None)
                if release is not None:
                    await release(reason=f"takeover failed: {type(exc).__name__}: {exc}")
                return
        if self.lease.token != token or not self.lease.holds_with_margin():
            return
        self._trading_token = token
        local = self.clock() - began
        duration = None if event.gap is None else event.gap + local
        self.log.info("trading_enabled", fence=token, takeover_s=round(local, 4), failover_s=duration)
        if event.gap is not None or event.previous is not None:
            # A leadership change (not the first leader ever); without the gap (Redis lost the
            # previous holder's last renewal) it is recorded with its duration unknown. This is
            # the lease takeover; the failover proper ends when orders flow (order_accepted).
            self._awaiting_first_order = (token, began, event.gap, event.previous)
            await self.failover_monitor.record(
                FailoverRecord(
                    kind="leadership", at=time.time(), duration=duration,
                    cause="lease acquired" if event.gap is not None else "lease acquired (Redis lost the previous tenure)",
                    from_member=event.previous, to_member=self.instance_id,
                )
            )
        self._call_hook("hr_leadership_gained", fencing_token=token)
        await self._publish_leadership(event)
        await self._tell(event)

    def others_silent_since(self) -> datetime | None:
        """While this instance trades: a moment after which no other instance can have sent an
        order. A predecessor sends only while it holds its lease with margin (its own clock says
        ``last renewal sent + lease_ttl - margin``); its key in Redis expires ``lease_ttl`` after
        that renewal at the earliest, and this tenure began after it expired — so its last send
        was at least ``margin`` before this tenure began. None when not trading."""
        if self._trading_token is None or self._tenure_began_wall is None or self.lease.token != self._trading_token:
            return None
        return datetime.fromtimestamp(self._tenure_began_wall - float(self.config.margin), UTC)

    def order_accepted(self) -> None:
        """The exchange accepted an order placed by this instance. The first one of a tenure that
        began with a takeover ends the failover: recorded as kind ``trading``, from the previous
        leader's last lease renewal (its death, near enough) to now. An order accepted later
        than :data:`ORDERS_FLOWING_WINDOW` after the takeover says the desk was idle, not how
        long failover took: nothing is recorded then."""
        pending = self._awaiting_first_order
        if pending is None:
            return
        self._awaiting_first_order = None
        token, began, gap, previous = pending
        if token != self.lease.token:
            return
        local = self.clock() - began
        if local > ORDERS_FLOWING_WINDOW:
            self.log.info("orders_flowing_after_idle", fence=token, since_takeover_s=round(local, 3))
            return
        duration = None if gap is None else gap + local
        self.log.info("orders_flowing", fence=token, since_takeover_s=round(local, 4), failover_s=duration)
        record = FailoverRecord(kind="trading", at=time.time(), duration=duration,
                                cause="first order accepted by the exchange after a takeover",
                                from_member=previous, to_member=self.instance_id)
        if self._tg is not None:
            self._tg.start_soon(self.failover_monitor.record, record, name="ha:orders-flowing")

    def _call_hook(self, hook: str, **kwargs: Any) -> None:
        if self._notify is not None:
            try:
                self._notify(hook, **kwargs)
            except Exception as exc:
                self.log.error("leadership_hook_failed", hook=hook, error=f"{type(exc).__name__}: {exc}")

    async def _tell(self, event: LeadershipEvent) -> None:
        for listener in list(self._listeners):
            try:
                outcome = listener(event)
                if outcome is not None:
                    await outcome
            except Exception as exc:
                self.log.error("leadership_listener_failed", error=f"{type(exc).__name__}: {exc}")

    # -- reporting -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        lease = self.lease.status()
        return {
            "instance_id": self.instance_id,
            "backend": lease.backend,
            "role": lease.role.value,
            "leader": lease.leader,
            "token": lease.token,
            "lease_expires_in": lease.expires_in,
            "holds_with_margin": lease.holds_with_margin,
            "trading": self.may_trade(),
            "last_error": lease.last_error,
            # Failover ends when orders flow again (SIGKILL → the first order the exchange
            # accepted from the new leader); the lease takeover alone is reported beside it.
            "failover_time": self.failover_monitor.stats("trading"),
            "lease_takeover_time": self.failover_monitor.stats("leadership"),
            "group_failover_time": self.failover_monitor.stats("group"),
            "groups": self.failover.status(),
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": "ha", "backend": self.config.backend,
            "groups": sorted(self.config.groups),
        }
