"""hrkernel.alerts: the alert manager (levels, routing, dedup, grouping, history, acknowledgement).

Public for plugins: :mod:`hrkernel.alerts.types` (``Alert``, ``AlertLevel``, ``AlertSource``,
``Notification``, ``AlertChannel``, ``ChannelError``, ``render_text``), re-exported here.
``AlertSystem`` and the rest of the package are the kernel's and may change; they are imported
lazily so a channel plugin importing the types does not load DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hrkernel.alerts.types import (
    Alert,
    AlertChannel,
    AlertLevel,
    AlertSource,
    ChannelError,
    Notification,
    render_text,
)

if TYPE_CHECKING:
    from hrkernel.alerts.manager import AlertSystem, ChannelSpec

__all__ = [
    "Alert",
    "AlertChannel",
    "AlertLevel",
    "AlertSource",
    "AlertSystem",
    "ChannelError",
    "ChannelSpec",
    "Notification",
    "render_text",
]


def __getattr__(name: str) -> Any:
    if name in ("AlertSystem", "ChannelSpec"):
        from hrkernel.alerts import manager

        return getattr(manager, name)
    raise AttributeError(f"module 'hrkernel.alerts' has no attribute {name!r}")
