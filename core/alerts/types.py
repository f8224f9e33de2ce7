"""Alert values shared by the kernel and alert-channel plugins (public API).

This module is part of hrkernel's public surface, next to ``hrkernel.spec`` and
``hrkernel.types``: alert-channel plugins (built-in and third-party) import :class:`AlertLevel`,
:class:`AlertSource`, :class:`Alert`, :class:`Notification`, :class:`AlertChannel`,
:class:`ChannelError` and :func:`render_text` from here and nothing else of ``hrkernel.alerts``.
The rest of ``hrkernel.alerts`` (the manager, history, config) is internal and may change.

A channel is built by the factory it registered through ``hr_register_alert_channels`` and only
has to implement ``async send(notification)``: raise on failure (the kernel retries it behind the
channel's own circuit breaker and records the reason). ``async start()`` and ``async aclose()``
are called when present.
"""

from __future__ import annotations

import enum
import re
import time
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import msgspec

from hrkernel.errors import HrkernelError

__all__ = [
    "Alert",
    "AlertChannel",
    "AlertLevel",
    "AlertSource",
    "ChannelError",
    "Notification",
    "NotificationKind",
    "render_text",
]


class AlertLevel(enum.StrEnum):
    """How bad it is. Ordered: ``AlertLevel.INFO < AlertLevel.CRITICAL`` compares by severity."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __lt__(self, other: object) -> bool:
        if isinstance(other, AlertLevel):
            return self.rank < other.rank
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if isinstance(other, AlertLevel):
            return self.rank <= other.rank
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, AlertLevel):
            return self.rank > other.rank
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if isinstance(other, AlertLevel):
            return self.rank >= other.rank
        return NotImplemented


_RANK = {AlertLevel.INFO: 0, AlertLevel.WARNING: 1, AlertLevel.ERROR: 2, AlertLevel.CRITICAL: 3}

_SOURCE_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")  # fullmatch: "$" would accept "x\n"


class AlertSource(str):
    """Where an alert comes from: an open set of names, like an enum that plugins extend.

    The kernel's own sources are class attributes (``AlertSource.EXCHANGE``, ...). A plugin adds
    its own with ``MY_SOURCE = AlertSource.define("my_plugin")`` (lower-case letters, digits,
    ``_ . -``); :meth:`known` lists every name defined so far. Instances compare equal to their
    plain string, so config files name sources as strings.
    """

    _known: ClassVar[dict[str, AlertSource]] = {}

    KERNEL: ClassVar[AlertSource]
    EXCHANGE: ClassVar[AlertSource]
    ORDERS: ClassVar[AlertSource]
    LEDGER: ClassVar[AlertSource]
    RECONCILIATION: ClassVar[AlertSource]
    HA: ClassVar[AlertSource]
    HEALTH: ClassVar[AlertSource]
    RESILIENCE: ClassVar[AlertSource]
    DATA: ClassVar[AlertSource]
    WEB: ClassVar[AlertSource]
    # Names the design documents use besides the kernel's own areas.
    EXECUTION: ClassVar[AlertSource]
    SYSTEM: ClassVar[AlertSource]
    RISK: ClassVar[AlertSource]
    STRATEGY: ClassVar[AlertSource]
    MARKET_DATA: ClassVar[AlertSource]
    DATABASE: ClassVar[AlertSource]
    NETWORK: ClassVar[AlertSource]
    SECURITY: ClassVar[AlertSource]

    def __new__(cls, name: str) -> AlertSource:
        if isinstance(name, AlertSource):
            return name
        if not isinstance(name, str) or not _SOURCE_NAME.fullmatch(name):
            raise ValueError(
                f"alert source must be a lower-case name such as 'exchange' or 'my_plugin', found {name!r}"
            )
        return super().__new__(cls, name)

    @classmethod
    def define(cls, name: str) -> AlertSource:
        """Add (or return) the source called ``name``."""
        source = cls._known.get(name)
        if source is None:
            source = cls(name)
            cls._known[name] = source
        return source

    @classmethod
    def known(cls) -> list[AlertSource]:
        return sorted(cls._known.values())

    def __repr__(self) -> str:
        return f"AlertSource({str(self)!r})"


for _name in ("kernel", "exchange", "orders", "ledger", "reconciliation", "ha", "health",
              "resilience", "data", "web", "execution", "system", "risk", "strategy", "market_data",
              "database", "network", "security"):
    setattr(AlertSource, _name.upper(), AlertSource.define(_name))


class ChannelError(HrkernelError):
    """A channel could not deliver. ``reason`` must be safe to log and store (no secrets)."""

    def __init__(self, channel: str, reason: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        self.channel = channel
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        """Seconds the service asked us to wait (Retry-After); the retry policy honours it."""
        super().__init__(f"alert channel {channel!r}: {reason}")


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert as channels see it (a snapshot at notification time)."""

    id: str
    fingerprint: str
    source: str
    level: AlertLevel
    title: str
    message: str
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    count: int = 1
    """How many times it was raised while open (deduplicated repeats)."""
    first_seen: float = 0.0
    """Unix time of the first occurrence."""
    last_seen: float = 0.0
    status: Literal["firing", "resolved"] = "firing"
    resolved_at: float | None = None
    acknowledged_by: str | None = None


NotificationKind = Literal["firing", "repeat", "resolved", "digest"]


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """What one channel is asked to deliver: one or more alerts of one group.

    ``kind``: ``firing`` (new alerts), ``resolved``, ``repeat`` (still firing and not
    acknowledged after ``repeat_interval``) or ``digest`` (a mix, or several alerts batched by
    ``group_interval``/throttling).
    """

    kind: NotificationKind
    channel: str
    group: str
    alerts: list[Alert]
    id: str = ""
    """Unique per notification (the same on every retry of it): an idempotency key."""
    dashboard_url: str = ""
    instance_id: str = ""

    @property
    def level(self) -> AlertLevel:
        """The highest level among the alerts."""
        return max((a.level for a in self.alerts), default=AlertLevel.INFO)

    def subject(self) -> str:
        """A one-line summary, e.g. an email subject."""
        first = self.alerts[0] if self.alerts else None
        prefix = f"[{self.level.value.upper()}]"
        if self.kind == "resolved":
            prefix = "[RESOLVED]"
        if first is None:
            return prefix
        more = f" (+{len(self.alerts) - 1} more)" if len(self.alerts) > 1 else ""
        return f"{prefix} {first.source}: {first.title}{more}"


@runtime_checkable
class AlertChannel(Protocol):
    """What an alert-channel factory must build."""

    async def send(self, notification: Notification) -> None:
        """Deliver ``notification``; raise (preferably :class:`ChannelError`) on failure."""
        ...


def format_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def alert_lines(alert: Alert) -> list[str]:
    """The fields of one alert as ``name: value`` lines (plain text, unescaped)."""
    lines = [
        f"level: {alert.level.value}",
        f"source: {alert.source}",
        f"title: {alert.title}",
        f"message: {alert.message}",
        f"count: {alert.count}",
        f"first seen: {format_time(alert.first_seen)}",
        f"last seen: {format_time(alert.last_seen)}",
    ]
    if alert.status == "resolved":
        lines.append(f"resolved: {format_time(alert.resolved_at)}")
    if alert.context:
        lines.append("context: " + ", ".join(f"{k}={v}" for k, v in sorted(alert.context.items())))
    lines.append(f"id: {alert.id}")
    return lines


def render_text(notification: Notification) -> str:
    """Plain-text rendering used by console, email, SMS and any channel without its own."""
    parts = [notification.subject()]
    for alert in notification.alerts:
        state = "RESOLVED" if alert.status == "resolved" else alert.level.value.upper()
        parts.append("")
        parts.append(f"== {state} {alert.title}")
        parts.extend(alert_lines(alert))
    if notification.dashboard_url:
        parts.append("")
        parts.append(f"dashboard: {notification.dashboard_url}")
    return "\n".join(parts)
