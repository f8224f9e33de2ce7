"""The JSON API under ``/api``, probes, ``/metrics`` and the page.

Every route is declared once in :data:`ENDPOINTS` with the metadata the OpenAPI spec is built
from (see :mod:`hrkernel.web.openapi`). Area reads answer ``{"configured": false, ...}`` when
the area is absent in this process, never a placeholder.

Why this module is over 500 lines: :data:`ENDPOINTS` is the one table every route, its handler and
its OpenAPI metadata are declared in; the handlers are thin (the reads are in ``sources.py`` and
the ``*_view`` modules). Splitting the table would give the API two places to look for a route.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from hrkernel.logging import get_logger
from hrkernel.types import parse_decimal_text
from hrkernel.web import sources
from hrkernel.web.auth import check_token, client_of, describe_refusal

if TYPE_CHECKING:
    from hrkernel.web.app import WebState

Handler = Callable[[Request], Awaitable[Response]]
log = get_logger("hrkernel.web")


@dataclass
class Endpoint:
    path: str
    method: str
    handler: Handler
    summary: str
    tag: str = "read"
    action: bool = False
    """Mutating: needs the token, asks for confirmation on the page, written to the audit log."""
    public: bool = False
    """Never needs the token (probes, the page shell, the spec)."""
    params: list[dict[str, Any]] = field(default_factory=list)
    body: dict[str, Any] | None = None
    content_type: str = "application/json"


def state_of(request: Request) -> WebState:
    return request.app.state.web  # type: ignore[no-any-return]


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(sources.jsonable(data), status_code=status)


def area(data: Any, what: str) -> JSONResponse:
    if data is None:
        return ok({"configured": False, "detail": f"{what} not configured in this kernel"})
    return ok({"configured": True, "data": data})


def error(status: int, kind: str, detail: str, field: str | None = None) -> JSONResponse:
    body = {"error": kind, "detail": detail}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


class BadInput(ValueError):
    """A query parameter or request body the API refuses (400), naming it in ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def bad_request(exc: ValueError) -> JSONResponse:
    return error(400, "bad_request", str(exc), getattr(exc, "field", None))


_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # ASCII digits only: int() alone also reads "١٢" or "１２".
    if not _INTEGER.fullmatch(raw.strip(" ")):
        raise BadInput(name, f"query parameter {name!r} must be an integer, found {raw[:40]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise BadInput(name, f"query parameter {name!r} must be {low}..{high}, found {value}")
    return value


def _float_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = float(parse_decimal_text(raw))  # ASCII decimal: float() also reads "١٢", "nan", "inf"
    except ValueError:
        raise BadInput(name, f"query parameter {name!r} must be a number, found {raw[:40]!r}") from None
    if value in (float("inf"), float("-inf")):
        raise BadInput(name, f"query parameter {name!r} must be a finite number, found {raw[:40]!r}")
    return value


# ---------------------------------------------------------------------------- reads


async def status(request: Request) -> Response:
    return ok(await build_status(state_of(request)))


async def build_status(state: WebState) -> dict[str, Any]:
    host = state.host
    errors: dict[str, str] = {}
    health = await _read(errors, "health", sources.read_health, host)
    components = await _read(errors, "components", sources.read_components, host)
    breakers = await _read(errors, "breakers", sources.read_breakers, host)
    alerts = await _read(errors, "alerts", sources.read_alerts, host)
    areas = {}
    for name, probe in (
        ("health", lambda h: sources.find(h, "health")), ("alerts", lambda h: sources.find(h, "alerts")),
        ("pools", sources.read_pools), ("limiters", sources.read_limiters), ("bulkheads", sources.read_bulkheads),
        ("leadership", lambda h: sources.find(h, "ha")), ("failovers", sources.read_failovers),
        ("orders", lambda h: sources.find(h, "orders")), ("ledger", lambda h: sources.find(h, "ledger") or sources.find(h, "orders")),
        ("webhooks", lambda h: sources.find(h, "signals", "webhooks")),
    ):
        found = await _read(errors, name, probe, host)
        areas[name] = found is not _FAILED and found is not None
    from hrkernel.web.status import overall_state

    closing = state.closing.is_set()
    overall = await _read(errors, "overall", lambda h: overall_state(h, closing=closing), host)
    if not isinstance(overall, dict):  # could not be computed: say so, never "healthy"
        overall = {"state": "degraded", "why": [f"status unknown: {errors.get('overall', '?')}"], "role": None}
    return {
        "instance_id": state.instance_id,
        "now": time.time(),
        "uptime": time.time() - state.started_at,
        "overall": overall["state"],
        "why": overall["why"],
        "role": overall["role"],
        "health": health["overall"] if isinstance(health, dict) else "unknown",
        "components": {"total": len(components), "running": sum(1 for c in components if c["running"])}
        if isinstance(components, list) else None,
        "breakers_open": sum(1 for b in breakers if b["state"] == "open") if isinstance(breakers, list) else None,
        "alerts_firing": sum(1 for a in alerts["alerts"] if a.get("status") == "firing") if isinstance(alerts, dict) else None,
        "actions_enabled": state.config.token is not None,
        "stale_after": float(state.config.stale_after),
        "areas": areas,
        "errors": errors,
    }


async def components(request: Request) -> Response:
    return ok({"configured": True, "data": sources.read_components(state_of(request).host)})


async def health(request: Request) -> Response:
    return area(sources.read_health(state_of(request).host), "health checks")


async def health_history(request: Request) -> Response:
    try:
        limit = _int_param(request, "limit", 500, 1, 5000)
        since = _float_param(request, "since")
        data = sources.read_health_history(state_of(request).host, request.query_params.get("check"), since, limit)
    except ValueError as exc:
        return bad_request(exc)
    except sources.NotConfigured as exc:
        return error(404, "not_found", str(exc.args[0]))
    return area(data, "health checks")


async def health_trend(request: Request) -> Response:
    try:
        bucket = _int_param(request, "bucket", 60, 1, 86400)
        limit = _int_param(request, "limit", 360, 1, 5000)
        data = await sources.read_health_trend(state_of(request).host, request.query_params.get("check"), bucket, limit)
    except ValueError as exc:
        return bad_request(exc)
    except sources.NotConfigured as exc:
        return error(404, "not_found", str(exc.args[0]))
    return area(data, "health checks")


async def breakers(request: Request) -> Response:
    return ok({"configured": True, "data": sources.read_breakers(state_of(request).host)})


async def pools(request: Request) -> Response:
    return area(sources.read_pools(state_of(request).host), "connection pools")


async def limiters(request: Request) -> Response:
    return area(sources.read_limiters(state_of(request).host), "rate limiters")


async def bulkheads(request: Request) -> Response:
    return area(sources.read_bulkheads(state_of(request).host), "bulkheads")


async def alerts(request: Request) -> Response:
    return area(sources.read_alerts(state_of(request).host), "alerts")


async def orders(request: Request) -> Response:
    try:
        limit = _int_param(request, "limit", 50, 1, 1000)
    except ValueError as exc:
        return bad_request(exc)
    return area(await sources.read_orders(state_of(request).host, limit), "orders")


async def journal(request: Request) -> Response:
    try:
        limit = _int_param(request, "limit", 50, 1, 1000)
    except ValueError as exc:
        return bad_request(exc)
    only_open = request.query_params.get("open", "") in ("1", "true")
    return area(await sources.journal_page(state_of(request).host, only_open, limit), "orders")


async def order(request: Request) -> Response:
    found = await sources.journal_order(state_of(request).host, request.path_params["order_id"])
    if found is not None and found["order"] is None:
        return error(404, "not_found", f"no order {request.path_params['order_id']!r} in the journal")
    return area(found, "orders")


async def reconcile_dry_run(request: Request) -> Response:
    return area(await sources.dry_run_reconciliation(state_of(request).host), "orders (reconciliation)")


async def ledger(request: Request) -> Response:
    return area(await sources.read_ledger(state_of(request).host), "ledger")


async def failovers(request: Request) -> Response:
    return area(sources.read_failovers(state_of(request).host), "failover groups")


async def leadership(request: Request) -> Response:
    return area(sources.read_leadership(state_of(request).host), "leadership (ha)")


async def webhooks(request: Request) -> Response:
    return area(sources.read_webhooks(state_of(request).host), "webhook intake")


async def audit(request: Request) -> Response:
    try:
        limit = _int_param(request, "limit", 100, 1, 1000)
    except ValueError as exc:
        return bad_request(exc)
    return ok({"configured": True, "data": state_of(request).audit.recent(limit)})


async def _read(errors: dict[str, str], name: str, read: Callable[..., Any], *args: Any) -> Any:
    """``read(*args)``; a component that raises is reported under ``errors[name]`` (and logged),
    and the rest of the snapshot is still built."""
    try:
        value = read(*args)
        return await value if inspect.isawaitable(value) else value
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"
        log.error("dashboard_read_failed", area=name, error=errors[name])
        return _FAILED


_FAILED = object()


def _wrap(value: Any, errors: dict[str, str], name: str) -> dict[str, Any]:
    if value is _FAILED:
        return {"configured": True, "data": None, "error": errors[name]}
    return {"configured": value is not None, "data": value}


async def build_snapshot(state: WebState) -> dict[str, Any]:
    """Everything the page shows, in one document (the event stream pushes this)."""
    host = state.host
    errors: dict[str, str] = {}
    areas: dict[str, Any] = {}
    for name, read, args in (
        ("health", sources.read_health, ()), ("health_history", sources.read_health_history, (None, None, 240)),
        ("pools", sources.read_pools, ()), ("limiters", sources.read_limiters, ()),
        ("bulkheads", sources.read_bulkheads, ()), ("alerts", sources.read_alerts, ()),
        ("orders", sources.read_orders, (20,)), ("ledger", sources.read_ledger, ()),
        ("failovers", sources.read_failovers, ()), ("leadership", sources.read_leadership, ()),
        ("webhooks", sources.read_webhooks, ()), ("signals", read_signal_outcomes, (20,)),
        ("positions", read_strategy_positions, ()),
    ):
        areas[name] = _wrap(await _read(errors, name, read, host, *args), errors, name)
    if isinstance(areas["orders"]["data"], dict):
        areas["orders"]["data"].pop("latencies", None)  # Grafana charts these; keep pushes small
    components = await _read(errors, "components", sources.read_components, host)
    breakers = await _read(errors, "breakers", sources.read_breakers, host)
    return sources.jsonable({
        "status": await build_status(state),
        "components": [] if components is _FAILED else components,
        "breakers": [] if breakers is _FAILED else breakers,
        **areas,
        "audit": state.audit.recent(20),
        "errors": errors,
    })


async def snapshot(request: Request) -> Response:
    return ok(await build_snapshot(state_of(request)))


async def events(request: Request) -> Response:
    from hrkernel.web.sse import snapshot_stream

    return snapshot_stream(request, state_of(request), build_snapshot)


async def livez(request: Request) -> Response:
    monitor = sources.find(state_of(request).host, "health")
    body = monitor.liveness() if monitor is not None else {"alive": True, "stale_checks": []}
    return ok(body, 200 if body["alive"] else 503)


async def readyz(request: Request) -> Response:
    state = state_of(request)
    monitor = sources.find(state.host, "health")
    from hrkernel.web.status import overall_state

    body = monitor.readiness() if monitor is not None else {"ready": True, "status": "unknown", "unhealthy": []}
    overall = overall_state(state.host, closing=state.closing.is_set())
    # Ready means "can do its job": not when shutting down or halted (a halted kernel refuses
    # orders). "status" is the overall state, the same word the dashboard and the CLI show.
    body = {**body, "health": body.get("status"), "status": overall["state"], "why": overall["why"]}
    if overall["state"] in ("down", "halted"):
        body["ready"] = False
    if state.closing.is_set():
        body["detail"] = "shutting down"
    return ok(body, 200 if body["ready"] else 503)


async def metrics(request: Request) -> Response:
    state = state_of(request)
    await state.refresh_async()
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)


async def page(request: Request) -> Response:
    from hrkernel.web.app import STATIC

    return FileResponse(STATIC / "index.html", media_type="text/html")


async def openapi(request: Request) -> Response:
    from hrkernel.web.openapi import spec

    return ok(spec(ENDPOINTS))


# ---------------------------------------------------------------------------- actions


class AckBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    note: str = ""
    who: str = "dashboard"


class FailoverBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    target: str | None = None
    reason: str = "manual failover from the dashboard"


class ReasonBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: str = "from the dashboard"


class KillSwitchBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    on: bool
    reason: str = "kill switch from the dashboard"


async def _body(request: Request, kind: type[Any]) -> Any:
    raw = await request.body()
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        raise BadInput("body", f"request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadInput("body", f"request body is not valid JSON: {exc}") from None


async def run_action(request: Request, action: str, target: str, do: Callable[[], Awaitable[Any]]) -> Response:
    """Token check, the action, the audit entry: in that order, whatever happens."""
    state = state_of(request)
    client = client_of(request)
    refused = check_token(request, state.config.token, state.admin_token)
    if refused is not None:
        state.audit.record(action, target, "refused", f"{refused.status_code}: {describe_refusal(refused)}", client)
        return refused
    try:
        result = await do()
    except ClientDisconnect:
        raise  # the body never arrived, nothing was done: the guard logs it once (no audit entry)
    except ValueError as exc:
        state.audit.record(action, target, "bad_request", str(exc), client)
        return bad_request(exc)
    except sources.NotConfigured as exc:
        detail = str(exc.args[0]) if exc.args else str(exc)
        state.audit.record(action, target, "not_found", detail, client)
        return error(404, "not_found", detail)
    except sources.Unsupported as exc:
        state.audit.record(action, target, "unsupported", str(exc), client)
        return error(409, "unsupported", str(exc))
    except Exception as exc:  # the component's own failure: report it, keep serving
        detail = f"{type(exc).__name__}: {exc}"
        state.audit.record(action, target, "error", detail, client)
        return error(409, "action_failed", detail)
    state.audit.record(action, target, "ok", "", client)
    return ok({"ok": True, "action": action, "target": target, "result": result})


async def reset_breaker(request: Request) -> Response:
    name = request.path_params["name"]

    async def do() -> Any:
        await _body(request, ReasonBody)
        return sources.reset_breaker(state_of(request).host, name)

    return await run_action(request, "breaker_reset", name, do)


async def failover_group(request: Request) -> Response:
    group = request.path_params["group"]

    async def do() -> Any:
        body = await _body(request, FailoverBody)
        return await sources.manual_failover(state_of(request).host, group, body.target, body.reason)

    return await run_action(request, "failover", group, do)


async def leadership_step_down(request: Request) -> Response:
    async def do() -> Any:
        body = await _body(request, ReasonBody)
        return await sources.step_down(state_of(request).host, body.reason)

    return await run_action(request, "leadership_step_down", "leadership", do)


async def kill_switch(request: Request) -> Response:
    async def do() -> Any:
        body = await _body(request, KillSwitchBody)
        return await sources.set_kill_switch(state_of(request).host, body.on, body.reason)

    return await run_action(request, "kill_switch", "orders", do)


async def cancel_all_orders(request: Request) -> Response:
    async def do() -> Any:
        body = await _body(request, ReasonBody)
        return await sources.cancel_all_orders(state_of(request).host, f"cancel-all: {body.reason}")

    return await run_action(request, "orders_cancel_all", "orders", do)


async def ack_alert(request: Request) -> Response:
    alert_id = request.path_params["alert_id"]

    async def do() -> Any:
        body = await _body(request, AckBody)
        return {"acknowledged": await sources.acknowledge_alert(state_of(request).host, alert_id, body.who, body.note)}

    return await run_action(request, "alert_ack", alert_id, do)


# ---------------------------------------------------------------------------- the table

_LIMIT = {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
_REASON = {"type": "object", "additionalProperties": False, "properties": {"reason": {"type": "string"}}}

ENDPOINTS: list[Endpoint] = [
    Endpoint("/", "GET", page, "The dashboard page", tag="page", public=True, content_type="text/html"),
    Endpoint("/livez", "GET", livez, "Liveness: the health monitor runs and no check is stuck", tag="probe", public=True),
    Endpoint("/readyz", "GET", readyz, "Readiness: running and no check is unhealthy (503 otherwise)", tag="probe", public=True),
    Endpoint("/metrics", "GET", metrics, "Prometheus metrics", tag="metrics", content_type="text/plain"),
    Endpoint("/api/openapi.json", "GET", openapi, "This OpenAPI document", tag="meta", public=True),
    Endpoint("/api/status", "GET", status, "Overview: overall health, counts, which areas are configured"),
    Endpoint("/api/snapshot", "GET", snapshot, "Everything the page shows, in one document"),
    Endpoint("/api/events", "GET", events, "Server-sent events: a `snapshot` event every push interval", content_type="text/event-stream"),
    Endpoint("/api/components", "GET", components, "Every component of the kernel, its health and why it is degraded"),
    Endpoint("/api/health", "GET", health, "Health checks: reported status, last result, latency"),
    Endpoint("/api/health/history", "GET", health_history, "Health-check results over time", params=[
        {"name": "check", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "since", "in": "query", "required": False, "schema": {"type": "number"}},
        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 5000}},
    ]),
    Endpoint("/api/health/trend", "GET", health_trend, "Health-check results per time bucket from the DuckDB history (last hours)", params=[
        {"name": "check", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "bucket", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 86400}},
        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 5000}},
    ]),
    Endpoint("/api/breakers", "GET", breakers, "Circuit breakers: state, counters, failure rate, next retry"),
    Endpoint("/api/pools", "GET", pools, "Connection pools: in use, idle, waiting"),
    Endpoint("/api/limiters", "GET", limiters, "Rate limiters: headroom"),
    Endpoint("/api/bulkheads", "GET", bulkheads, "Bulkheads: in flight, queued"),
    Endpoint("/api/alerts", "GET", alerts, "Open alerts with acknowledgement, channel delivery stats"),
    Endpoint("/api/orders", "GET", orders, "Recent orders with their states, counts by state", params=[_LIMIT]),
    Endpoint("/api/journal", "GET", journal, "The order journal oldest first (`open=1`: only orders not terminal); "
             "what `hrkernel orders list` shows", params=[_LIMIT, {"name": "open", "in": "query", "required": False,
                                                               "schema": {"type": "string", "enum": ["0", "1", "true", "false"]}}]),
    Endpoint("/api/orders/{order_id}", "GET", order, "One order (client, signal or exchange order id) with its full history",
             params=[{"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}}]),
    Endpoint("/api/ledger", "GET", ledger, "Balances, positions and drift per asset"),
    Endpoint("/api/reconcile/dry-run", "GET", reconcile_dry_run,
             "Reconcile every exchange now, changing nothing; the reports (reads the exchanges: spends their budget)"),
    Endpoint("/api/failovers", "GET", failovers, "Failover groups and their history"),
    Endpoint("/api/leadership", "GET", leadership, "Role, leader, fencing token, lease expiry"),
    Endpoint("/api/webhooks", "GET", webhooks, "TradingView webhook intake counters"),
    Endpoint("/api/audit", "GET", audit, "The audit log of dashboard actions, newest first", params=[_LIMIT]),
    Endpoint("/api/breakers/{name}/reset", "POST", reset_breaker, "Reset a circuit breaker to closed", tag="action", action=True,
             params=[{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}], body=_REASON),
    Endpoint("/api/failovers/{group}/failover", "POST", failover_group, "Fail a group over (to `target` if given)", tag="action", action=True,
             params=[{"name": "group", "in": "path", "required": True, "schema": {"type": "string"}}],
             body={"type": "object", "additionalProperties": False, "properties": {"target": {"type": ["string", "null"]}, "reason": {"type": "string"}}}),
    Endpoint("/api/leadership/step-down", "POST", leadership_step_down, "Give up leadership so a standby takes over", tag="action", action=True, body=_REASON),
    Endpoint("/api/killswitch", "POST", kill_switch, "Kill switch: halt (on) or resume (off) new orders", tag="action", action=True,
             body={"type": "object", "additionalProperties": False, "required": ["on"], "properties": {"on": {"type": "boolean"}, "reason": {"type": "string"}}}),
    Endpoint("/api/orders/cancel-all", "POST", cancel_all_orders, "Emergency: cancel every open order this kernel placed (leader only)",
             tag="action", action=True, body=_REASON),
    Endpoint("/api/alerts/{alert_id}/ack", "POST", ack_alert, "Acknowledge an open alert", tag="action", action=True,
             params=[{"name": "alert_id", "in": "path", "required": True, "schema": {"type": "string"}}],
             body={"type": "object", "additionalProperties": False, "properties": {"note": {"type": "string"}, "who": {"type": "string"}}}),
]

# Operators' actions (signals, transfers, drift acks) live in their own module; it builds on
# run_action above, hence the import here.
from hrkernel.web.operator_api import OPERATOR_ENDPOINTS, read_signal_outcomes  # noqa: E402
from hrkernel.web.positions_view import read_strategy_positions  # noqa: E402

ENDPOINTS += OPERATOR_ENDPOINTS


def guarded(endpoint: Endpoint) -> Handler:
    """Wrap read handlers with the optional token check (``require_token_for_reads``)."""
    if endpoint.public or endpoint.action:
        return endpoint.handler
    handler = endpoint.handler

    async def wrapper(request: Request) -> Response:
        state = state_of(request)
        if state.config.require_token_for_reads:
            refused = check_token(request, state.config.token, state.admin_token)
            if refused is not None:
                return refused
        return await handler(request)

    wrapper.__name__ = handler.__name__
    return wrapper


def routes() -> list[Route]:
    return [Route(e.path, guarded(e), methods=[e.method], name=e.handler.__name__) for e in ENDPOINTS]
