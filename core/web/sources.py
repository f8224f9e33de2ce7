"""Adapters: read what the dashboard shows from the kernel's components, by name.

Each ``read_*`` function takes the *host* (the kernel, or anything with ``get(name)`` and
``components``) and returns JSON-ready data, or ``None`` when the area is not configured in this
process. The web layer never imports another area's internals to reach its state: it asks the
component for it, so an area that has not landed (or is disabled) simply shows "not configured".

Which component names and methods are read is listed in each function's docstring; an area that
wants to appear on the dashboard provides them.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

import anyio
import msgspec


class Host(Protocol):
    """What the web layer needs from the kernel."""

    components: list[Any]

    def get(self, name: str) -> Any: ...


class NotConfigured(LookupError):
    """The area (or the named object inside it) is not present in this process."""


class Unsupported(RuntimeError):
    """The area is present but does not offer the requested action."""


def jsonable(value: Any) -> Any:
    """Convert msgspec structs, dataclasses, enums, Decimals (as strings) etc. to JSON types."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, msgspec.Struct):
        return {f: jsonable(getattr(value, f)) for f in value.__struct_fields__}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def unwrap(component: Any) -> Any:
    """The object a plugin built, for plugin components; the component itself otherwise."""
    return getattr(component, "obj", component)


def find(host: Host, *names: str) -> Any:
    """The first component called one of ``names`` (unwrapped), or None."""
    for name in names:
        component = host.get(name)
        if component is not None:
            return unwrap(component)
    return None


async def maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _method(obj: Any, *names: str) -> Any:
    for name in names:
        fn = getattr(obj, name, None)
        if fn is not None:
            return fn
    return None


# ---------------------------------------------------------------------------- components, health


def read_components(host: Host) -> list[dict[str, Any]]:
    """Every component the kernel built, in start order, with whether it is running."""
    started = {id(c) for c in getattr(host, "started", host.components)}
    health = find(host, "health")
    checks = health.snapshot() if health is not None else {}
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


# ---------------------------------------------------------------------------- resilience


def breaker_registries(host: Host) -> list[Any]:
    """The process-wide :data:`hrkernel.resilience.registry` plus any a ``resilience`` component holds."""
    registries: list[Any] = []
    default_registry: Any
    try:
        from hrkernel.resilience import registry as default_registry
    except ImportError:  # resilience not installed in this build
        default_registry = None
    if default_registry is not None:
        registries.append(default_registry)
    component = find(host, "resilience")
    extra = getattr(component, "breakers", None) if component is not None else None
    if extra is not None and hasattr(extra, "get_or_create") and all(extra is not r for r in registries):
        registries.append(extra)
    return registries


def _primitive_types() -> dict[str, tuple[type, ...]]:
    try:
        from hrkernel.resilience.breaker import CircuitBreaker
        from hrkernel.resilience.bulkhead import Bulkhead
        from hrkernel.resilience.pool import ConnectionPool
        from hrkernel.resilience.ratelimit import RateLimiter
    except ImportError:  # pragma: no cover - resilience is part of the kernel
        return {}
    return {"breakers": (CircuitBreaker,), "pools": (ConnectionPool,), "limiters": (RateLimiter,), "bulkheads": (Bulkhead,)}


def _walk(obj: Any, depth: int, seen: set[int], found: dict[str, dict[int, tuple[str, Any]]], owner: str,
          types: dict[str, tuple[type, ...]], top: bool = False) -> None:
    if id(obj) in seen or depth < 0:
        return
    seen.add(id(obj))
    for kind, kinds in types.items():
        if isinstance(obj, kinds):
            found[kind].setdefault(id(obj), (owner, obj))
            return
    if isinstance(obj, dict):
        children: Iterable[Any] = list(obj.values())
    elif isinstance(obj, list | tuple):
        children = list(obj)
    elif (top or type(obj).__module__.startswith("hrkernel")) and hasattr(obj, "__dict__"):
        # The component itself, then only kernel and plugin objects: never wander into clients,
        # loops or sockets.
        children = list(vars(obj).values())
    else:
        return
    for child in children:
        _walk(child, depth - 1, seen, found, owner, types)


def discover(host: Host) -> dict[str, list[tuple[str, Any]]]:
    """Every breaker, pool, rate limiter and bulkhead the components hold (found by walking each
    component's attributes a few levels deep) plus the registry's breakers, as (owner, object)."""
    types = _primitive_types()
    found: dict[str, dict[int, tuple[str, Any]]] = {kind: {} for kind in types}
    if not types:
        return {}
    for registry in breaker_registries(host):
        for breaker in registry:
            found["breakers"].setdefault(id(breaker), ("registry", breaker))
    seen: set[int] = {id(host)}  # never walk back into the kernel from a component holding it
    for component in host.components:
        _walk(component, 4, seen, found, str(getattr(component, "name", "?")), types, top=True)
        obj = unwrap(component)
        if obj is not component:
            _walk(obj, 4, seen, found, str(getattr(component, "name", "?")), types, top=True)
    return {kind: list(items.values()) for kind, items in found.items()}


def metric_registries(host: Host, exclude: Any = None) -> list[Any]:
    """``CollectorRegistry`` objects the components hold (their own Prometheus metrics)."""
    from prometheus_client import CollectorRegistry

    found: dict[str, dict[int, tuple[str, Any]]] = {"registries": {}}
    seen: set[int] = {id(host), id(exclude)}
    types: dict[str, tuple[type, ...]] = {"registries": (CollectorRegistry,)}
    for component in host.components:
        for obj in {id(component): component, id(unwrap(component)): unwrap(component)}.values():
            _walk(obj, 4, seen, found, str(getattr(component, "name", "?")), types, top=True)
    return [registry for _, registry in found["registries"].values()]


def _unique(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """Name → object; a name used by two objects is qualified with its owner."""
    names: dict[str, int] = {}
    for _, obj in items:
        name = str(getattr(obj, "name", "?"))
        names[name] = names.get(name, 0) + 1
    out: dict[str, Any] = {}
    for owner, obj in items:
        name = str(getattr(obj, "name", "?"))
        out[name if names[name] == 1 else f"{owner}/{name}"] = obj
    return out


def _breakers(host: Host) -> dict[str, Any]:
    return _unique(discover(host).get("breakers", []))


def breaker_view(name: str, breaker: Any) -> dict[str, Any]:
    metrics = jsonable(breaker.metrics())
    state = jsonable(breaker.state)
    retry_in = None
    if state == "open":
        clock = getattr(breaker, "clock", time.monotonic)
        retry_in = max(0.0, float(breaker.next_attempt_at) - float(clock()))
    metrics["name"] = name
    metrics["state"] = state
    metrics["retry_in"] = retry_in
    return metrics


def read_breakers(host: Host) -> list[dict[str, Any]]:
    """Every circuit breaker: state, counters, failure rate, seconds until the next trial call."""
    return [breaker_view(name, b) for name, b in sorted(_breakers(host).items())]


def reset_breaker(host: Host, name: str) -> dict[str, Any]:
    breaker = _breakers(host).get(name)
    if breaker is None:
        raise NotConfigured(f"no breaker named {name!r}")
    breaker.reset("manual reset from the dashboard")
    return breaker_view(name, breaker)


def _stats_of(obj: Any) -> dict[str, Any]:
    fn = _method(obj, "metrics", "stats", "snapshot")
    data = jsonable(fn() if callable(fn) else fn) if fn is not None else {}
    return data if isinstance(data, dict) else {"value": data}


def _read_kind(host: Host, kind: str) -> list[dict[str, Any]] | None:
    items = discover(host).get(kind, [])
    if not items:
        return None
    out = []
    for name, obj in sorted(_unique(items).items()):
        stats = _stats_of(obj)
        stats.pop("connections", None)  # per-connection detail stays in the API of the pool itself
        out.append({**stats, "name": name})
    return out


def read_pools(host: Host) -> list[dict[str, Any]] | None:
    """Connection pools the components hold: size, in use, idle, waiting (``metrics()``)."""
    return _read_kind(host, "pools")


def _described_limits(host: Host) -> list[dict[str, Any]]:
    """Per-endpoint limits a component reports in ``describe()["rate_limits"]`` (the Nobitex
    adapter's exact sliding windows): ``{endpoint: {used, limit, per, blocked_for}}``."""
    rows = []
    for component in host.components:
        obj = unwrap(component)
        describe = getattr(obj, "describe", None) if obj is not component else None
        try:
            limits = (describe() if callable(describe) else component.describe()).get("rate_limits")
        except Exception:  # a broken describe() is shown on the components panel
            continue
        if not isinstance(limits, dict):
            continue
        for endpoint, window in sorted(limits.items()):
            if not isinstance(window, dict) or "limit" not in window:
                continue
            used, limit = window.get("used", 0), window["limit"]
            blocked = float(window.get("blocked_for") or 0.0)
            rows.append({
                "name": f"{getattr(component, 'name', '?')}:{endpoint}",
                "headroom": 0 if blocked > 0 else max(0, int(limit) - int(used)),
                "used": used, "limit": limit, "per": window.get("per"), "blocked_for": blocked,
            })
    return rows


def read_limiters(host: Host) -> list[dict[str, Any]] | None:
    """Rate limiters the components hold (headroom, granted, rejected from ``metrics()``) and the
    per-endpoint windows components report in ``describe()["rate_limits"]``."""
    rows = (_read_kind(host, "limiters") or []) + _described_limits(host)
    return rows or None


def read_bulkheads(host: Host) -> list[dict[str, Any]] | None:
    """Bulkheads the components hold: in flight, waiting, rejected (``metrics()``)."""
    return _read_kind(host, "bulkheads")


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


# ---------------------------------------------------------------------------- orders, ledger


def _pipeline(host: Host) -> Any:
    """The order pipeline: the ``orders`` component (or the pipeline it holds)."""
    orders = find(host, "orders")
    if orders is None:
        return None
    return getattr(orders, "pipeline", orders)


def _recent_from_journal(journal: Any, limit: int) -> tuple[list[Any], dict[str, int]]:
    # The journal lists oldest first and has no count query: read it once for both.
    records = list(journal.query(limit=1_000_000))
    counts: dict[str, int] = {}
    for record in records:
        state = jsonable(getattr(record, "state", "?"))
        counts[state] = counts.get(state, 0) + 1
    return records[-limit:][::-1], counts


async def read_orders(host: Host, limit: int = 50) -> dict[str, Any] | None:
    """``orders``: ``recent(limit)`` and ``counts()`` if offered, else read from its ``journal``;
    ``halts`` (why new orders are refused) and ``stats``."""
    pipeline = _pipeline(host)
    if pipeline is None:
        return None
    recent_fn = _method(pipeline, "recent", "recent_orders")
    counts_fn = _method(pipeline, "counts", "counts_by_state")
    journal = getattr(pipeline, "journal", None)
    recent: Any = []
    counts: Any = {}
    if recent_fn is not None:
        recent = await maybe_await(recent_fn(limit))
        counts = await maybe_await(counts_fn()) if counts_fn else {}
    elif journal is not None and hasattr(journal, "query"):
        recent, counts = await anyio.to_thread.run_sync(_recent_from_journal, journal, limit)
    halts = getattr(pipeline, "halts", None)
    halted_fn = _method(pipeline, "is_halted")
    halted = bool(halts) if halts is not None else bool(halted_fn()) if halted_fn else None
    stats = getattr(pipeline, "stats", None)
    return {
        "orders": jsonable(recent), "counts": jsonable(counts), "halted": halted,
        "halts": jsonable(halts or {}), "stats": jsonable(stats() if callable(stats) else stats or {}),
    }


def _ledger(host: Host) -> Any:
    ledger = find(host, "ledger")
    if ledger is not None:
        return getattr(ledger, "ledger", ledger)
    pipeline = _pipeline(host)
    return getattr(pipeline, "ledger", None) if pipeline is not None else None


def _ledger_rows(ledger: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    balances = ledger.balances() if hasattr(ledger, "balances") else None
    if isinstance(balances, dict):
        rows = []
        for key, amount in balances.items():
            account, currency = key if isinstance(key, tuple) and len(key) == 2 else (str(key), "")
            rows.append({"account": account, "currency": currency, "balance": jsonable(amount)})
        out["balances"] = rows
    else:
        out["balances"] = jsonable(balances)
    for key, names in (("positions", ("positions",)), ("drift", ("drift", "discrepancies")),
                       ("reconciliations", ("reconciliations", "reconciliation_reports"))):
        fn = _method(ledger, *names)
        out[key] = jsonable(fn() if callable(fn) else fn) if fn is not None else None
    return out


def _reconciliation_rows(recon: Any, limit: int = 20) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Summaries of the last reports, and the drift per exchange and asset of each exchange's latest."""
    reports = [r for r in recon.reports(limit) if isinstance(r, dict)]
    summaries, drift, seen = [], [], set()
    for r in reports:  # newest first
        summaries.append({
            "exchange": r.get("exchange"), "started_at": r.get("started_at"), "finished_at": r.get("finished_at"),
            "dry_run": r.get("dry_run", False), "orphans": len(r.get("orphans") or []),
            "changed": len(r.get("changed") or []), "late_fills": r.get("late_fills", 0),
            "drift": len([d for d in r.get("drift") or [] if d.get("action") != "opening balance"]),
            "discrepancies": "; ".join(r.get("discrepancies") or []), "halted": r.get("halted", False),
        })
        if r.get("exchange") in seen or r.get("dry_run"):
            continue
        seen.add(r.get("exchange"))
        for d in r.get("drift") or []:
            drift.append({"exchange": r.get("exchange"), "asset": d.get("currency"), "drift": d.get("drift"),
                          "exchange_total": d.get("exchange_total"), "ledger_total": d.get("ledger_total"),
                          "tolerance": d.get("tolerance"), "action": d.get("action")})
    return summaries, drift


async def read_ledger(host: Host) -> dict[str, Any] | None:
    """``ledger`` (or the pipeline's ``ledger``): ``balances()`` per account and currency, and
    ``positions()``, ``drift()``, ``reconciliations()`` where offered; otherwise drift and
    reconciliation reports from the orders component's ``reconciliation.reports()``."""
    ledger = _ledger(host)
    if ledger is None:
        return None
    out = await anyio.to_thread.run_sync(_ledger_rows, ledger)
    orders = find(host, "orders")
    recon = getattr(orders, "reconciliation", None) if orders is not None else None
    if recon is not None and hasattr(recon, "reports"):
        summaries, drift = await anyio.to_thread.run_sync(_reconciliation_rows, recon)
        if out.get("reconciliations") is None:
            out["reconciliations"] = jsonable(summaries)
        if out.get("drift") is None:
            out["drift"] = jsonable(drift)
    return out


KILL_SWITCH_KEY = "kill_switch"


async def set_kill_switch(host: Host, on: bool, reason: str) -> dict[str, Any]:
    """Engage or release the kill switch: the pipeline's ``halt(key, reason)`` / ``resume(key)``
    (or a ``killswitch`` component's ``engage(reason)`` / ``release(reason)``)."""
    switch = find(host, "killswitch", "kill_switch")
    if switch is not None:
        await maybe_await(switch.engage(reason) if on else switch.release(reason))
        return {"halted": on}
    pipeline = _pipeline(host)
    if pipeline is None or _method(pipeline, "halt") is None:
        raise NotConfigured("no kill switch is configured (needs an order pipeline with halt/resume)")
    if on:
        await maybe_await(pipeline.halt(KILL_SWITCH_KEY, reason))
    else:
        await maybe_await(pipeline.resume(KILL_SWITCH_KEY))
    halts = getattr(pipeline, "halts", {})
    return {"halted": bool(halts), "halts": jsonable(halts)}


# ---------------------------------------------------------------------------- HA


def read_leadership(host: Host) -> dict[str, Any] | None:
    """``ha``: ``status()`` (role, leader, fencing token, lease expiry, trading, failover times)."""
    ha = find(host, "ha")
    if ha is None:
        return None
    status_fn = _method(ha, "status")
    if status_fn is not None:
        data = jsonable(status_fn())
    else:
        lease = getattr(ha, "lease", None)
        data = jsonable(lease.status()) if lease is not None and hasattr(lease, "status") else {}
    data.pop("groups", None)  # shown under failovers
    lag_fn = _method(ha, "replication_lag")
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
    status_fn = _method(manager, "status")
    groups = status_fn() if status_fn is not None else {}
    ha = find(host, "ha")
    monitor = getattr(ha, "failover_monitor", None) if ha is not None else None
    records = getattr(monitor, "records", None)
    if records is None:
        records = getattr(manager, "history", [])
    history = [jsonable(r) for r in list(records)[-100:]][::-1]
    out: dict[str, Any] = {"groups": jsonable(groups), "history": history}
    if monitor is not None and hasattr(monitor, "stats"):
        out["stats"] = {kind: jsonable(monitor.stats(kind)) for kind in ("leadership", "group")}
    return out


async def manual_failover(host: Host, group: str, target: str | None, reason: str) -> Any:
    """Switch failover group ``group`` (to ``target`` if given): ``ha.failover.failover(...)``."""
    manager = _failover_manager(host)
    if manager is None:
        raise NotConfigured("no failover groups are configured")
    fn = _method(manager, "failover")
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
    fn = _method(ha, "step_down")
    if fn is None:
        fn = _method(getattr(ha, "lease", None), "release")
    if fn is None:
        raise Unsupported("this lease backend has no leader to hand over to (local lease); nothing to step down from")
    await maybe_await(fn(reason))
    return read_leadership(host)


# ---------------------------------------------------------------------------- signals


def read_webhooks(host: Host) -> dict[str, Any] | None:
    """``signals``: ``stats()`` of the TradingView webhook intake (accepted, rejected, duplicates)."""
    intake = find(host, "signals", "webhooks")
    if intake is None:
        return None
    return _stats_of(intake)
