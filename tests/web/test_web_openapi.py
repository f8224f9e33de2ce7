"""The OpenAPI document: valid, complete, and fuzzed with schemathesis against a running kernel."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Mount, Route

from hrkernel.web.api import ENDPOINTS
from hrkernel.web.app import StandaloneHost, create_app


def test_the_served_spec_is_valid_openapi(shared_kernel: Any) -> None:
    spec = httpx.get(shared_kernel.url + "/api/openapi.json").json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")


def test_every_route_of_the_app_is_documented() -> None:
    app = create_app(StandaloneHost())
    routes = {(r.path, m) for r in app.routes if isinstance(r, Route) for m in (r.methods or ()) if m != "HEAD"}
    from hrkernel.web.openapi import spec as build

    documented = {(p, m.upper()) for p, ops in build(ENDPOINTS)["paths"].items() for m in ops}
    assert routes == documented
    assert any(isinstance(r, Mount) and r.path == "/static" for r in app.routes)


def test_actions_are_documented_with_their_auth_responses() -> None:
    from hrkernel.web.openapi import spec as build

    doc = build(ENDPOINTS)
    posts = [(path, ops["post"]) for path, ops in doc["paths"].items() if "post" in ops]
    assert len(posts) == 10  # 6 dashboard actions (with cancel-all) + signals, deposit, withdraw, drift ack
    for path, op in posts:
        assert {"200", "401", "403", "404"} <= set(op["responses"]), path
        assert op["security"] == [{"token": []}]


FUZZED = sorted((e.method, e.path) for e in ENDPOINTS if e.path != "/api/events")  # events: an endless stream


@pytest.mark.parametrize("method,path", FUZZED)
def test_fuzzed_requests_never_get_a_server_error(shared_kernel: Any, method: str, path: str) -> None:
    schema = schemathesis.openapi.from_url(shared_kernel.url + "/api/openapi.json")
    operation = schema[path][method].ok() if hasattr(schema[path][method], "ok") else schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Any) -> None:
        # With the real token, so the fuzzer reaches the actions' own validation, not just the 401.
        case.call_and_validate(
            headers={"Authorization": f"Bearer {shared_kernel.token}"},
            checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        )

    run()
