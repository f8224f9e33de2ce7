"""The alert system inside a real ``hrkernel run``: built from hr.toml, raising alerts for kernel
events (a health check turning degraded, graceful shutdown), history readable by the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_a_running_kernel_alerts_on_health_changes_and_shutdown(tmp_path: Path, http_server) -> None:
    config = tmp_path / "hr.toml"
    config.write_text(f"""
[kernel]
data_dir = "{tmp_path / 'data'}"

[health.checks.event_loop_lag]
interval = "100ms"
degraded_after = "0ms"

[dashboard]
enabled = false

[alerts]
group_wait = "0s"
dashboard_url = "http://127.0.0.1:8080/"

[alerts.channels.console]
type = "console"

[alerts.channels.hook]
type = "webhook"
url = "{http_server.url}/hook"
secret = "${{HOOK_SECRET}}"
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HRKERNEL_")}
    env["HOOK_SECRET"] = "very-secret-hmac-key"
    proc = subprocess.Popen([sys.executable, "-m", "hrkernel", "run", str(config)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not any("health check failing" in r.body.decode() for r in http_server.ok_requests()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no health alert arrived"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    bodies = [r.json() for r in http_server.ok_requests()]
    titles = [a["title"] for b in bodies for a in b["alerts"]]
    assert "health check failing" in titles and "kernel shutting down" in titles
    health = next(a for b in bodies for a in b["alerts"] if a["title"] == "health check failing")
    assert health["source"] == "health" and health["level"] == "warning"
    assert health["context"]["check"] == "event_loop_lag"
    assert "[alert] [INFO] kernel: kernel shutting down" in err  # console channel on stderr
    assert "very-secret-hmac-key" not in out + err

    listed = subprocess.run([sys.executable, "-m", "hrkernel", "alerts", "list", "--config", str(config), "--json"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    rows = {r["title"]: r for r in json.loads(listed.stdout)}
    assert {d["channel"] for d in rows["kernel shutting down"]["deliveries"] if d["ok"]} == {"console", "hook"}


@pytest.mark.anyio
async def test_breaker_open_raises_an_alert_and_closing_resolves_it(tmp_path: Path, clock, recording_channel) -> None:
    from hrkernel.alerts import AlertSystem, ChannelSpec
    from hrkernel.alerts.config import AlertsSection, ChannelRouting
    from hrkernel.alerts.events import KernelAlerts
    from hrkernel.resilience import BreakerRegistry, ManualClock
    from hrkernel.types import Duration

    channel = recording_channel()
    config = AlertsSection(channels={}, group_wait=Duration(0), group_interval=Duration(1))
    registry = BreakerRegistry()
    async with AlertSystem(config, channels={"rec": ChannelSpec(channel, ChannelRouting(max_per_minute=0))},
                           data_dir=tmp_path, clock=clock) as alerts:
        registry.add_listener(KernelAlerts(alerts).on_breaker)
        breaker_clock = ManualClock()
        breaker = registry.get_or_create("nobitex", failure_threshold=1, reset_timeout=5, success_threshold=1,
                                         clock=breaker_clock)

        async def boom() -> None:
            raise ConnectionError("down")

        async def fine() -> None:
            return None

        with pytest.raises(ConnectionError):
            await breaker.call(boom)
        await alerts.wait_idle()
        breaker_clock.advance(5)
        await breaker.call(fine)
        clock.advance(1)
        await alerts.wait_idle()
    assert [(n.kind, n.alerts[0].title, n.alerts[0].context) for n in channel.sent] == [
        ("firing", "circuit breaker open", {"breaker": "nobitex"}),
        ("resolved", "circuit breaker open", {"breaker": "nobitex"}),
    ]
    assert channel.sent[0].alerts[0].message.startswith("breaker nobitex opened: ")
