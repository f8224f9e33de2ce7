"""The fault kinds that cut Redis, silence a data feed and make the data dir read-only, each in a
fixed-seed run with real processes, and the alert invariant (which can fail)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hrkernel_chaos import ChaosRun, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # every test here runs a scenario with real processes


def _invariants(report: object) -> dict[str, bool]:
    return {i.name: i.ok for i in report.invariants}  # type: ignore[attr-defined]


def _events(run: ChaosRun, name: str, event: str) -> list[dict[str, object]]:
    kernel = next(k for k in run.kernels if k.name == name)
    return [e for c in kernel.all_children() for e in c.events if e.get("event") == event]


def test_redis_cut_by_reset_then_blackhole(tmp_path: Path, needs_redis: None) -> None:
    """The leader's Redis path is reset (RST), later every path is blackholed, Redis running all
    along: the leader steps down and alerts, the standby takes over, nobody crashes (a failed bus
    ack used to take the kernel down), every signal is traded exactly once."""
    run = ChaosRun(load_scenario(ROOT / "scenarios" / "redis-cut.toml"), workdir=tmp_path)
    report = run.run()
    assert report.safe, report.render()
    assert [(f.cause, f.from_instance, f.to_instance) for f in report.failovers][:1] == [("Redis cut", "hr-a", "hr-b")]
    assert all(k.child.proc is not None and k.child.proc.returncode in (0, -15) for k in run.kernels), \
        [k.child.proc.returncode for k in run.kernels if k.child.proc]
    assert sum(proxy.cuts for proxy in run.proxies.values()) == 3  # hr-a, then hr-a and hr-b
    assert _events(run, "hr-a", "leadership_lost")


def test_feed_going_silent_raises_the_data_source_health_alert(tmp_path: Path) -> None:
    """The simulator stops answering BTCIRT market data: the kernel's data source goes stale, its
    freshness check (health-monitored like any other) alerts, and recovers when data flows."""
    run = ChaosRun(load_scenario(ROOT / "scenarios" / "feed-stale.toml"), workdir=tmp_path)
    report = run.run()
    assert report.safe, report.render()
    stale = [e for e in _events(run, "hr-a", "health_status")
             if e.get("check") == "datasource:feed" and e.get("status") == "unhealthy"
             and "stale" in str(e.get("detail"))]
    assert stale, "the feed's freshness check never reported the silence"
    fresh = [e for e in _events(run, "hr-a", "health_status")
             if e.get("check") == "datasource:feed" and e.get("status") == "healthy" and e["_t"] > stale[0]["_t"]]  # type: ignore[operator]
    assert fresh, "the feed never became fresh again after the silence"
    # trading went on: every signal became one order
    assert report.figures["orders on the exchange"] == report.figures["signals sent"]


def test_read_only_data_dir_halts_orders_until_writable(tmp_path: Path) -> None:
    """The leader's data dir becomes read-only (immutable, which root cannot write through either):
    the DuckDB-writable check alerts, new orders halt while it is unhealthy and resume after, and
    still every signal becomes exactly one order with the ledger equal to the exchange."""
    run = ChaosRun(load_scenario(ROOT / "scenarios" / "duckdb-readonly.toml"), workdir=tmp_path)
    report = run.run()
    assert report.safe, report.render()
    assert "immutable attribute" in report.faults[0] or os.geteuid() != 0
    halted = [e for e in _events(run, "hr-a", "orders_halted") if e.get("key") == "health:duckdb_writable"]
    resumed = [e for e in _events(run, "hr-a", "orders_resumed") if e.get("key") == "health:duckdb_writable"]
    assert halted and resumed and halted[0]["_t"] < resumed[0]["_t"]  # type: ignore[operator]
    assert report.figures["orders on the exchange"] == report.figures["signals sent"] == 20
    # the flags are gone: the run's directory can be written (and deleted) again
    (tmp_path / "hr-a" / "after.txt").write_text("ok")


def test_an_expected_alert_that_never_comes_fails_the_report(tmp_path: Path) -> None:
    """The alert check can fail: one scripted 500 (absorbed by the retry) declared to open the
    circuit breaker within 5 s."""
    scenario = parse_scenario({
        "name": "ci-missing-alert", "seed": 5, "signals": 3, "interval": 0.1, "settle": 30,
        "faults": [{"at": 2, "kind": "sim_script", "endpoint": "orders_add", "fault": "error_500", "count": 1,
                    "expect": [{"source": "resilience", "title": "circuit breaker open", "within": 5}]}],
    }, "ci")
    report = ChaosRun(scenario, workdir=tmp_path).run()
    assert not report.passed
    invariants = _invariants(report)
    assert not invariants["every fault produced its alert"]
    assert all(ok for name, ok in invariants.items() if name != "every fault produced its alert"), report.render()
    assert any("MISSING resilience 'circuit breaker open'" in line for line in report.alerts)
