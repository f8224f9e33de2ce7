"""The design's ``AlertSystem({"channels": {...}, "level_thresholds": {...}})``.

The kernel's :class:`hrkernel.alerts.manager.AlertSystem` takes an ``[alerts]`` section
(:class:`~hrkernel.alerts.config.AlertsSection`) where each channel is a table. The documents
switch channels on and off with booleans and give each a minimum level; this maps that dict
onto the section:

- ``"channels": {"console": True}`` → ``[alerts.channels.console] type = "console"``; ``False``
  leaves the channel out; a dict gives the channel's own options (``{"smtp_host": ...}`` for
  ``email``), its ``type`` defaulting to the name.
- ``"level_thresholds": {"console": "info"}`` → that channel's ``min_level``.

``send_alert(source=, level=, title=, message=, context=)``, ``start()`` and ``stop()`` are the
kernel's own and run as the documents use them (``start()`` needs no task group).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from hrkernel.alerts.config import AlertsSection
from hrkernel.alerts.manager import AlertSystem as _KernelAlertSystem
from hrkernel.alerts.types import AlertLevel, AlertSource

__all__ = ["AlertLevel", "AlertSource", "AlertSystem", "alerts_section"]

_KEYS = ("channels", "level_thresholds")


def alerts_section(config: Mapping[str, Any]) -> AlertsSection:
    """The ``[alerts]`` section the documents' dict describes (``ValueError`` naming bad keys)."""
    unknown = sorted(set(config) - set(_KEYS))
    if unknown:
        raise ValueError(f"AlertSystem config: unknown key(s) {', '.join(unknown)} (known: {', '.join(_KEYS)})")
    channels = config.get("channels", {"console": True})
    thresholds = config.get("level_thresholds", {})
    if not isinstance(channels, Mapping) or not isinstance(thresholds, Mapping):
        raise ValueError("AlertSystem config: channels and level_thresholds must be dicts")
    extra = sorted(set(thresholds) - set(channels))
    if extra:
        raise ValueError(f"AlertSystem config: level_thresholds names channel(s) {', '.join(extra)} "
                         "that channels does not list")
    tables: dict[str, dict[str, Any]] = {}
    for name, value in channels.items():
        if value is False:
            continue
        if value is True:
            table: dict[str, Any] = {"type": name}
        elif isinstance(value, Mapping):
            table = {"type": name, **value}
        else:
            raise ValueError(f"AlertSystem config: channels.{name} must be true, false or a dict of options, "
                             f"found {value!r}")
        if name in thresholds:
            level = str(thresholds[name]).lower()
            if level not in set(AlertLevel):
                raise ValueError(f"AlertSystem config: level_thresholds.{name} must be one of "
                                 f"{', '.join(AlertLevel)}, found {thresholds[name]!r}")
            table["min_level"] = level
        tables[name] = table
    try:
        return msgspec.convert({"channels": tables}, AlertsSection)
    except msgspec.ValidationError as exc:
        raise ValueError(f"AlertSystem config: {exc}") from None


class AlertSystem(_KernelAlertSystem):
    """The kernel's alert system, configured from the documents' dict (or an ``AlertsSection``).

    Channel options are validated when it is built: a channel switched on without what it needs
    (``email`` without ``smtp_host``, ``telegram`` without a bot token) raises
    :class:`~hrkernel.errors.ConfigError` naming the missing key.
    """

    def __init__(self, config: Mapping[str, Any] | AlertsSection | None = None, **options: Any) -> None:
        section = config if isinstance(config, AlertsSection) or config is None else alerts_section(config)
        super().__init__(section, **options)
