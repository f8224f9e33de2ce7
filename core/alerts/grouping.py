"""Notification groups on Prometheus Alertmanager's model (internal).

Per channel, alerts with the same ``group_by`` labels form a :class:`Group`. A group's changes
(new firing alerts, resolutions of alerts the channel was told about) are due ``group_wait``
after the group was created, then ``group_interval`` after its last notification; with no
changes, firing unacknowledged alerts are due again ``repeat_interval`` after they were last sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hrkernel.alerts.config import AlertsSection
from hrkernel.alerts.rules import OpenAlert
from hrkernel.alerts.types import NotificationKind


@dataclass
class Member:
    alert: OpenAlert
    notified: str = "none"
    """What this channel was last told about the alert: none | firing | resolved."""
    last_notified: float = 0.0

    def needs_notify(self) -> bool:
        a = self.alert
        if a.status == "firing":
            return self.notified != "firing" and a.suppressed is None
        return a.status == "resolved" and self.notified == "firing"

    def repeatable(self) -> bool:
        a = self.alert
        return a.status == "firing" and self.notified == "firing" and a.ack_by is None and a.suppressed is None


@dataclass
class Batch:
    """What a group has to say now (``members``) or when it will (``due``)."""

    due: float | None
    members: list[Member] = field(default_factory=list)
    kind: NotificationKind = "firing"


@dataclass
class Group:
    key: str
    created: float
    last_flush: float | None = None
    members: dict[str, Member] = field(default_factory=dict)

    def batch(self, timing: AlertsSection, now: float, *, force: bool = False) -> Batch:
        """The members to notify now; empty with ``due`` set when nothing is due yet."""
        changes = [m for m in self.members.values() if m.needs_notify()]
        if changes:
            due = self.created + timing.group_wait if self.last_flush is None else self.last_flush + timing.group_interval
            if due > now and not force:
                return Batch(due)
            if all(m.alert.status == "resolved" for m in changes):
                kind: NotificationKind = "resolved"
            else:
                kind = "firing" if len(changes) == 1 else "digest"
            return Batch(due, changes, kind)
        repeats = [m for m in self.members.values() if m.repeatable()]
        if not repeats:
            return Batch(None)
        due = min(m.last_notified for m in repeats) + timing.repeat_interval
        if due > now:
            return Batch(due)
        return Batch(due, [m for m in repeats if m.last_notified + timing.repeat_interval <= now], "repeat")

    def mark_sent(self, members: list[Member], now: float) -> None:
        for m in members:
            m.notified = "resolved" if m.alert.status == "resolved" else "firing"
            m.last_notified = now
        self.last_flush = now

    def cleanup(self) -> None:
        """Forget members that were resolved and told so (or never told): nothing left to say."""
        for fp, m in list(self.members.items()):
            if m.alert.status != "firing" and m.notified != "firing":
                del self.members[fp]
