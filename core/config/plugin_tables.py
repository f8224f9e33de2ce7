"""Validate plugin-owned tables against the structs plugins registered.

Runs after plugins were discovered. Errors read exactly like the kernel's own: the plugin's
struct is decoded by the same walker, with the table's full path as prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hrkernel.config.load import LoadedConfig
from hrkernel.config.validate import decode, hide_found, join, showing_env
from hrkernel.errors import ConfigIssue
from hrkernel.plugins import PluginHost, Registration
from hrkernel.types import Duration


@dataclass(frozen=True)
class Configured:
    """One plugin-built instance to create: which registration, its id and validated config."""

    id: str
    registration: Registration
    config: Any
    path: str
    resilience: Any = None
    """For exchanges: the kernel's ``[exchanges.<id>.resilience]`` (``ExchangeResilience``)."""


@dataclass(frozen=True)
class ConfiguredCheck:
    id: str
    registration: Registration
    config: Any
    interval: float
    timeout: float


def validate_tables(
    path: str,
    tables: dict[str, dict[str, Any]],
    registrations: dict[str, Registration],
    kind: str,
    issues: list[ConfigIssue],
) -> list[Configured]:
    """``[path.<id>]`` tables, each naming its registered type by ``type`` (default: the id)."""
    out: list[Configured] = []
    for table_id, table in tables.items():
        table_path = join(path, table_id)
        if not isinstance(table, dict):
            issues.append(ConfigIssue(table_path, "expected a table"))
            continue
        body = dict(table)
        type_name = body.pop("type", table_id)
        # The kernel's own key in an exchange table; the rest is the plugin's.
        resilience = _exchange_resilience(body.pop("resilience", {}), join(table_path, "resilience"), issues) \
            if kind == "exchange" else None
        registration = registrations.get(type_name) if isinstance(type_name, str) else None
        if registration is None:
            known = ", ".join(sorted(registrations)) or "none installed"
            where = join(table_path, "type") if "type" in table else table_path
            issues.append(ConfigIssue(where, f"unknown {kind} type {type_name!r} (known: {known})"))
            continue
        config = _decode_body(registration, body, table_path, issues)
        if config is not _INVALID and resilience is not _INVALID:
            out.append(Configured(table_id, registration, config, table_path, resilience))
    return out


def _exchange_resilience(body: Any, path: str, issues: list[ConfigIssue]) -> Any:
    from hrkernel.exchange.guarded import ExchangeResilience

    value, found = decode(body, ExchangeResilience, path)
    issues.extend(found)
    return _INVALID if found else value


_INVALID = object()


def _decode_body(registration: Registration, body: dict[str, Any], path: str, issues: list[ConfigIssue]) -> Any:
    if registration.config is None:
        for key in body:
            issues.append(ConfigIssue(join(path, key), f"unknown key ({registration.kind} {registration.name!r} takes no options)"))
        return None if not body else _INVALID
    value, found = decode(body, registration.config, path)
    issues.extend(found)
    return _INVALID if found else value


def validate_health_checks(
    loaded: LoadedConfig, registrations: dict[str, Registration], issues: list[ConfigIssue]
) -> list[ConfiguredCheck]:
    health = loaded.config.health
    for name in health.checks:
        if name not in registrations:
            known = ", ".join(sorted(registrations)) or "none installed"
            issues.append(ConfigIssue(join("health.checks", name), f"unknown health check (known: {known})"))
    out: list[ConfiguredCheck] = []
    for name, registration in sorted(registrations.items()):
        path = join("health.checks", name)
        body = dict(health.checks.get(name, {}))
        timing: dict[str, float] = {"interval": health.default_interval, "timeout": health.default_timeout}
        enabled = body.pop("enabled", True)
        if not isinstance(enabled, bool):
            issues.append(ConfigIssue(join(path, "enabled"), f"expected true or false, found {enabled!r}"))
        for key in ("interval", "timeout"):
            if key in body:
                value = body.pop(key)
                try:
                    timing[key] = Duration.parse(value)
                except ValueError as exc:
                    issues.append(ConfigIssue(join(path, key), hide_found(str(exc), value)))
        config = _decode_body(registration, body, path, issues)
        if enabled is True and config is not _INVALID:
            out.append(ConfiguredCheck(name, registration, config, timing["interval"], timing["timeout"]))
    return out


@dataclass
class PluginConfig:
    exchanges: list[Configured]
    datasources: list[Configured]
    health_checks: list[ConfiguredCheck]


def validate_plugin_config(loaded: LoadedConfig, host: PluginHost) -> PluginConfig:
    """Validate every plugin-owned table; raises :class:`ConfigError` listing every issue."""
    issues: list[ConfigIssue] = []
    for index, name in enumerate(loaded.config.plugins.disable):
        if name not in host.records:
            installed = ", ".join(sorted(host.records)) or "none"
            issues.append(ConfigIssue(f"plugins.disable[{index}]", f"no installed plugin named {name!r} (installed: {installed})"))
    config = loaded.config
    with showing_env(loaded.env_shown_as):
        result = PluginConfig(
            exchanges=validate_tables("exchanges", config.exchanges, host.registrations("exchange"), "exchange", issues),
            datasources=validate_tables("datasources", config.datasources, host.registrations("datasource"),
                                        "datasource", issues),
            health_checks=validate_health_checks(loaded, host.registrations("health_check"), issues),
        )
    if issues:
        raise loaded.error(issues)
    return result
