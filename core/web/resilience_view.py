"""Adapters for the resilience primitives: every breaker, pool, rate limiter and bulkhead the
components hold, found by walking their attributes (plus the process-wide breaker registry), and
the Prometheus registries components keep."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from hrkernel.web.adapters import Host, NotConfigured, find, jsonable, stats_of, unwrap

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


def _read_kind(host: Host, kind: str) -> list[dict[str, Any]] | None:
    items = discover(host).get(kind, [])
    if not items:
        return None
    out = []
    for name, obj in sorted(_unique(items).items()):
        stats = stats_of(obj)
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
