"""The ``[alerts]`` section of hr.toml (internal).

``[alerts.channels.<id>]`` tables name a registered channel ``type`` (default: the id). The
routing keys below (:class:`ChannelRouting`) are taken out of the table by the manager; the rest
is validated against the struct the channel's plugin registered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from hrkernel.alerts.types import AlertLevel
from hrkernel.types import ConfigStruct, Duration

Matcher = dict[str, str | list[str]]
"""Label → value (or any of several values). Labels: ``source``, ``level``, ``title``, and
context keys."""


class SilenceConfig(ConfigStruct, kw_only=True):
    """Mute alerts matching ``matchers`` until ``until`` (ISO 8601, UTC if no offset)."""

    matchers: Matcher
    until: str
    who: str
    why: str

    def __post_init__(self) -> None:
        try:
            datetime.fromisoformat(self.until)
        except ValueError:
            raise ValueError(
                f"until: expected an ISO 8601 time such as 2026-01-31T18:00:00Z, found {self.until!r}"
            ) from None
        if not self.who.strip() or not self.why.strip():
            raise ValueError("a silence needs who set it and why")


class InhibitRule(ConfigStruct, kw_only=True):
    """While an alert matching ``source`` fires, alerts matching ``target`` that agree with it
    on every label in ``equal`` are not notified."""

    source: Matcher
    target: Matcher
    equal: list[str] = msgspec.field(default_factory=list)


def _default_inhibit() -> list[InhibitRule]:
    # A critical "exchange down" (or any critical) explains the warnings and infos it causes
    # from the same source and the same exchange.
    return [
        InhibitRule(
            source={"level": "critical"},
            target={"level": ["warning", "info"]},
            equal=["source", "exchange"],
        )
    ]


def _default_channels() -> dict[str, dict[str, Any]]:
    return {"console": {"type": "console"}}


class ChannelRouting(ConfigStruct, kw_only=True):
    """Keys every channel table accepts besides its own options."""

    enabled: bool = True
    min_level: AlertLevel = AlertLevel.INFO
    sources: list[str] = msgspec.field(default_factory=list)
    """Only these sources (empty: all)."""
    exclude_sources: list[str] = msgspec.field(default_factory=list)
    max_per_minute: int = 20
    """Notifications per minute at most; more wait for the next digest (0: unlimited)."""
    timeout: Duration | None = None
    """Per-attempt timeout (default: ``[alerts] channel_timeout``)."""

    def __post_init__(self) -> None:
        if self.max_per_minute < 0:
            raise ValueError("max_per_minute must be >= 0")


ROUTING_KEYS = frozenset(ChannelRouting.__struct_fields__)


class AlertsSection(ConfigStruct, kw_only=True):
    enabled: bool = True
    history_file: str = "alerts.duckdb"
    """DuckDB file with the alert history, relative to ``[kernel] data_dir``."""
    dashboard_url: str = ""
    """Link included in every message (e.g. ``http://127.0.0.1:8080/alerts``)."""
    dedup_window: Duration = Duration(300.0)
    """Repeats of an open alert within this time of its last occurrence only bump its count."""
    fingerprint_keys: list[str] = msgspec.field(default_factory=list)
    """Context keys that, with source and title, identify an alert (``send_alert`` may override)."""
    group_by: list[str] = msgspec.field(default_factory=lambda: ["source"])
    """Labels that put alerts into the same notification group (``source``, ``level``, ``title``,
    context keys)."""
    group_wait: Duration = Duration(10.0)
    group_interval: Duration = Duration(60.0)
    repeat_interval: Duration = Duration(4 * 3600.0)
    queue_size: int = 1000
    """Notifications waiting per channel; beyond it they are counted as overflow and recorded."""
    channel_timeout: Duration = Duration(10.0)
    retry_attempts: int = 3
    retry_delay: Duration = Duration(0.5)
    breaker_failures: int = 5
    """Consecutive failed deliveries that open a channel's breaker."""
    breaker_reset: Duration = Duration(30.0)
    """How long an open breaker waits before it lets one delivery through as a probe."""
    silences: list[SilenceConfig] = msgspec.field(default_factory=list)
    inhibit: list[InhibitRule] = msgspec.field(default_factory=_default_inhibit)
    channels: dict[str, dict[str, Any]] = msgspec.field(default_factory=_default_channels)

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        if self.retry_attempts < 1:
            raise ValueError("retry_attempts must be >= 1")
        if self.breaker_failures < 1:
            raise ValueError("breaker_failures must be >= 1")
