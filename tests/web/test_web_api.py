"""The JSON API of a running kernel over real HTTP: every endpoint, auth, the audit log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from hrkernel.resilience import CircuitBreaker, registry
from hrkernel.web.app import StandaloneHost, create_health_dashboard

READS = [
    "/api/status", "/api/snapshot", "/api/components", "/api/health", "/api/health/history", "/api/health/trend", "/api/breakers",
    "/api/pools", "/api/limiters", "/api/bulkheads", "/api/alerts", "/api/orders", "/api/ledger",
    "/api/failovers", "/api/leadership", "/api/webhooks", "/api/audit",
]
ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("/api/breakers/some-breaker/reset", {}),
    ("/api/failovers/feeds/failover", {}),
    ("/api/leadership/step-down", {}),
    ("/api/killswitch", {"on": True}),
    ("/api/alerts/some-alert/ack", {}),
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def breaker() -> Iterator[CircuitBreaker]:
    """A breaker in the process-wide registry the dashboard reads (removed afterwards)."""
    b = registry.get_or_create(f"web-test-{uuid.uuid4().hex[:8]}", failure_threshold=3, reset_timeout=60.0)
    yield b
    registry.remove(b.name)


@pytest.mark.parametrize("path", READS)
def test_every_read_endpoint_answers_json_with_its_configuration(shared_kernel: Any, path: str) -> None:
    r = httpx.get(shared_kernel.url + path)
    assert r.status_code == 200, r.text
    body = r.json()
    if path not in ("/api/status", "/api/snapshot"):
        assert isinstance(body["configured"], bool)
        if not body["configured"]:
            assert "not configured" in body["detail"]


def test_status_names_the_instance_and_which_areas_exist(shared_kernel: Any) -> None:
    status = httpx.get(shared_kernel.url + "/api/status").json()
    assert status["instance_id"] == "web-test"
    assert status["actions_enabled"] is True
    assert status["areas"]["health"] and status["areas"]["alerts"] and status["areas"]["failovers"]
    assert status["areas"]["orders"] is False  # no order pipeline in this kernel: shown as such
    assert status["components"]["running"] == status["components"]["total"] >= 5


def test_components_lists_every_kernel_component_in_start_order(shared_kernel: Any) -> None:
    data = httpx.get(shared_kernel.url + "/api/components").json()["data"]
    names = [c["name"] for c in data]
    assert names == [c.name for c in shared_kernel.kernel.components]
    assert {"ha", "alerts", "health", "web", "feed:a", "feed:b"} <= set(names)
    assert all(c["running"] for c in data)


def test_health_and_history_come_from_the_monitor(shared_kernel: Any) -> None:
    health = httpx.get(shared_kernel.url + "/api/health").json()["data"]
    assert set(health["checks"]) == set(shared_kernel.get("health").runs)
    history = httpx.get(shared_kernel.url + "/api/health/history", params={"check": "event_loop_lag", "limit": 3}).json()["data"]
    points = history["event_loop_lag"]
    assert 1 <= len(points) <= 3 and points[-1]["status"] in ("healthy", "degraded", "unhealthy")
    assert httpx.get(shared_kernel.url + "/api/health/history", params={"check": "nope"}).status_code == 404
    bad = httpx.get(shared_kernel.url + "/api/health/history", params={"limit": "zero"})
    assert bad.status_code == 400 and "limit" in bad.json()["detail"]


def test_health_trend_buckets_come_from_the_duckdb_history(shared_kernel: Any) -> None:
    trend = httpx.get(shared_kernel.url + "/api/health/trend", params={"check": "event_loop_lag", "bucket": 3600}).json()["data"]
    rows = trend["event_loop_lag"]
    assert 1 <= len(rows) <= 2 and rows[-1]["count"] >= 1 and 0.0 <= rows[-1]["healthy_share"] <= 1.0  # 2 across an hour boundary
    assert httpx.get(shared_kernel.url + "/api/health/trend", params={"check": "nope"}).status_code == 404
    assert httpx.get(shared_kernel.url + "/api/health/trend", params={"bucket": 0}).status_code == 400


def test_leadership_shows_role_leader_and_fencing_token(shared_kernel: Any) -> None:
    data = httpx.get(shared_kernel.url + "/api/leadership").json()["data"]
    assert data["role"] == "leader" and data["leader"] == "web-test" and data["token"] >= 1


def test_probes(shared_kernel: Any) -> None:
    assert httpx.get(shared_kernel.url + "/livez").json()["alive"] is True
    ready = httpx.get(shared_kernel.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_page_and_its_assets_are_served_from_the_package(shared_kernel: Any) -> None:
    page = httpx.get(shared_kernel.url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert httpx.get(shared_kernel.url + asset).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # no CDN


def test_event_stream_pushes_snapshots(shared_kernel: Any) -> None:
    with httpx.stream("GET", shared_kernel.url + "/api/events", timeout=5) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events: list[dict[str, Any]] = []
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "snapshot":
                events.append(msgspec.json.decode(line[6:]))
                if len(events) == 2:
                    break
    assert events[0]["status"]["instance_id"] == "web-test"
    assert events[1]["status"]["now"] > events[0]["status"]["now"]


@pytest.mark.parametrize("path,body", ACTIONS)
def test_actions_refuse_a_missing_token_with_401_and_a_wrong_one_with_403(shared_kernel: Any, path: str, body: dict[str, Any]) -> None:
    before = len(httpx.get(shared_kernel.url + "/api/audit", params={"limit": 1000}).json()["data"])
    missing = httpx.post(shared_kernel.url + path, json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.post(shared_kernel.url + path, json=body, headers=bearer("not-the-token"))
    assert wrong.status_code == 403 and wrong.json()["detail"] == "wrong dashboard token"
    audit = httpx.get(shared_kernel.url + "/api/audit", params={"limit": 1000}).json()["data"]
    assert len(audit) == before + 2
    assert [e["outcome"] for e in audit[:2]] == ["refused", "refused"]
    assert audit[0]["detail"].startswith("403") and audit[1]["detail"].startswith("401")
    assert shared_kernel.token not in str(audit)


def test_breaker_reset_closes_an_open_breaker_and_is_audited(shared_kernel: Any, breaker: CircuitBreaker) -> None:
    breaker.force_open(reason="test")
    listed = {b["name"]: b for b in httpx.get(shared_kernel.url + "/api/breakers").json()["data"]}
    assert listed[breaker.name]["state"] == "open" and listed[breaker.name]["retry_in"] > 0
    r = httpx.post(f"{shared_kernel.url}/api/breakers/{breaker.name}/reset", json={}, headers=bearer(shared_kernel.token))
    assert r.status_code == 200 and r.json()["result"]["state"] == "closed"
    assert breaker.state.value == "closed"
    entry = httpx.get(shared_kernel.url + "/api/audit").json()["data"][0]
    assert (entry["action"], entry["target"], entry["outcome"]) == ("breaker_reset", breaker.name, "ok")
    missing = httpx.post(f"{shared_kernel.url}/api/breakers/no-such/reset", json={}, headers=bearer(shared_kernel.token))
    assert missing.status_code == 404 and "no-such" in missing.json()["detail"]


def test_manual_failover_switches_the_group_and_records_it(running_kernel: Any) -> None:
    url, token = running_kernel.url, running_kernel.token
    r = httpx.post(url + "/api/failovers/feeds/failover", json={"reason": "test"}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert (r.json()["result"]["from_member"], r.json()["result"]["to_member"]) == ("feed:a", "feed:b")
    data = httpx.get(url + "/api/failovers").json()["data"]
    assert data["groups"]["feeds"]["serving"] == ["feed:b"]
    assert data["history"][0]["group"] == "feeds" and data["history"][0]["duration"] is not None
    unknown = httpx.post(url + "/api/failovers/nope/failover", json={}, headers=bearer(token))
    assert unknown.status_code == 404 and "feeds" in unknown.json()["detail"]
    bad = httpx.post(url + "/api/failovers/feeds/failover", json={"target": 5}, headers=bearer(token))
    assert bad.status_code == 400
    outcomes = [(e["action"], e["outcome"]) for e in httpx.get(url + "/api/audit").json()["data"][:3]]
    assert outcomes == [("failover", "bad_request"), ("failover", "not_found"), ("failover", "ok")]


def test_alert_acknowledged_through_the_api(running_kernel: Any) -> None:
    alerts = running_kernel.get("alerts")
    alert = running_kernel.call(lambda: alerts.send_alert_nowait(source="web", level="warning", title="disk almost full"))
    def mine() -> dict[str, Any]:
        listed = httpx.get(running_kernel.url + "/api/alerts").json()["data"]["alerts"]
        return next(a for a in listed if a["id"] == alert.id)

    assert mine()["acknowledged_by"] is None and mine()["title"] == "disk almost full"
    r = httpx.post(f"{running_kernel.url}/api/alerts/{alert.id}/ack", json={"note": "on it", "who": "ops"}, headers=bearer(running_kernel.token))
    assert r.status_code == 200, r.text
    assert mine()["acknowledged_by"] == "ops"
    assert httpx.post(f"{running_kernel.url}/api/alerts/nope/ack", json={}, headers=bearer(running_kernel.token)).status_code == 404


def test_actions_of_areas_that_cannot_do_them_say_so(shared_kernel: Any) -> None:
    kill = httpx.post(shared_kernel.url + "/api/killswitch", json={"on": True}, headers=bearer(shared_kernel.token))
    assert kill.status_code == 404 and "kill switch" in kill.json()["detail"]
    step = httpx.post(shared_kernel.url + "/api/leadership/step-down", json={}, headers=bearer(shared_kernel.token))
    assert step.status_code == 409 and "local lease" in step.json()["detail"]
    body = httpx.post(shared_kernel.url + "/api/killswitch", content=b"{not json", headers=bearer(shared_kernel.token))
    assert body.status_code == 400 and "not valid JSON" in body.json()["detail"]


def test_reads_can_require_the_token(make_kernel: Any) -> None:
    k = make_kernel("require_token_for_reads = true")
    for path in ("/api/status", "/api/events", "/metrics", "/api/breakers"):
        assert httpx.get(k.url + path).status_code == 401
        assert httpx.get(k.url + path, headers=bearer("wrong-token-x")).status_code == 403
    assert httpx.get(k.url + "/api/status", headers=bearer(k.token)).json()["instance_id"] == "web-test"
    assert httpx.get(k.url + "/metrics", headers=bearer(k.token)).status_code == 200
    for public in ("/livez", "/readyz", "/api/openapi.json", "/"):
        assert httpx.get(k.url + public).status_code == 200, public


@pytest.mark.anyio
async def test_embedded_dashboard_without_a_token_refuses_every_action() -> None:
    dashboard = create_health_dashboard(StandaloneHost(), port=0)
    await dashboard.initialize()
    await dashboard.start()
    try:
        async with httpx.AsyncClient(base_url=dashboard.url) as client:
            assert (await client.get("/api/components")).json() == {"configured": True, "data": []}
            r = await client.post("/api/breakers/x/reset", json={}, headers=bearer("whatever-token"))
            assert r.status_code == 403 and "no dashboard token is configured" in r.json()["detail"]
            assert (await client.post("/api/breakers/x/reset", json={})).status_code == 401
    finally:
        await dashboard.stop()


@pytest.mark.anyio
async def test_routes_a_component_offers_are_mounted_on_the_same_app() -> None:
    from prometheus_client import CollectorRegistry, Counter
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    class Intake:
        """Offers POST /webhooks/tradingview the way the signals component does."""

        name = "signals"

        def __init__(self) -> None:
            self.received: list[Any] = []
            self.registry = CollectorRegistry()
            self.requests = Counter("hrkernel_test_intake_requests", "requests", registry=self.registry)

        async def tradingview(self, request: Request) -> JSONResponse:
            self.received.append(await request.json())
            self.requests.inc()
            return JSONResponse({"accepted": True}, status_code=202)

        def web_routes(self) -> list[Route]:
            return [Route("/webhooks/tradingview", self.tradingview, methods=["POST"])]

        def stats(self) -> dict[str, int]:
            return {"accepted": len(self.received), "rejected": 0}

    host = StandaloneHost()
    intake = host.add(Intake())
    dashboard = create_health_dashboard(host, port=0)
    async with dashboard:
        async with httpx.AsyncClient(base_url=dashboard.url) as client:
            r = await client.post("/webhooks/tradingview", json={"ticker": "BTCIRT", "action": "buy"})
            assert r.status_code == 202 and intake.received == [{"ticker": "BTCIRT", "action": "buy"}]
            assert (await client.get("/api/webhooks")).json() == {"configured": True, "data": {"accepted": 1, "rejected": 0}}
            metrics = (await client.get("/metrics")).text
            assert 'hrkernel_webhook_requests_total{outcome="accepted"} 1.0' in metrics
            assert "hrkernel_test_intake_requests_total 1.0" in metrics  # the component's own registry


def test_stopping_the_dashboard_ends_open_event_streams_promptly(running_kernel: Any) -> None:
    import threading
    import time

    lines: list[str] = []
    ended = threading.Event()

    def listen() -> None:
        try:
            with httpx.stream("GET", running_kernel.url + "/api/events", timeout=10) as r:
                for line in r.iter_lines():
                    lines.append(line)
        except httpx.HTTPError:
            pass
        ended.set()

    threading.Thread(target=listen, daemon=True).start()
    deadline = time.monotonic() + 5
    while not any(line.startswith("event: snapshot") for line in lines) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert httpx.get(running_kernel.url + "/api/status").json()["instance_id"] == "web-test"
    began = time.monotonic()
    running_kernel.call(running_kernel.get("web").stop)
    assert time.monotonic() - began < 2.5  # shutdown does not wait for the page to go away
    assert ended.wait(3)
    assert running_kernel.get("web").state.closing.is_set()


@pytest.mark.anyio
async def test_a_component_that_raises_while_read_gets_a_503_naming_the_error() -> None:
    class Broken:
        name = "alerts"
        open: dict[str, Any] = {}

        def stats(self) -> dict[str, Any]:
            raise RuntimeError("history database is locked")

    host = StandaloneHost()
    host.add(Broken())
    async with create_health_dashboard(host, port=0) as dashboard:
        async with httpx.AsyncClient(base_url=dashboard.url) as client:
            r = await client.get("/api/alerts")
            assert r.status_code == 503 and r.json() == {"error": "component_failed", "detail": "RuntimeError: history database is locked"}
            assert (await client.get("/api/components")).status_code == 200  # the rest keeps working
            assert (await client.get("/livez")).status_code == 200
            metrics = await client.get("/metrics")  # the scrape loses only the alert families
            assert metrics.status_code == 200 and "hrkernel_up 1.0" in metrics.text
            assert "hrkernel_breaker_state" in metrics.text and "hrkernel_alerts_open" not in metrics.text


@pytest.mark.anyio
async def test_the_snapshot_reports_a_failing_area_and_still_shows_the_others() -> None:
    class Broken:
        name = "alerts"
        open: dict[str, Any] = {}

        def stats(self) -> dict[str, Any]:
            raise RuntimeError("history database is locked")

    host = StandaloneHost()
    host.add(Broken())
    async with create_health_dashboard(host, port=0) as dashboard:
        async with httpx.AsyncClient(base_url=dashboard.url) as client:
            snap = (await client.get("/api/snapshot")).json()
    assert snap["errors"] == {"alerts": "RuntimeError: history database is locked"}
    assert snap["alerts"] == {"configured": True, "data": None, "error": "RuntimeError: history database is locked"}
    assert snap["status"]["alerts_firing"] is None and snap["status"]["errors"]["alerts"].startswith("RuntimeError")
    assert [c["name"] for c in snap["components"]] == ["alerts"] and "describe_error" in snap["components"][0]
    assert snap["leadership"] == {"configured": False, "data": None}
