"""Adapters: read what the dashboard shows from the kernel's components, by name.

Each ``read_*`` function takes the *host* (the kernel, or anything with ``get(name)`` and
``components``) and returns JSON-ready data, or ``None`` when the area is not configured in this
process. The web layer never imports another area's internals to reach its state: it asks the
component for it, so an area that has not landed (or is disabled) simply shows "not configured".

Which component names and methods are read is listed in each function's docstring; an area that
wants to appear on the dashboard provides them.
"""

from __future__ import annotations

from typing import Any

import anyio

from hrkernel.web.adapters import (
    Host,
    NotConfigured,
    Unsupported,
    find,
    jsonable,
    maybe_await,
    method_of,
    stats_of,
    unwrap,
)
from hrkernel.web.orders_view import (
    cancel_all_orders,
    dry_run_reconciliation,
    journal_order,
    journal_page,
    read_ledger,
    read_orders,
    read_webhooks,
    set_kill_switch,
)
from hrkernel.web.resilience_view import (
    breaker_registries,
    discover,
    metric_registries,
    read_breakers,
    read_bulkheads,
    read_limiters,
    read_pools,
    reset_breaker,
)

__all__ = [
    "Host", "NotConfigured", "Unsupported", "acknowledge_alert", "breaker_registries", "discover", "find",
    "jsonable", "manual_failover", "maybe_await", "method_of", "metric_registries", "read_alerts",
    "read_breakers", "read_bulkheads", "read_components", "read_failovers", "read_health",
    "read_health_history", "read_health_trend", "read_leadership", "read_ledger", "read_limiters",
    "read_orders", "read_pools", "read_webhooks", "reset_breaker", "set_kill_switch", "stats_of",
    "cancel_all_orders", "dry_run_reconciliation", "journal_order", "journal_page",
    "step_down", "unwrap",
]


# ---------------------------------------------------------------------------- components, health


def _breaker_trouble(host: Host) -> dict[str, list[str]]:
    """Component name → why its own breakers make it degraded (open or half-open ones)."""
    trouble: dict[str, list[str]] = {}
    for owner, breaker in discover(host).get("breakers", []):
        state = jsonable(breaker.state)
        if state != "closed" and owner != "registry":
            trouble.setdefault(owner, []).append(f"breaker {breaker.name} {state.replace('_', '-')}")
    return trouble


def read_components(host: Host) -> list[dict[str, Any]]:
    """Every component the kernel built, in start order, with whether it is running and its health:
    its health check's (same name) when it has one, else degraded while a breaker it holds is not
    closed, with the reason."""
    started = {id(c) for c in getattr(host, "started", host.components)}
    health = find(host, "health")
    checks = health.snapshot() if health is not None else {}
    trouble = _breaker_trouble(host)
    out = []
    for component in host.components:
        try:
            described = dict(component.describe())
        except Exception as exc:  # a broken describe() must not hide the rest
            described = {"name": getattr(component, "name", "?"), "describe_error": f"{type(exc).__name__}: {exc}"}
        name = described.get("name", getattr(component, "name", "?"))
        check = checks.get(name)
        described["name"] = name
        described["running"] = id(component) in started
        described["health"] = check["status"] if check else None
        described["detail"] = check["detail"] if check else ""
        if not check and name in trouble:
            described["health"], described["detail"] = "degraded", "; ".join(trouble[name])
        out.append(jsonable(described))
    return out


def read_health(host: Host) -> dict[str, Any] | None:
    """``health``: :class:`hrkernel.ha.health.HealthMonitor` (snapshot, overall, readiness)."""
    monitor = find(host, "health")
    if monitor is None:
        return None
    return {
        "overall": jsonable(monitor.overall()),
        "checks": jsonable(monitor.snapshot()),
        "readiness": jsonable(monitor.readiness()),
        "liveness": jsonable(monitor.liveness()),
    }


def read_health_history(host: Host, check: str | None = None, since: float | None = None, limit: int = 500) -> dict[str, Any] | None:
    """``health.history(name)`` for one check or all of them, newest ``limit`` points each."""
    monitor = find(host, "health")
    if monitor is None:
        return None
    names = [check] if check is not None else list(monitor.snapshot())
    out: dict[str, Any] = {}
    for name in names:
        try:
            points = monitor.history(name)
        except KeyError:
            raise NotConfigured(f"no health check named {name!r}") from None
        if since is not None:
            points = [p for p in points if p["at"] >= since]
        out[name] = jsonable(points[-limit:])
    return out


def _trend_rows(store: Any, names: list[str], bucket: int, limit: int) -> dict[str, Any]:
    return {name: jsonable(store.health_trend(name, bucket_seconds=bucket, limit=limit)) for name in names}


async def read_health_trend(host: Host, check: str | None = None, bucket: int = 60, limit: int = 360) -> dict[str, Any] | None:
    """Per check, results bucketed over time from the monitor's DuckDB store (``health.store``):
    share healthy, mean and max latency per bucket. ``{}`` when history is not persisted."""
    monitor = find(host, "health")
    if monitor is None:
        return None
    store = getattr(monitor, "store", None)
    if store is None or not hasattr(store, "health_trend"):
        return {}
    names = [check] if check is not None else list(monitor.snapshot())
    if check is not None and check not in monitor.snapshot():
        raise NotConfigured(f"no health check named {check!r}")
    return await anyio.to_thread.run_sync(_trend_rows, store, names, bucket, limit)


# ---------------------------------------------------------------------------- alerts


def _alert_view(alert: Any) -> dict[str, Any]:
    snap = alert.snapshot() if hasattr(alert, "snapshot") else alert
    data = jsonable(snap)
    if "acknowledged_by" not in data and "ack_by" in data:
        data["acknowledged_by"] = data.pop("ack_by")
    suppressed = getattr(alert, "suppressed", None)
    if suppressed is not None:
        data["suppressed"] = suppressed
    return data


def read_alerts(host: Host) -> dict[str, Any] | None:
    """``alerts``: :class:`hrkernel.alerts.manager.AlertSystem` (``open`` alerts and ``stats()``)."""
    system = find(host, "alerts")
    if system is None:
        return None
    alerts = [_alert_view(a) for a in getattr(system, "open", {}).values()]
    alerts.sort(key=lambda a: a.get("last_seen") or 0, reverse=True)
    stats = jsonable(system.stats()) if hasattr(system, "stats") else {}
    return {"alerts": alerts, "stats": stats}


async def acknowledge_alert(host: Host, alert_id: str, who: str, note: str) -> list[str]:
    system = find(host, "alerts")
    if system is None:
        raise NotConfigured("alerts are not configured")
    known = {a.id for a in getattr(system, "open", {}).values()}
    if alert_id not in known:
        raise NotConfigured(f"no open alert with id {alert_id!r}")
    return list(await maybe_await(system.acknowledge(alert_id, who, note)))


# ---------------------------------------------------------------------------- HA


def read_leadership(host: Host) -> dict[str, Any] | None:
    """``ha``: ``status()`` (role, leader, fencing token, lease expiry, trading, failover times)."""
    ha = find(host, "ha")
    if ha is None:
        return None
    status_fn = method_of(ha, "status")
    if status_fn is not None:
        data = jsonable(status_fn())
    else:
        lease = getattr(ha, "lease", None)
        data = jsonable(lease.status()) if lease is not None and hasattr(lease, "status") else {}
    data.pop("groups", None)  # shown under failovers
    lag_fn = method_of(ha, "replication_lag")
    if lag_fn is not None:
        data["replication_lag"] = jsonable(lag_fn())
    return data if isinstance(data, dict) else {"status": data}


def _failover_manager(host: Host) -> Any:
    ha = find(host, "ha")
    manager = getattr(ha, "failover", None) if ha is not None else None
    return manager if manager is not None else find(host, "failover")


def read_failovers(host: Host) -> dict[str, Any] | None:
    """``ha.failover.status()`` (groups: mode, serving, members) and the failover history
    (``ha.failover_monitor.records``: leadership changes and group switches with durations)."""
    manager = _failover_manager(host)
    if manager is None:
        return None
    status_fn = method_of(manager, "status")
    groups = status_fn() if status_fn is not None else {}
    ha = find(host, "ha")
    monitor = getattr(ha, "failover_monitor", None) if ha is not None else None
    records = getattr(monitor, "records", None)
    if records is None:
        records = getattr(manager, "history", [])
    history = [jsonable(r) for r in list(records)[-100:]][::-1]
    out: dict[str, Any] = {"groups": jsonable(groups), "history": history}
    if monitor is not None and hasattr(monitor, "stats"):
        out["stats"] = {kind: jsonable(monitor.stats(kind)) for kind in ("leadership", "trading", "group")}
    return out


async def manual_failover(host: Host, group: str, target: str | None, reason: str) -> Any:
    """Switch failover group ``group`` (to ``target`` if given): ``ha.failover.failover(...)``."""
    manager = _failover_manager(host)
    if manager is None:
        raise NotConfigured("no failover groups are configured")
    fn = method_of(manager, "failover")
    if fn is None:
        raise Unsupported("the failover manager offers no manual failover")
    groups = getattr(manager, "groups", None)
    if isinstance(groups, dict) and group not in groups:
        raise NotConfigured(f"no failover group named {group!r} (groups: {', '.join(sorted(groups)) or 'none'})")
    return jsonable(await maybe_await(fn(group, to=target, cause=f"manual: {reason}")))


async def step_down(host: Host, reason: str) -> Any:
    """Give up leadership so a standby takes over: ``ha.step_down(reason)`` or ``ha.lease.release``."""
    ha = find(host, "ha")
    if ha is None:
        raise NotConfigured("high availability is not configured")
    fn = method_of(ha, "step_down")
    if fn is None:
        fn = method_of(getattr(ha, "lease", None), "release")
    if fn is None:
        raise Unsupported("this lease backend has no leader to hand over to (local lease); nothing to step down from")
    await maybe_await(fn(reason))
    return read_leadership(host)
