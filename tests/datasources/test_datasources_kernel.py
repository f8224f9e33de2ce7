"""A real ``hrkernel run``: the sim feed polls the embedded simulator, the webhook counts show
on /metrics, and the bus is the first component."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

SECRET = "kernel-webhook-secret-1"




def test_sim_feed_and_webhook_metrics_in_a_running_kernel(
    kernel_process: Callable[..., object], tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    web = unused_port()
    config = tmp_path / "hr.toml"
    config.write_text(f"""
[kernel]
data_dir = "{tmp_path / 'data'}"
[dashboard]
port = {web}
[webhook]
enabled = true
secret = "${{HR_WEBHOOK_SECRET}}"
exchange = "paper"
[exchanges.paper]
type = "sim"
[datasources.market]
type = "sim"
exchange = "paper"
symbols = ["BTCIRT"]
interval = "200ms"
max_age = "2s"
""")
    kernel = kernel_process(config, env={"HR_WEBHOOK_SECRET": SECRET}, cwd=tmp_path)
    kernel.wait_for("ready", timeout=20)  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{web}"
    r = httpx.post(f"{base}/webhooks/tradingview", json={"secret": "wrong", "ticker": "BTCIRT", "action": "buy"}, timeout=5)
    assert r.status_code == 401
    deadline = time.monotonic() + 15
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(f"{base}/metrics", timeout=5).text
        if 'hrkernel_signals_rejected_total{reason="unauthorized"} 1.0' in text:
            break
        time.sleep(0.2)
    assert 'hrkernel_signals_rejected_total{reason="unauthorized"} 1.0' in text
    components = httpx.get(f"{base}/api/components", timeout=5).json()
    body = components.get("data", components) if isinstance(components, dict) else components
    rows = body.get("components", body) if isinstance(body, dict) else body
    by_name = {c["name"]: c for c in rows}
    assert list(by_name)[0] == "bus" and "signals" in by_name
    market = by_name["datasource:market"]
    assert market["running"], market
    time.sleep(1.0)  # a few polls of the simulator (interval 200ms); a failing poll logs once per error type
    out = kernel.output()  # type: ignore[attr-defined]
    assert "datasource_malformed_message" not in out, out[-3000:]
