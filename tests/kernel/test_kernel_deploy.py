"""Running in production: the systemd unit (verified by systemd-analyze when installed, and
consistent with the shutdown sequence) and docs/deployment.md's two-host active/passive commands, run
here with two kernels on a private Redis and the simulator as the exchange."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hrkernel.cli.common import EXIT_CONFIG
from hrkernel.config.schema import ShutdownSection

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "hrkernel.service"
PAGE = ROOT / "docs" / "deployment.md"


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_waits_longer_than_the_shutdown_sequence_and_restarts_on_failure_only() -> None:
    unit = unit_settings()
    defaults = ShutdownSection()
    stop = float(unit["TimeoutStopSec"][0])
    assert stop > float(defaults.force_after) > defaults.sequence_bound()
    assert unit["KillSignal"] == ["SIGTERM"] and unit["KillMode"] == ["mixed"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == [str(EXIT_CONFIG)]
    assert unit["EnvironmentFile"] == ["/etc/hrkernel/hrkernel.env"]
    assert unit["ExecStart"][0].endswith("hrkernel run /etc/hrkernel/hr.toml")
    assert not re.search(r"(?i)token|secret|password", "".join(v for k, vs in unit.items() if k == "Environment" for v in vs))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit_without_a_warning(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this environment's hrkernel script.
    script = Path(sys.executable).parent / "hrkernel"
    env_file = tmp_path / "hrkernel.env"
    env_file.write_text("NOBITEX_TOKEN=example\n")
    text = UNIT.read_text().replace("/opt/hrkernel/venv/bin/hrkernel", str(script))
    text = text.replace("/etc/hrkernel/hrkernel.env", str(env_file))
    unit = tmp_path / "hrkernel.service"
    unit.write_text(text)
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", out.stderr  # a misspelt key or bad value is only a warning


def production_section() -> str:
    return PAGE.read_text()


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_sim/orders", headers={"X-Sim-Admin-Token": "sim-admin"}, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def sim(unused_port: Callable[[], int]) -> Iterator[str]:
    port = unused_port()
    proc = subprocess.Popen([sys.executable, "-m", "hrkernel", "sim", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while not _up(url):
            assert time.monotonic() < deadline, "the simulator did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_documented_two_host_commands_work(
    sim: str, redis_server: Any, kernel_process: Callable[..., Any], tmp_path: Path, clean_env: dict[str, str]
) -> None:
    section = production_section()
    config_text = re.findall(r"```toml\n(.*?)```", section, flags=re.S)[0]
    commands = re.findall(r"```sh\n(.*?)```", section, flags=re.S)[0]
    # This machine runs both "hosts": each dashboard on a free port instead of 8080.
    config = tmp_path / "hr.toml"
    config.write_text(config_text.replace("port = 8080", "port = 0"))
    common = {"HRKERNEL_REDIS_URL": redis_server.url, "HRKERNEL_HA_TOKEN": "ha-admin-token-1",
              "HRKERNEL_DASHBOARD_TOKEN": "dash-token-12345", "NOBITEX_TOKEN": "sim-token-default",
              "NOBITEX_BASE_URL": sim}
    hosts = {name: {**common, "HRKERNEL_INSTANCE": name, "HRKERNEL_DATA_DIR": str(tmp_path / name)}
             for name in ("hr-a", "hr-b")}

    def cli(host: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hrkernel", *args], capture_output=True, text=True,
                              timeout=90, env={**clean_env, **hosts[host]})

    def documented(command: str) -> list[str]:
        line = next(c for c in commands.splitlines() if c.startswith(f"hrkernel {command}"))
        args = line.split("#")[0].split()[1:]
        return [str(config) if a == "/etc/hrkernel/hr.toml" else a for a in args]

    checked = cli("hr-a", *documented("check"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    kernels = {}
    for name in ("hr-a", "hr-b"):
        kernels[name] = kernel_process(config, env=hosts[name], cwd=tmp_path)
        kernels[name].wait_for("ready", timeout=30)
    kernels["hr-a"].wait_for("trading_enabled", timeout=30)

    def status(host: str) -> dict[str, Any]:
        out = cli(host, *documented("status"))
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    first = {name: status(name) for name in hosts}
    assert first["hr-a"]["role"] == "leader" and first["hr-b"]["role"] == "standby"
    assert first["hr-b"]["leader"] == "hr-a"

    switched = cli("hr-a", *documented("failover"))
    assert switched.returncode == 0, switched.stdout + switched.stderr
    kernels["hr-b"].wait_for("trading_enabled", timeout=30)
    assert status("hr-b")["role"] == "leader" and status("hr-a")["role"] == "standby"
    # Every log line of both kernels is one JSON object (format = "json"), secrets redacted.
    for kernel in kernels.values():
        assert kernel.events and all("event" in e and "level" in e for e in kernel.events)
        assert "dash-token-12345" not in kernel.output() and "ha-admin-token-1" not in kernel.output()
    assert os.path.isdir(tmp_path / "hr-a") and os.path.isdir(tmp_path / "hr-b")
