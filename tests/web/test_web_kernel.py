"""The dashboard as part of ``hrkernel run``: served from hr.toml, first to stop, port conflicts,
config errors with their key paths."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from hrkernel.config import load_config_text
from hrkernel.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, port: int, extra: str = "") -> Path:
    text = (ROOT / "hr.toml").read_text()
    assert 'port = "${HRKERNEL_DASHBOARD_PORT:-8080}"' in text
    text = text.replace('port = "${HRKERNEL_DASHBOARD_PORT:-8080}"', f"port = {port}\n{extra}")
    path = tmp_path / "hr.toml"
    path.write_text(text)
    return path


def test_hrkernel_run_serves_the_dashboard_from_hr_toml_and_stops_it_first(kernel_process: Callable[..., Any], tmp_path: Path) -> None:
    port = _free_port()
    kernel = kernel_process(_config(tmp_path, port), env={"HRKERNEL_DASHBOARD_TOKEN": "run-test-token"}, cwd=tmp_path)
    ready = kernel.wait_for("ready", timeout=15)
    assert ready["components"][-1]["name"] == "web"
    listening = kernel.wait_for("dashboard_listening")
    assert listening["url"] == f"http://127.0.0.1:{port}" and listening["actions"] == "enabled"
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(base + "/livez").status_code == 200
    assert httpx.get(base + "/api/status").json()["actions_enabled"] is True
    assert "hrkernel_up 1.0" in httpx.get(base + "/metrics").text
    refused = httpx.post(base + "/api/breakers/x/reset", json={}, headers={"Authorization": "Bearer wrong-token"})
    assert refused.status_code == 403
    kernel.signal(signal.SIGTERM)
    assert kernel.wait(timeout=15) == 0, kernel.output()
    steps = [e["component"] for e in kernel.events if e.get("event") == "shutdown_step"]
    assert steps[0] == "web"
    assert "run-test-token" not in kernel.output()
    action = next(e for e in kernel.events if e.get("event") == "dashboard_action")
    assert action["outcome"] == "refused" and action["action"] == "breaker_reset"


def test_a_taken_port_is_logged_and_the_kernel_runs_on(kernel_process: Callable[..., Any], tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        kernel = kernel_process(_config(tmp_path, port), cwd=tmp_path)
        kernel.wait_for("ready", timeout=15)
        event = kernel.wait_for("dashboard_unavailable")
        assert str(port) in event["error"]
        kernel.signal(signal.SIGTERM)
        assert kernel.wait(timeout=15) == 0


def test_a_taken_port_stops_start_up_when_the_dashboard_is_required(kernel_process: Callable[..., Any], tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        config = _config(tmp_path, port)
        config.write_text(config.read_text().replace("required = false", "required = true"))
        kernel = kernel_process(config, cwd=tmp_path)
        assert kernel.wait(timeout=15) == 1
        failed = next(e for e in kernel.events if e.get("event") == "component_start_failed")
        assert failed["component"] == "web" and str(port) in failed["error"]


@pytest.mark.parametrize("table,path,words", [
    ("port = 70000", "dashboard", "port must be 0..65535"),
    ('token = "short"', "dashboard", "at least 8 characters"),
    ('push_interval = "soon"', "dashboard.push_interval", "duration"),
    ("colour = 1", "dashboard.colour", "unknown key"),
])
def test_dashboard_config_errors_name_the_key(table: str, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(f"[dashboard]\n{table}\n", "hr.toml", environ={})
    message = str(caught.value)
    assert path in message and words in message, message


def test_an_empty_token_from_the_environment_disables_actions() -> None:
    loaded = load_config_text('[dashboard]\ntoken = "${T:-}"\n', "hr.toml", environ={})
    assert loaded.config.dashboard.token is None


@pytest.mark.anyio
async def test_the_docs_embedding_example_runs() -> None:
    from hrkernel.ha.health import CheckRun, HealthMonitor
    from hrkernel.types import HealthResult, HealthStatus

    page = (ROOT / "docs" / "dashboard.md").read_text()
    code = page.split("## Embedding", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]

    class Ok:
        async def check(self) -> HealthResult:
            return HealthResult(status=HealthStatus.HEALTHY, detail="fine")

    monitor = HealthMonitor([CheckRun(name="ok", check=Ok(), interval=1.0, timeout=1.0, plugin="test")])
    await monitor.run_once(monitor.runs["ok"])
    body = code.replace("...", "seen.append(await fetch(dashboard.url + '/api/health'))")
    source = "async def example(monitor, seen, fetch):\n" + "".join(f"    {line}\n" for line in body.splitlines())
    namespace: dict[str, Any] = {}
    exec(compile(source, "docs/dashboard.md", "exec"), namespace)
    seen: list[Any] = []

    async def fetch(url: str) -> Any:
        async with httpx.AsyncClient() as client:
            return (await client.get(url)).json()

    await namespace["example"](monitor, seen, fetch)
    assert seen[0]["data"]["checks"]["ok"]["status"] == "healthy"


def test_leadership_step_down_on_a_redis_lease_gives_the_lease_up(make_kernel: Callable[..., Any], redis_server: Any) -> None:
    import time

    k = make_kernel(
        f'\n[ha]\nbackend = "redis"\nredis_url = "{redis_server.url}"\nkey_prefix = "web-test"\n'
        'lease_ttl = "2s"\nrenew_interval = "200ms"\nmargin = "500ms"\n'
    )
    deadline = time.monotonic() + 10
    while httpx.get(k.url + "/api/leadership").json()["data"].get("role") != "leader":
        assert time.monotonic() < deadline, "never became leader"
        time.sleep(0.05)
    token = httpx.get(k.url + "/api/leadership").json()["data"]["token"]
    assert httpx.post(k.url + "/api/leadership/step-down", json={}).status_code == 401
    r = httpx.post(k.url + "/api/leadership/step-down", json={"reason": "maintenance"}, headers={"Authorization": f"Bearer {k.token}"})
    assert r.status_code == 200, r.text
    after = r.json()["result"]
    assert after["role"] != "leader" and after["trading"] is False
    audit = httpx.get(k.url + "/api/audit").json()["data"]
    assert (audit[0]["action"], audit[0]["outcome"]) == ("leadership_step_down", "ok")
    # Alone in the deployment, it takes the lease back after sitting out one TTL, with a new token.
    deadline = time.monotonic() + 10
    while (lead := httpx.get(k.url + "/api/leadership").json()["data"])["role"] != "leader":
        assert time.monotonic() < deadline, "never took the lease back"
        time.sleep(0.05)
    assert lead["token"] > token
