"""/metrics of a running kernel: what the collector reads at scrape time, and the Grafana JSON."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hrkernel.resilience import registry
from hrkernel.web.metrics import METRIC_NAMES

GRAFANA = Path(__file__).resolve().parents[2] / "grafana" / "hrkernel-dashboard.json"


def scrape(url: str) -> tuple[str, dict[str, Any]]:
    r = httpx.get(url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    return r.text, families


def declared(text: str) -> set[str]:
    """Every exposed series name: ``# TYPE`` families plus the suffixed names a query may use."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        if kind == "counter":
            names.add(name + "_total")
        if kind == "histogram":
            names.update({name + "_bucket", name + "_sum", name + "_count"})
    return names


def grafana_metric_names() -> set[str]:
    dashboard = json.loads(GRAFANA.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v.get("query", "") for v in dashboard["templating"]["list"] if isinstance(v.get("query"), str)]
    return {m for e in exprs for m in re.findall(r"\bhrkernel_[a-z0-9_]+\b", e)}


def test_every_metric_the_grafana_dashboard_uses_exists(shared_kernel: Any) -> None:
    used = grafana_metric_names()
    assert len(used) >= 20
    text, _ = scrape(shared_kernel.url)
    missing = used - declared(text)
    assert not missing, f"Grafana queries metrics /metrics does not expose: {sorted(missing)}"


def test_every_declared_metric_family_is_exposed_and_used_by_grafana(shared_kernel: Any) -> None:
    text, _ = scrape(shared_kernel.url)
    exposed = declared(text)
    used = grafana_metric_names()
    for name in METRIC_NAMES:
        assert name in exposed, name
        assert any(u == name or u.startswith(name + "_") for u in used), f"{name} is not on the Grafana dashboard"


def test_metrics_reflect_components_health_leadership_and_failovers(running_kernel: Any) -> None:
    _, families = scrape(running_kernel.url)
    running = {s.labels["component"]: s.value for s in families["hrkernel_component_running"].samples}
    assert running["web"] == 1 and running["ha"] == 1 and running["feed:a"] == 1
    expected = set(running_kernel.get("health").runs)
    deadline = time.monotonic() + 5
    while True:  # every check reports within its first interval; until then it has no sample
        checks = {s.labels["check"] for s in families["hrkernel_health_check_status"].samples}
        if checks == expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
        _, families = scrape(running_kernel.url)
    assert checks == expected
    assert [s.value for s in families["hrkernel_lease_is_leader"].samples] == [1.0]
    assert families["hrkernel_failovers"].samples == []
    token = {"Authorization": f"Bearer {running_kernel.token}"}
    assert httpx.post(running_kernel.url + "/api/failovers/feeds/failover", json={}, headers=token).status_code == 200
    _, families = scrape(running_kernel.url)
    totals = {s.labels["group"]: s.value for s in families["hrkernel_failovers"].samples if s.name.endswith("_total")}
    assert totals == {"feeds": 1.0}
    counts = [s for s in families["hrkernel_failover_duration_seconds"].samples if s.name.endswith("_count")]
    assert [(s.labels["group"], s.value) for s in counts] == [("feeds", 1.0)]
    actions = {(s.labels["action"], s.labels["outcome"]): s.value for s in families["hrkernel_dashboard_actions"].samples if s.name.endswith("_total")}
    assert actions[("failover", "ok")] == 1.0


def test_breaker_metrics_follow_real_failures(shared_kernel: Any) -> None:
    breaker = registry.get_or_create(f"web-metrics-{uuid.uuid4().hex[:8]}", failure_threshold=2, reset_timeout=60.0)
    try:
        def state() -> float:
            _, families = scrape(shared_kernel.url)
            return {s.labels["breaker"]: s.value for s in families["hrkernel_breaker_state"].samples}[breaker.name]

        assert state() == 0
        closed_port = "http://127.0.0.1:9"  # discard port: nothing listens, connection refused
        for _ in range(2):
            try:
                breaker.call_sync(httpx.get, closed_port, timeout=1)
            except httpx.HTTPError:
                pass
        assert state() == 2
        _, families = scrape(shared_kernel.url)
        calls = {s.labels["outcome"]: s.value for s in families["hrkernel_breaker_calls"].samples
                 if s.labels["breaker"] == breaker.name and s.name.endswith("_total")}
        assert calls["failures"] == 2 and calls["successes"] == 0
        transitions = [s.value for s in families["hrkernel_breaker_transitions"].samples if s.labels["breaker"] == breaker.name and s.name.endswith("_total")]
        assert transitions == [1.0]
    finally:
        registry.remove(breaker.name)


def test_alert_counts_are_exported(running_kernel: Any) -> None:
    alerts = running_kernel.get("alerts")
    def critical() -> dict[tuple[str, str], float]:
        _, families = scrape(running_kernel.url)
        return {(s.labels["level"], s.labels["acknowledged"]): s.value for s in families["hrkernel_alerts_open"].samples
                if s.labels["level"] == "critical"}

    assert critical() == {}
    alert = running_kernel.call(lambda: alerts.send_alert_nowait(source="web", level="critical", title="ledger drift"))
    assert critical() == {("critical", "false"): 1.0}
    token = {"Authorization": f"Bearer {running_kernel.token}"}
    assert httpx.post(f"{running_kernel.url}/api/alerts/{alert.id}/ack", json={}, headers=token).status_code == 200
    assert critical() == {("critical", "true"): 1.0}
