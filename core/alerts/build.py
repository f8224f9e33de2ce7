"""Build channels from ``[alerts.channels.<id>]`` tables (the composition root builds the alert system)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hrkernel.alerts.config import ROUTING_KEYS, AlertsSection, ChannelRouting
from hrkernel.errors import ConfigError, ConfigIssue

if TYPE_CHECKING:
    from hrkernel.alerts.manager import ChannelSpec
    from hrkernel.plugins import PluginHost


class _StandaloneContext:
    """A minimal KernelContext for channels built outside a kernel."""

    def __init__(self, data_dir: str, instance_id: str) -> None:
        from hrkernel.logging import get_logger

        self.instance_id = instance_id
        self.data_dir = data_dir
        self.log = get_logger("hrkernel.alerts")

    def component(self, name: str) -> Any:
        raise KeyError(name)


def channels_from_config(
    config: AlertsSection,
    host: PluginHost | None = None,
    context: Any = None,
    *,
    source: str = "[alerts]",
) -> dict[str, ChannelSpec]:
    """Validate every channel table against its registered struct and build the channels.

    Raises :class:`ConfigError` listing every issue (paths like ``alerts.channels.tg.chat_id``).
    """
    from hrkernel.alerts.manager import ChannelSpec
    from hrkernel.config.plugin_tables import validate_tables
    from hrkernel.config.validate import decode, join

    if host is None:
        from hrkernel.plugins import PluginHost

        host = PluginHost(strict=True, quiet=True)
        host.discover()
    if context is None:
        context = _StandaloneContext(".hrkernel", "")
    issues: list[ConfigIssue] = []
    routings: dict[str, ChannelRouting] = {}
    bodies: dict[str, dict[str, Any]] = {}
    registrations = host.registrations("alert_channel")
    for cid, table in config.channels.items():
        if not isinstance(table, dict):
            bodies[cid] = table  # validate_tables reports it
            continue
        routing_part = {k: v for k, v in table.items() if k in ROUTING_KEYS}
        bodies[cid] = {k: v for k, v in table.items() if k not in ROUTING_KEYS}
        type_name = table.get("type", cid)
        registration = registrations.get(type_name) if isinstance(type_name, str) else None
        if "timeout" in table and _has_field(registration, "timeout"):
            # One `timeout` bounds each attempt (routing) and is also the channel's own option
            # (the webhook's HTTP timeout): before, the routing took it and the option stayed
            # at its default.
            bodies[cid]["timeout"] = table["timeout"]
        routing, found = decode(routing_part, ChannelRouting, join("alerts.channels", cid))
        issues.extend(found)
        if routing is not None:
            routings[cid] = routing
    configured = validate_tables("alerts.channels", bodies, registrations, "alert_channel", issues)
    if issues:
        raise ConfigError(source, issues)
    specs: dict[str, ChannelSpec] = {}
    for item in configured:
        routing = routings[item.id]
        if not routing.enabled:
            continue
        try:
            obj = item.registration.factory(item.config, context)
        except (ValueError, TypeError) as exc:  # e.g. apprise not installed: name the table
            raise ConfigError(source, [ConfigIssue(item.path, str(exc))]) from None
        if not callable(getattr(obj, "send", None)):
            raise ConfigError(source, [ConfigIssue(item.path, f"alert channel type {item.registration.name!r} "
                                                   f"(plugin {item.registration.plugin!r}) built an object without send()")])
        specs[item.id] = ChannelSpec(obj=obj, routing=routing, type=item.registration.name)
    return specs


def _has_field(registration: Any, name: str) -> bool:
    struct = getattr(registration, "config", None)
    return struct is not None and name in getattr(struct, "__struct_fields__", ())
