"""Prometheus ``/metrics``: one custom collector that reads the components at scrape time.

Areas do not import prometheus_client: the collector asks each component for its state (through
:mod:`hrkernel.web.sources`) when Prometheus scrapes. A component that keeps its own
``CollectorRegistry`` (found among its attributes, e.g. the webhook intake's) has it appended.

Every family below is always declared (``# HELP``/``# TYPE``), with samples for what exists;
:data:`METRIC_NAMES` is the list the Grafana dashboard is checked against.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hrkernel.logging import get_logger
from hrkernel.web import sources

if TYPE_CHECKING:
    from hrkernel.web.app import WebState

BREAKER_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}
HEALTH_STATUS_VALUE = {"healthy": 0, "degraded": 1, "unhealthy": 2}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
log = get_logger("hrkernel.web.metrics")
FAILOVER_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

METRIC_NAMES = (
    "hrkernel_up",
    "hrkernel_component_running",
    "hrkernel_health_check_status",
    "hrkernel_health_check_latency_seconds",
    "hrkernel_breaker_state",
    "hrkernel_breaker_transitions_total",
    "hrkernel_breaker_calls_total",
    "hrkernel_breaker_failure_rate",
    "hrkernel_pool_connections",
    "hrkernel_rate_limiter_headroom",
    "hrkernel_bulkhead_in_flight",
    "hrkernel_orders",
    "hrkernel_order_latency_seconds",
    "hrkernel_ledger_drift",
    "hrkernel_lease_is_leader",
    "hrkernel_lease_fencing_token",
    "hrkernel_replication_lag_seconds",
    "hrkernel_replication_lag_entries",
    "hrkernel_failovers_total",
    "hrkernel_failover_duration_seconds",
    "hrkernel_alerts_open",
    "hrkernel_alert_deliveries_total",
    "hrkernel_webhook_requests_total",
    "hrkernel_dashboard_actions_total",
    "hrkernel_dashboard_stream_clients",
)
"""Metric family names (counters without their ``_total`` in the exposition's ``# TYPE``)."""


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _histogram(name: str, doc: str, labels: list[str], series: dict[tuple[str, ...], list[float]], buckets: tuple[float, ...]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for label_values, values in sorted(series.items()):
        cumulative = []
        for bound in buckets:
            cumulative.append((str(bound), float(sum(1 for v in values if v <= bound))))
        cumulative.append(("+Inf", float(len(values))))
        family.add_metric(list(label_values), cumulative, sum_value=float(sum(values)))
    return family


class KernelCollector(Collector):
    def __init__(self, state: WebState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        host = self.state.host
        yield GaugeMetricFamily("hrkernel_up", "1 while the kernel serves metrics", value=1)
        for section in (self._components, self._health, self._breakers, self._resilience, self._orders_and_ledger,
                        self._ha, self._alerts, self._webhooks, self._dashboard, self._registries):
            # One component failing to be read costs its own families, not the whole scrape.
            try:
                families = list(section(host))
            except Exception as exc:
                log.error("metrics_read_failed", section=section.__name__.lstrip("_"), error=f"{type(exc).__name__}: {exc}")
                continue
            yield from families

    def _components(self, host: sources.Host) -> Iterator[Metric]:
        running = GaugeMetricFamily("hrkernel_component_running", "1 if the component started and is running", labels=["component", "kind"])
        for c in sources.read_components(host):
            running.add_metric([str(c["name"]), str(c.get("kind", ""))], 1.0 if c["running"] else 0.0)
        yield running

    def _webhooks(self, host: sources.Host) -> Iterator[Metric]:
        hooks = CounterMetricFamily("hrkernel_webhook_requests_total", "TradingView webhook requests by outcome", labels=["outcome"])
        for outcome, count in sorted((sources.read_webhooks(host) or {}).items()):
            if outcome != "pending" and _num(count) is not None:  # pending is a level, not a count
                hooks.add_metric([outcome], float(count))
        yield hooks

    def _dashboard(self, host: sources.Host) -> Iterator[Metric]:
        actions = CounterMetricFamily("hrkernel_dashboard_actions_total", "Dashboard actions by action and outcome", labels=["action", "outcome"])
        for (action, outcome), count in sorted(self.state.audit.counts.items()):
            actions.add_metric([action, outcome], float(count))
        yield actions
        yield GaugeMetricFamily("hrkernel_dashboard_stream_clients", "Pages connected to the event stream", value=self.state.stream_clients)

    def _registries(self, host: sources.Host) -> Iterator[Metric]:
        for extra in sources.metric_registries(host, exclude=self.state.registry):
            yield from extra.collect()

    def _health(self, host: sources.Host) -> Iterator[Metric]:
        status = GaugeMetricFamily("hrkernel_health_check_status", "Reported status: 0 healthy, 1 degraded, 2 unhealthy", labels=["check"])
        latency = GaugeMetricFamily("hrkernel_health_check_latency_seconds", "Latency of the last run of the check", labels=["check"])
        health = sources.read_health(host)
        for name, check in sorted((health or {}).get("checks", {}).items()):
            if check["status"] in HEALTH_STATUS_VALUE:
                status.add_metric([name], HEALTH_STATUS_VALUE[check["status"]])
            if check.get("latency") is not None:
                latency.add_metric([name], float(check["latency"]))
        yield status
        yield latency

    def _breakers(self, host: sources.Host) -> Iterator[Metric]:
        state = GaugeMetricFamily("hrkernel_breaker_state", "Breaker state: 0 closed, 1 half-open, 2 open", labels=["breaker"])
        transitions = CounterMetricFamily("hrkernel_breaker_transitions_total", "Breaker state changes", labels=["breaker"])
        calls = CounterMetricFamily("hrkernel_breaker_calls_total", "Calls through the breaker by outcome", labels=["breaker", "outcome"])
        rate = GaugeMetricFamily("hrkernel_breaker_failure_rate", "Failure rate over the breaker's current window", labels=["breaker"])
        for b in sources.read_breakers(host):
            name = b["name"]
            state.add_metric([name], BREAKER_STATE_VALUE.get(b["state"], -1))
            transitions.add_metric([name], float(b.get("state_changes", 0)))
            for outcome in ("successes", "failures", "rejected", "slow_calls"):
                calls.add_metric([name, outcome], float(b.get(outcome, 0)))
            rate.add_metric([name], float(b.get("failure_rate", 0.0)))
        yield from (state, transitions, calls, rate)

    def _resilience(self, host: sources.Host) -> Iterator[Metric]:
        pools = GaugeMetricFamily("hrkernel_pool_connections", "Pool connections by state", labels=["pool", "state"])
        for pool in sources.read_pools(host) or []:
            for key in ("in_use", "idle", "waiting"):
                if _num(pool.get(key)) is not None:
                    pools.add_metric([pool["name"], key], float(pool[key]))
        yield pools
        headroom = GaugeMetricFamily("hrkernel_rate_limiter_headroom", "Requests the limiter admits right now", labels=["limiter"])
        for lim in sources.read_limiters(host) or []:
            value = _num(lim.get("headroom", lim.get("available", lim.get("tokens"))))
            if value is not None:
                headroom.add_metric([lim["name"]], value)
        yield headroom
        bulk = GaugeMetricFamily("hrkernel_bulkhead_in_flight", "Calls running inside the bulkhead", labels=["bulkhead"])
        for b in sources.read_bulkheads(host) or []:
            value = _num(b.get("in_flight", b.get("active")))
            if value is not None:
                bulk.add_metric([b["name"]], value)
        yield bulk

    def _orders_and_ledger(self, host: sources.Host) -> Iterator[Metric]:
        # Orders and ledger are read asynchronously by the app before each scrape (see
        # WebState.refresh_async); the collector only formats that cached read.
        cached = self.state.async_cache
        orders = GaugeMetricFamily("hrkernel_orders", "Orders by journal state", labels=["state"])
        for state, count in sorted(((cached.get("orders") or {}).get("counts") or {}).items()):
            if _num(count) is not None:
                orders.add_metric([state], float(count))
        yield orders
        latencies = (cached.get("orders") or {}).get("latencies") or {}
        yield _histogram("hrkernel_order_latency_seconds", "Order latency by phase (total: journaled to final state)", ["phase"],
                         {(phase,): [float(v) for v in values] for phase, values in latencies.items()}, LATENCY_BUCKETS)
        drift = GaugeMetricFamily("hrkernel_ledger_drift", "Exchange minus ledger balance per exchange and asset at the last reconciliation (a float, for graphs only)", labels=["exchange", "asset"])
        raw = (cached.get("ledger") or {}).get("drift") or {}
        items = (("", k, v) for k, v in raw.items()) if isinstance(raw, dict) else (
            (d.get("exchange") or "", d.get("asset"), d.get("drift")) for d in raw if isinstance(d, dict))
        for exchange, asset, value in items:
            amount = _num(value)
            if amount is not None:
                drift.add_metric([str(exchange), str(asset)], amount)
        yield drift

    def _ha(self, host: sources.Host) -> Iterator[Metric]:
        leader = GaugeMetricFamily("hrkernel_lease_is_leader", "1 while this instance holds the lease", labels=["instance_id"])
        token = GaugeMetricFamily("hrkernel_lease_fencing_token", "Fencing token of the lease this instance holds", labels=["instance_id"])
        lead = sources.read_leadership(host)
        if lead:
            instance = str(lead.get("instance_id", lead.get("instance", "")))
            role = lead.get("role")
            is_leader = lead.get("is_leader", role == "leader")
            leader.add_metric([instance], 1.0 if is_leader else 0.0)
            fencing = _num(lead.get("token", lead.get("fencing_token")))
            if fencing is not None:
                token.add_metric([instance], fencing)
        yield leader
        yield token
        lag_s = GaugeMetricFamily("hrkernel_replication_lag_seconds", "How far this instance's journal and ledger trail the leader's commits (0 when caught up; on the leader: nothing unpublished)", labels=["instance_id", "mode"])
        lag_n = GaugeMetricFamily("hrkernel_replication_lag_entries", "Replication stream entries this instance has not applied yet", labels=["instance_id", "mode"])
        repl = (lead or {}).get("replication_lag")
        if lead and isinstance(repl, dict):
            labels = [str(lead.get("instance_id", "")), str(repl.get("mode", ""))]
            if _num(repl.get("seconds")) is not None:
                lag_s.add_metric(labels, float(repl["seconds"]))
            if _num(repl.get("entries")) is not None:
                lag_n.add_metric(labels, float(repl["entries"]))
        yield lag_s
        yield lag_n
        total = CounterMetricFamily("hrkernel_failovers_total", "Failovers by group (or 'leadership' for lease takeovers, 'trading' until orders flowed again)", labels=["group"])
        durations: dict[tuple[str, ...], list[float]] = {}
        for record in (sources.read_failovers(host) or {}).get("history", []):
            if isinstance(record, dict):
                # A leadership record has group None: labelled by its kind (leadership: the lease
                # takeover; trading: until the new leader's first order was accepted).
                group = str(record.get("group") or record.get("kind") or "?")
                value = _num(record.get("duration"))
                durations.setdefault((group,), [])
                if value is not None:
                    durations[(group,)].append(value)
        for (group,), values in sorted(durations.items()):
            total.add_metric([group], float(len(values)))
        yield total
        yield _histogram("hrkernel_failover_duration_seconds", "How long failovers took", ["group"], durations, FAILOVER_BUCKETS)

    def _alerts(self, host: sources.Host) -> Iterator[Metric]:
        open_ = GaugeMetricFamily("hrkernel_alerts_open", "Firing alerts by level and acknowledgement", labels=["level", "acknowledged"])
        deliveries = CounterMetricFamily("hrkernel_alert_deliveries_total", "Alert deliveries by channel and outcome", labels=["channel", "outcome"])
        data = sources.read_alerts(host)
        if data is not None:
            counts: dict[tuple[str, str], int] = {}
            for alert in data["alerts"]:
                if alert.get("status") == "firing":
                    key = (str(alert.get("level")), "true" if alert.get("acknowledged_by") else "false")
                    counts[key] = counts.get(key, 0) + 1
            for key, count in sorted(counts.items()):
                open_.add_metric(list(key), float(count))
            for channel, stats in sorted((data["stats"].get("channels") or {}).items()):
                for outcome, field in (("delivered", "delivered"), ("failed", "failed_attempts"), ("dropped", "dropped")):
                    if _num(stats.get(field)) is not None:
                        deliveries.add_metric([channel, outcome], float(stats[field]))
        yield open_
        yield deliveries


def build_registry(state: WebState) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KernelCollector(state))
    return registry


