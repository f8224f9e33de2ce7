"""The alert manager: dedup, routing, grouping, throttling, silences, inhibition, history.

Grouping follows Prometheus Alertmanager. Per channel, alerts with the same ``group_by`` labels
form a group. A new group waits ``group_wait`` before its first notification so related alerts
arrive together; later changes (new alerts, resolutions) are batched and sent at most every
``group_interval``; a group with nothing new re-sends its firing, unacknowledged alerts every
``repeat_interval``. A channel over its ``max_per_minute`` budget keeps the changes pending in the
group, so they go into the next digest instead of being dropped.

``send_alert`` only updates memory and queues work: delivery (per channel, behind its breaker
and retry) and history writes (DuckDB, in a worker thread) happen in background tasks.

Why this module is over 500 lines: it is one idea, the manager's alert lifecycle (fire, group,
notify, resolve, acknowledge, silence) over one shared state; delivery (``delivery.py``), events
and config already live beside it, and splitting the lifecycle would spread one invariant (what
a group has sent) across modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from hrkernel.alerts.clock import Clock, SystemClock
from hrkernel.alerts.config import AlertsSection, ChannelRouting
from hrkernel.alerts.delivery import Breaker, ChannelRuntime, retry_policy, run_worker
from hrkernel.alerts.grouping import Group, Member
from hrkernel.alerts.history import History
from hrkernel.alerts.rules import OpenAlert, Silence, Suppressor, fingerprint, new_id, parse_until
from hrkernel.alerts.types import Alert, AlertLevel, AlertSource, Notification
from hrkernel.lifecycle import Component
from hrkernel.logging import Redactor, get_logger


@dataclass
class ChannelSpec:
    """A channel object to deliver to, with its routing (used when not built from config)."""

    obj: Any
    routing: ChannelRouting = field(default_factory=ChannelRouting)
    type: str = ""


class AlertSystem(Component):
    """Raise, deduplicate, route and deliver alerts; keep their history."""

    name = "alerts"

    def __init__(
        self,
        config: AlertsSection | None = None,
        *,
        channels: Mapping[str, ChannelSpec] | None = None,
        data_dir: str | Path = ".hrkernel",
        clock: Clock | None = None,
        instance_id: str = "",
        secrets: Iterable[str] = (),
    ) -> None:
        self.config = config or AlertsSection()
        # Alert text reaches channels, the history and other people's phones: configured secret
        # values (``LoadedConfig.secrets``: whole values and each variable a secret is built
        # from, on its own) and credential-looking context keys are masked first.
        self._redact = Redactor(secrets)
        self.instance_id = self._redact(None, "alert", {"instance": instance_id})["instance"]
        self.clock: Clock = clock or SystemClock()
        self.log = get_logger("hrkernel.alerts")
        self.history = History(Path(data_dir) / self.config.history_file)
        if channels is None:
            from hrkernel.alerts.build import channels_from_config

            channels = channels_from_config(self.config)
        c = self.config
        self.channels: dict[str, ChannelRuntime] = {
            cid: ChannelRuntime(
                id=cid,
                type=spec.type or type(spec.obj).__name__,
                obj=spec.obj,
                routing=spec.routing,
                breaker=Breaker(self.clock, c.breaker_failures, float(c.breaker_reset), cid),
                queue_size=c.queue_size,
                timeout=float(spec.routing.timeout or c.channel_timeout),
                retry=retry_policy(cid, c.retry_attempts, float(c.retry_delay)),
            )
            for cid, spec in channels.items()
        }
        self.groups: dict[str, dict[str, Group]] = {cid: {} for cid in self.channels}
        self.open: dict[str, OpenAlert] = {}
        """Latest instance per fingerprint."""
        self.suppressor = Suppressor(rules=list(c.inhibit))
        for s in c.silences:
            self.suppressor.silences.append(
                Silence(new_id(), dict(s.matchers), parse_until(s.until), s.who, s.why)
            )
        self.history_errors = 0
        self._ops: list[tuple[str, dict[str, Any]]] = []
        self._ops_ready = anyio.Event()
        self._writing = False
        self._wake = anyio.Event()
        self._stopping = False
        self._started = False
        self._stack: AsyncExitStack | None = None
        self._tg: TaskGroup | None = None
        self.watch_health: tuple[Any, float] | None = None
        self._listeners: list[Callable[[Alert], None]] = []
        """``(find_component, interval)``: poll the kernel's health monitor (set by the builder)."""
        self.ack_refresh = 30.0
        """Seconds between looks for acknowledgements made by another process (the CLI)."""

    @property
    def running(self) -> bool:
        return self._started and not self._stopping

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, tg: TaskGroup | None = None) -> None:
        """Start channels and background tasks (in ``tg``, or in a task group of its own).

        Without ``tg``, call :meth:`stop` from the same task (or use ``async with``).
        """
        if self._started:
            return
        if tg is None:
            self._stack = AsyncExitStack()
            tg = await self._stack.enter_async_context(anyio.create_task_group())
        self._tg = tg
        for rt in self.channels.values():
            start = getattr(rt.obj, "start", None)
            if start is not None:
                await start()
        self._started = True
        for rt in self.channels.values():
            tg.start_soon(self._worker, rt, name=f"alerts:{rt.id}")
        tg.start_soon(self._scheduler, name="alerts:scheduler")
        tg.start_soon(self._writer, name="alerts:history")
        tg.start_soon(self._refresh_acks_loop, name="alerts:acks")
        if self.watch_health is not None:
            from hrkernel.alerts.events import KernelAlerts

            find, interval = self.watch_health
            tg.start_soon(KernelAlerts(self).watch_health, find, interval, name="alerts:health")
        self.log.info("alerts_started", channels={k: v.type for k, v in self.channels.items()})

    async def stop(self, drain_timeout: float = 3.0) -> None:
        """Flush pending groups now, give queues ``drain_timeout`` to empty, then close."""
        if not self._started or self._stopping:
            return
        self._flush_all()
        await self.wait_idle(timeout=drain_timeout, raise_on_timeout=False)
        self._stopping = True
        for rt in self.channels.values():
            rt.send.close()
        self._wake.set()
        self._ops_ready.set()
        if self._tg is not None and self._stack is None:
            # The kernel's task group: our tasks end on their own (streams closed, flags set).
            pass
        elif self._tg is not None:
            self._tg.cancel_scope.cancel()
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
        await self._write_pending()
        for rt in self.channels.values():
            if rt.pending:
                self.log.error("alerts_undelivered_at_stop", channel=rt.id, notifications=rt.pending)
            for method in ("aclose", "stop"):
                fn = getattr(rt.obj, method, None)
                if fn is not None:
                    try:
                        await fn()
                    except Exception as exc:
                        self.log.warning("alert_channel_close_failed", channel=rt.id, error=f"{type(exc).__name__}: {exc}")
                    break
        self._started = False
        self.log.info("alerts_stopped", **self.stats())

    async def __aenter__(self) -> AlertSystem:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "alerts", "channels": {k: v.type for k, v in self.channels.items()},
                "history": str(self.history.path)}

    # -- raising and resolving ------------------------------------------------------------------

    async def send_alert(
        self,
        *,
        source: AlertSource | str,
        level: AlertLevel | str,
        title: str,
        message: str = "",
        context: Mapping[str, Any] | None = None,
        fingerprint_keys: list[str] | None = None,
    ) -> Alert:
        """Raise an alert; returns at once with its (deduplicated) snapshot."""
        return self.send_alert_nowait(source=source, level=level, title=title, message=message,
                                      context=context, fingerprint_keys=fingerprint_keys)

    def send_alert_nowait(
        self,
        *,
        source: AlertSource | str,
        level: AlertLevel | str,
        title: str,
        message: str = "",
        context: Mapping[str, Any] | None = None,
        fingerprint_keys: list[str] | None = None,
    ) -> Alert:
        """Synchronous :meth:`send_alert`, for callbacks that cannot await (breaker listeners)."""
        source = AlertSource(source)
        level = AlertLevel(level)
        clean = self._redact(None, "alert", {"title": title, "message": message, "context": dict(context or {})})
        title, message, ctx = clean["title"], clean["message"], clean["context"]
        keys = self.config.fingerprint_keys if fingerprint_keys is None else fingerprint_keys
        fp = fingerprint(source, title, ctx, keys)
        now = self.clock.now()
        current = self.open.get(fp)
        if current is not None and current.status == "firing" and now - current.last_seen <= self.config.dedup_window:
            current.count += 1
            current.last_seen = now
            current.message = message or current.message
            current.context = ctx
            if level > current.level:  # escalation is news: tell every channel again
                current.level = level
                self._route(current, renotify=True)
            alert = current
        else:
            if current is not None and current.status == "firing":
                current.status = "expired"
                self._record(current)
                self._forget(current)
            alert = OpenAlert(new_id(), fp, source, level, title, message, ctx, now, now)
            self.open[fp] = alert
            self._route(alert)
        # Silences and inhibition are evaluated by process_due (which records changes), so a
        # storm of alerts costs O(1) each here.
        self._record(alert)
        self._wake.set()
        return alert.snapshot()

    def resolve(
        self,
        *,
        source: AlertSource | str | None = None,
        title: str | None = None,
        context: Mapping[str, Any] | None = None,
        fingerprint_keys: list[str] | None = None,
        fingerprint: str | None = None,
    ) -> Alert | None:
        """Resolve the open alert (by fingerprint, or by what identified it when raised).

        Channels that were told it fired are told it resolved, with the group's next flush.
        Returns the resolved alert, or None when no such alert is firing.
        """
        if fingerprint is None:
            if source is None or title is None:
                raise ValueError("resolve() needs fingerprint= or source= and title=")
            keys = self.config.fingerprint_keys if fingerprint_keys is None else fingerprint_keys
            clean = self._redact(None, "alert", {"title": title, "context": dict(context or {})})
            fingerprint = _fingerprint(AlertSource(source), clean["title"], clean["context"], keys)
        alert = self.open.get(fingerprint)
        if alert is None or alert.status != "firing":
            return None
        now = self.clock.now()
        alert.status = "resolved"
        alert.resolved_at = now
        self._record(alert)
        # Channels that were told it fired hear of the resolution with the group's next flush.
        self._wake.set()
        return alert.snapshot()

    # -- acknowledgement, silences, queries -----------------------------------------------------

    async def acknowledge(self, alert_id: str, who: str, note: str = "") -> list[str]:
        """Acknowledge by alert id or fingerprint: no more repeats; recorded in history."""
        for alert in self.open.values():
            if alert_id in (alert.id, alert.fingerprint):
                alert.ack_by = who
        await self._write_pending()
        return await anyio.to_thread.run_sync(
            lambda: self.history.acknowledge(alert_id, who, note, at=self.clock.now())
        )

    async def refresh_acknowledgements(self) -> None:
        """Pick up acknowledgements made elsewhere (``hrkernel alerts ack`` in another process)."""
        firing = {a.id: a for a in self.open.values() if a.status == "firing" and a.ack_by is None}
        if not firing:
            return
        await self._write_pending()
        acked = await anyio.to_thread.run_sync(self.history.acknowledged, list(firing))
        for alert_id, who in acked.items():
            firing[alert_id].ack_by = who

    def silence(self, matchers: dict[str, Any], until: str | float | datetime, who: str, why: str) -> Silence:
        """Mute alerts matching ``matchers`` until ``until``."""
        if not who or not why:
            raise ValueError("a silence needs who set it and why")
        silence = Silence(new_id(), dict(matchers), parse_until(until), who, why, self.clock.now())
        self.suppressor.silences.append(silence)
        self.log.info("alert_silence_added", id=silence.id, matchers=silence.matchers, until=silence.until, who=who, why=why)
        return silence

    def unsilence(self, silence_id: str) -> bool:
        before = len(self.suppressor.silences)
        self.suppressor.silences = [s for s in self.suppressor.silences if s.id != silence_id]
        self._wake.set()
        return len(self.suppressor.silences) != before

    async def query(self, **filters: Any) -> list[dict[str, Any]]:
        """History rows (see :meth:`History.query`), after pending writes landed."""
        await self._write_pending()
        return await anyio.to_thread.run_sync(lambda: self.history.query(**filters))

    def stats(self) -> dict[str, Any]:
        return {
            "open": sum(1 for a in self.open.values() if a.status == "firing"),
            "history_errors": self.history_errors,
            "channels": {
                cid: {
                    "delivered": rt.stats.delivered,
                    "failed_attempts": rt.stats.failed_attempts,
                    "dropped": rt.stats.dropped,
                    "overflow": rt.stats.overflow,
                    "queued": rt.queued,
                    "breaker": rt.breaker.state,
                }
                for cid, rt in self.channels.items()
            },
        }

    # -- grouping and flushing ------------------------------------------------------------------

    def _route(self, alert: OpenAlert, renotify: bool = False) -> None:
        now = self.clock.now()
        labels = alert.labels()
        key = ",".join(f"{k}={labels.get(k, '')}" for k in self.config.group_by)
        for cid, rt in self.channels.items():
            if not rt.accepts(alert.source, alert.level):
                continue
            group = self.groups[cid].get(key)
            if group is None:
                group = self.groups[cid][key] = Group(key, now)
            member = group.members.get(alert.fingerprint)
            if member is None or member.alert is not alert:
                group.members[alert.fingerprint] = Member(alert)
            elif renotify:
                member.notified = "none"

    def _forget(self, alert: OpenAlert) -> None:
        for groups in self.groups.values():
            for group in groups.values():
                member = group.members.get(alert.fingerprint)
                if member is not None and member.alert is alert:
                    del group.members[alert.fingerprint]

    def process_due(self) -> float | None:
        """Send whatever is due now; returns the clock time of the next thing due (or None)."""
        now = self.clock.now()
        self.suppressor.prune(now)
        firing = [a for a in self.open.values() if a.status == "firing"]
        reasons = self.suppressor.reasons(firing, firing, now)
        for alert in firing:
            if alert.suppressed != reasons[alert.id]:
                alert.suppressed = reasons[alert.id]
                self._record(alert)
        next_due: float | None = None
        for cid, rt in self.channels.items():
            for key in list(self.groups[cid]):
                due = self._process_group(rt, self.groups[cid][key], now)
                if due is not None:
                    next_due = due if next_due is None else min(next_due, due)
                if not self.groups[cid][key].members:
                    del self.groups[cid][key]
        return next_due

    def _process_group(self, rt: ChannelRuntime, group: Group, now: float, force: bool = False) -> float | None:
        """Send what the group has to say if it is due; returns when to look at it again."""
        batch = group.batch(self.config, now, force=force)
        if not batch.members:
            group.cleanup()
            return batch.due if group.members else None
        wait = rt.take_token(now)
        if wait > 0:  # throttled: the changes stay pending and go into the next digest
            return now + wait
        notification = Notification(
            kind=batch.kind,
            id=new_id(),
            channel=rt.id,
            group=group.key,
            alerts=[m.alert.snapshot() for m in batch.members],
            dashboard_url=self.config.dashboard_url,
            instance_id=self.instance_id,
        )
        group.mark_sent(batch.members, now)
        self._enqueue(rt, notification)
        group.cleanup()
        return now + self.config.group_interval if group.members else None

    def _flush_all(self) -> None:
        now = self.clock.now()
        for cid, rt in self.channels.items():
            for group in list(self.groups[cid].values()):
                if any(m.needs_notify() for m in group.members.values()):
                    self._process_group(rt, group, now, force=True)

    def _enqueue(self, rt: ChannelRuntime, notification: Notification) -> None:
        try:
            rt.send.send_nowait(notification)
            rt.pending += 1
        except anyio.WouldBlock:
            rt.stats.overflow += 1
            self.log.error("alert_queue_overflow", channel=rt.id, queue_size=rt.queue_size,
                           overflow=rt.stats.overflow, alerts=[a.id for a in notification.alerts])
            self._record_delivery(rt, notification, False, f"queue full ({rt.queue_size}): not delivered")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._record_delivery(rt, notification, False, "alert system stopped before delivery")

    # -- background tasks -----------------------------------------------------------------------

    async def _scheduler(self) -> None:
        while not self._stopping:
            self._wake = anyio.Event()
            next_due = self.process_due()
            delay = 60.0 if next_due is None else max(0.0, next_due - self.clock.now())
            if delay == 0.0:
                await anyio.sleep(0)
                continue
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._sleep_then_cancel, min(delay, 60.0), tg)
                await self._wake.wait()
                tg.cancel_scope.cancel()

    async def _sleep_then_cancel(self, delay: float, tg: TaskGroup) -> None:
        await self.clock.sleep(delay)
        tg.cancel_scope.cancel()

    async def _refresh_acks_loop(self) -> None:
        while not self._stopping:
            await self.clock.sleep(self.ack_refresh)
            try:
                await self.refresh_acknowledgements()
            except Exception as exc:  # the history must never stop alerting
                self.log.warning("alert_ack_refresh_failed", error=f"{type(exc).__name__}: {exc}")

    async def _worker(self, rt: ChannelRuntime) -> None:
        await run_worker(rt, self.clock, delay=float(self.config.retry_delay), record=self._record_delivery, log=self.log)

    def _record(self, alert: OpenAlert) -> None:
        self._ops.append(("alert", alert.row()))
        self._ops_ready.set()
        for listener in self._listeners:
            try:
                listener(alert.snapshot())
            except Exception as exc:  # an observer must never break raising an alert
                self.log.error("alert_listener_failed", error=f"{type(exc).__name__}: {exc}")

    def add_listener(self, listener: Callable[[Alert], None]) -> None:
        """``listener(alert)`` is called (synchronously: keep it cheap) with a snapshot every time
        an alert is recorded: fired, repeated, escalated, resolved, expired."""
        self._listeners.append(listener)

    def _record_delivery(self, rt: ChannelRuntime, notification: Notification, ok: bool, reason: str | None) -> None:
        at = self.clock.now()
        if reason:  # a channel's failure text may echo what it sent (a header, a URL): mask it too
            reason = self._redact(None, "delivery", {"reason": reason})["reason"]
        for alert in notification.alerts:
            self._ops.append(("delivery", {"alert_id": alert.id, "channel": rt.id, "kind": notification.kind,
                                           "at": at, "ok": ok, "reason": reason}))
        self._ops_ready.set()

    async def _writer(self) -> None:
        while not self._stopping:
            await self._ops_ready.wait()
            self._ops_ready = anyio.Event()
            await self._write_pending()

    async def _write_pending(self) -> None:
        while self._writing:
            await anyio.sleep(0.005)
        if not self._ops:
            return
        batch, self._ops = self._ops, []
        self._writing = True
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.history.apply, batch)
        except Exception as exc:  # the history must never stop alerting
            self.history_errors += 1
            self.log.error("alert_history_write_failed", error=f"{type(exc).__name__}: {exc}", ops=len(batch))
        finally:
            self._writing = False

    async def wait_idle(self, timeout: float = 5.0, *, raise_on_timeout: bool = True) -> bool:
        """Process what is due, then wait (real time) until queues are empty and history written."""
        self.process_due()
        with anyio.move_on_after(timeout) as scope:
            while True:
                busy = any(rt.pending for rt in self.channels.values())
                if not busy and not self._ops and not self._writing:
                    break
                if not busy and self._ops:
                    await self._write_pending()
                    continue
                await anyio.sleep(0.005)
        if scope.cancelled_caught and raise_on_timeout:
            raise TimeoutError(f"alert system still busy after {timeout:g}s: {self.stats()}")
        return not scope.cancelled_caught


def _fingerprint(source: str, title: str, context: dict[str, Any], keys: list[str]) -> str:
    return fingerprint(source, title, context, keys)
