"""Cost of raising an alert, next to a peer measured in the same run.

Run: ``python -m pytest bench/test_bench_alerts.py --benchmark-only``.

- ``send_alert_nowait`` of a repeat (the dedup path: fingerprint, count, history op queued)
  against the stdlib peer a caller might otherwise use, ``logging.Logger.warning`` to a
  ``NullHandler`` (ratio in extra_info);
- a storm: 2000 distinct alerts raised, grouped, delivered to an in-process channel and
  written to the DuckDB history (seconds per round).
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

import anyio
import pytest

from hrkernel.alerts import AlertSystem, ChannelSpec
from hrkernel.alerts.config import AlertsSection, ChannelRouting
from hrkernel.types import Duration


class Null:
    def __init__(self) -> None:
        self.sent = 0

    async def send(self, notification: Any) -> None:
        self.sent += 1


def make(data_dir: str, **overrides: Any) -> tuple[AlertSystem, Null]:
    channel = Null()
    config = AlertsSection(channels={}, group_wait=Duration(0), **overrides)
    specs = {"null": ChannelSpec(channel, ChannelRouting(max_per_minute=0))}
    return AlertSystem(config, channels=specs, data_dir=data_dir), channel


_peer_ns: dict[str, float] = {}


def test_bench_logging_warning_peer(benchmark: Any) -> None:
    log = logging.getLogger("bench.alerts.peer")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    benchmark(log.warning, "exchange timeouts %s", "nobitex")
    _peer_ns["warning"] = benchmark.stats.stats.median * 1e9


def test_bench_send_alert_repeat(benchmark: Any) -> None:
    with tempfile.TemporaryDirectory() as d:
        alerts, _ = make(d)
        # not started: measures the caller's cost only (delivery runs in background tasks)
        benchmark(alerts.send_alert_nowait, source="exchange", level="warning", title="timeouts",
                  message="3 in a row", context={"exchange": "nobitex"})
        median_ns = benchmark.stats.stats.median * 1e9
        benchmark.extra_info["median_ns"] = round(median_ns)
        if "warning" in _peer_ns:
            benchmark.extra_info["ratio_vs_logging_warning"] = round(median_ns / _peer_ns["warning"], 2)


@pytest.mark.parametrize("group_by", [["source"], ["title"]])
def test_bench_alert_storm_delivered_and_recorded(benchmark: Any, group_by: list[str]) -> None:
    async def storm() -> int:
        with tempfile.TemporaryDirectory() as d:
            alerts, channel = make(d, group_by=group_by, queue_size=5000)
            async with alerts:
                for i in range(2000):
                    await alerts.send_alert(source="exchange", level="error", title=f"t{i}")
                await alerts.wait_idle(timeout=120)
            return channel.sent

    sent = benchmark.pedantic(lambda: anyio.run(storm), rounds=3, iterations=1)
    benchmark.extra_info["notifications"] = sent
