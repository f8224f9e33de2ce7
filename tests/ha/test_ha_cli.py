"""`hrkernel status` and `hrkernel failover` against two running kernels on a private Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

SECRET = "ha-admin-secret-1234"


def config(path: Path, instance: str, url: str) -> Path:
    path.write_text(
        f"""
[kernel]
instance_id = "{instance}"
data_dir = "{path.parent / instance}"
[logging]
format = "json"
[dashboard]
enabled = false
[ha]
backend = "redis"
redis_url = "{url}"
key_prefix = "cli"
lease_ttl = "800ms"
renew_interval = "100ms"
margin = "250ms"
admin_token = "${{HRKERNEL_HA_TOKEN}}"
[health.checks.duckdb_writable]
enabled = false
"""
    )
    return path


def cli(*args: str, token: str | None = SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HRKERNEL_")}
    if token is not None:
        env["HRKERNEL_HA_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "hrkernel", *args], capture_output=True, text=True, env=env, timeout=60)


def test_status_then_authenticated_failover_moves_the_lease(kernel_process: Any, redis_server: Any, tmp_path: Path) -> None:
    a_cfg = config(tmp_path / "a.toml", "a", redis_server.url)
    b_cfg = config(tmp_path / "b.toml", "b", redis_server.url)
    a = kernel_process(a_cfg, env={"HRKERNEL_HA_TOKEN": SECRET})
    a.wait_for("trading_enabled", timeout=15)
    b = kernel_process(b_cfg, env={"HRKERNEL_HA_TOKEN": SECRET})
    b.wait_for("ready", timeout=15)

    status = cli("status", str(b_cfg), "--json")
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["role"] == "standby" and info["leader"] == "a" and info["backend"] == "redis"
    assert info["token"] is not None and 0 < info["lease_expires_in"] <= 0.8
    first_token = info["token"]

    refused = cli("failover", str(b_cfg), "--token", "wrong-secret", "--timeout", "1.5")
    assert refused.returncode == 1 and "no other instance took over" in refused.stderr
    assert a.wait_for("step_down_refused", timeout=5)["reason"] == "bad or stale authenticator"

    moved = cli("failover", str(b_cfg), "--timeout", "10")
    assert moved.returncode == 0, moved.stderr
    assert f"token {first_token}" in moved.stdout and "new leader: b" in moved.stdout
    b.wait_for("trading_enabled", timeout=5)
    assert any(e.get("event") == "leadership_lost" and "step-down" in str(e.get("reason")) for e in a.events)
    after = json.loads(cli("status", str(a_cfg), "--json").stdout)
    assert after["role"] == "standby" and after["leader"] == "b" and after["token"] > first_token
    # The secret never reaches a log line.
    assert SECRET not in a.output() and SECRET not in b.output()


def test_failover_refuses_the_local_backend_and_a_missing_token(tmp_path: Path) -> None:
    local = tmp_path / "local.toml"
    local.write_text("[ha]\nbackend = \"local\"\n")
    result = cli("failover", str(local))
    assert result.returncode == 2 and 'backend = "redis"' in result.stderr
    status = cli("status", str(local), "--json")
    assert json.loads(status.stdout)["token"] == 1
    remote = tmp_path / "remote.toml"
    remote.write_text('[ha]\nbackend = "redis"\nredis_url = "redis://127.0.0.1:1/0"\n')
    result = cli("failover", str(remote), token=None)
    assert result.returncode == 2 and "no admin token" in result.stderr
    unreachable = cli("status", str(remote))
    assert unreachable.returncode == 1 and "cannot read the lease from Redis" in unreachable.stderr
