"""The OpenAPI 3.1 document, built from the route table in :mod:`hrkernel.web.api`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hrkernel.web.api import Endpoint

_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "string"},
        "field": {"type": "string", "description": "The query parameter, `body` or header refused (400, 403 Host, 408)"},
    },
}
_AREA = {
    "type": "object",
    "required": ["configured"],
    "properties": {"configured": {"type": "boolean"}, "data": {}, "detail": {"type": "string"}},
}


def _responses(endpoint: Endpoint) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if endpoint.content_type == "application/json":
        schema: dict[str, Any] = {"$ref": "#/components/schemas/Area"} if endpoint.tag in ("read",) and endpoint.path not in (
            "/api/status", "/api/snapshot") else {"type": "object"}
        body: dict[str, Any] = {"content": {"application/json": {"schema": schema}}}
    else:
        body = {"content": {endpoint.content_type: {"schema": {"type": "string"}}}}
    out: dict[str, Any] = {"200": {"description": "OK", **body}}
    if endpoint.tag in ("read", "metrics", "action"):
        out["503"] = {"description": "A component raised while being read (the detail names the error)", **error}
    if endpoint.tag == "probe":
        out["503"] = {"description": "Not alive / not ready", "content": {"application/json": {"schema": {"type": "object"}}}}
    if endpoint.params and any(p["in"] == "query" for p in endpoint.params):
        out["400"] = {"description": "Bad query parameter", **error}
    if endpoint.action:
        out["400"] = {"description": "Bad request body", **error}
        out["404"] = {"description": "No such object, or the area is not configured", **error}
        out["409"] = {"description": "The component refused or failed the action", **error}
        out["408"] = {"description": "The body did not arrive within [dashboard] body_timeout", **error}
        out["503"] = {"description": "A component raised, or too many request bodies are arriving "
                                     "([dashboard] max_incomplete_bodies; retry)", **error}
    if endpoint.path in ("/api/health/history", "/api/health/trend"):
        out["404"] = {"description": "No such health check", **error}
    if not endpoint.public:
        out["401"] = {"description": "No token" + ("" if endpoint.action else " (only with require_token_for_reads)"), **error}
        out["403"] = {"description": "Wrong token, or actions disabled (no token configured)", **error}
    # Every route sits behind the Host check (hrkernel.web.guard).
    out.setdefault("403", {"description": "Host is not one of the dashboard's names ([dashboard] allowed_hosts)", **error})
    if not endpoint.public:
        out["403"]["description"] += "; or Host is not one of the dashboard's names ([dashboard] allowed_hosts)"
    return out


def spec(endpoints: list[Endpoint]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for e in endpoints:
        op: dict[str, Any] = {
            "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{e.method.lower()}_{e.path}").strip("_") or "root",
            "summary": e.summary,
            "tags": [e.tag],
            "responses": _responses(e),
        }
        if e.params:
            op["parameters"] = e.params
        if e.body is not None:
            op["requestBody"] = {"required": False, "content": {"application/json": {"schema": e.body}}}
        if not e.public:
            op["security"] = [{"token": []}] if e.action else [{}, {"token": []}]
        paths.setdefault(e.path, {})[e.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hrkernel dashboard API",
            "version": "1",
            "description": "Reads answer {configured: false} for areas absent from this kernel. "
            "Actions need the dashboard token (401 without, 403 with a wrong one) and are audited.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR, "Area": _AREA},
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
    }
