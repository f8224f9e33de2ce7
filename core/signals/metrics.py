"""Prometheus metrics of the intake, in a registry of their own (the dashboard exposes it)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class IntakeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.received = Counter("hrkernel_signals_received", "Webhook requests received", registry=self.registry)
        self.accepted = Counter("hrkernel_signals_accepted", "Signals accepted and persisted", registry=self.registry)
        self.rejected = Counter("hrkernel_signals_rejected", "Webhook requests rejected", ["reason"], registry=self.registry)
        self.duplicates = Counter("hrkernel_signals_duplicates", "Duplicate signals (no second signal)", registry=self.registry)
        self.processed = Counter("hrkernel_signals_processed", "Signals handed to the bus", registry=self.registry)
        self.latency = Histogram(
            "hrkernel_signals_processing_seconds", "From receipt to publication on the bus",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.counts: dict[str, int] = {"received": 0, "accepted": 0, "duplicate": 0, "processed": 0}

    def count(self, outcome: str, reason: str | None = None) -> None:
        key = f"rejected_{reason}" if reason else outcome
        self.counts[key] = self.counts.get(key, 0) + 1
        if reason:
            self.rejected.labels(reason).inc()
        elif outcome == "received":
            self.received.inc()
        elif outcome == "accepted":
            self.accepted.inc()
        elif outcome == "duplicate":
            self.duplicates.inc()
        elif outcome == "processed":
            self.processed.inc()
