"""Real processes on a real Redis: SIGKILL, SIGSTOP/SIGCONT of the leader, two `hrkernel run`s."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

pytestmark = pytest.mark.slow


def writes(url: str, prefix: str = "p") -> list[str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return list(client.lrange(f"{prefix}:writes", 0, -1))
    finally:
        client.close()


def assert_no_stale_writes(log: list[str]) -> None:
    """Once a higher token wrote, no lower token writes again (the fence held)."""
    highest = 0
    for entry in log:
        token = int(entry.rsplit(":", 1)[1])
        assert token >= highest, f"stale write {entry!r} after token {highest}: {log}"
        highest = token


def test_sigkill_of_the_leader_hands_over_within_ttl_plus_renewal(lease_holder: Any, redis_server: Any) -> None:
    ttl, renew = 0.6, 0.1
    a = lease_holder("a", ttl=ttl, renew=renew)
    a.wait_for("gained")
    b = lease_holder("b", ttl=ttl, renew=renew)
    b.wait_for("started")
    time.sleep(0.3)
    assert "gained" not in b.kinds()
    killed = time.time()
    a.proc.kill()
    a.proc.wait(5)
    gained = b.wait_for("gained", timeout=5)
    took = gained["t"] - killed
    first = a.events[1]["token"]
    assert gained["token"] == first + 1
    assert took <= ttl + renew + 0.5, f"takeover took {took:.3f}s"  # slack for a loaded CI box
    time.sleep(0.2)
    log = writes(redis_server.url)
    assert {f"a:{first}", f"b:{first + 1}"} <= set(log)
    assert_no_stale_writes(log)


def test_paused_leader_resumes_without_acting_until_it_reacquires(lease_holder: Any, redis_server: Any) -> None:
    ttl = 0.6
    a = lease_holder("a", ttl=ttl)
    old = a.wait_for("gained")["token"]
    b = lease_holder("b", ttl=ttl)
    b.wait_for("started")
    time.sleep(0.3)
    a.proc.send_signal(signal.SIGSTOP)
    new = b.wait_for("gained", timeout=5)["token"]
    assert new == old + 1
    time.sleep(0.3)  # b writes meanwhile; a stays paused well past the TTL
    a.proc.send_signal(signal.SIGCONT)
    lost = a.wait_for("lost", timeout=5)
    assert "deadline" in lost["reason"] or "taken over" in lost["reason"]
    time.sleep(0.5)
    log = writes(redis_server.url)
    first_b = log.index(f"b:{new}")
    assert f"a:{old}" in log[:first_b]
    assert f"a:{old}" not in log[first_b:], f"the resumed leader wrote after the new leader: {log}"
    assert_no_stale_writes(log)
    assert a.kinds() == ["started", "gained", "lost"]  # it never regained while b renews


def test_redis_restart_leaves_exactly_one_leader_with_a_higher_token(lease_holder: Any, redis_server: Any) -> None:
    a = lease_holder("a", ttl=1.0, margin=0.3)
    before = a.wait_for("gained")["token"]
    b = lease_holder("b", ttl=1.0, margin=0.3)
    b.wait_for("started")
    redis_server.stop()
    a.wait_for("lost", timeout=5)
    time.sleep(0.3)
    redis_server.start()
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and a.kinds().count("gained") + b.kinds().count("gained") < 2:
        time.sleep(0.02)
    time.sleep(1.0)
    holders = [h for h in (a, b) if h.kinds()[-1] == "gained"]
    assert len(holders) == 1, (a.events, b.events)
    gains = sorted((e for h in (a, b) for e in h.events if e["event"] == "gained"), key=lambda e: e["t"])
    tokens = [e["token"] for e in gains]
    assert tokens == sorted(set(tokens)) and tokens[0] == before and len(tokens) >= 2
    current = holders[0].events[-1]["token"]
    assert current > before  # the restarted Redis lost the counter; the token still went up
    log = writes(redis_server.url)
    assert log and log[-1].endswith(f":{current}")  # Redis lost the old writes; the new leader writes
    assert_no_stale_writes(log)


def _kernel_config(path: Path, instance: str, url: str, data_dir: Path) -> Path:
    path.write_text(
        f"""
[kernel]
instance_id = "{instance}"
data_dir = "{data_dir}"
[logging]
format = "json"
[dashboard]
enabled = false
[ha]
backend = "redis"
redis_url = "{url}"
key_prefix = "kp"
lease_ttl = "800ms"
renew_interval = "100ms"
margin = "250ms"
[health.checks.duckdb_writable]
enabled = false
"""
    )
    return path


def test_two_kernels_sigkill_the_leader_and_the_standby_trades(
    kernel_process: Any, redis_server: Any, tmp_path: Path
) -> None:
    first = kernel_process(_kernel_config(tmp_path / "a.toml", "a", redis_server.url, tmp_path / "a"))
    first.wait_for("trading_enabled", timeout=15)
    second = kernel_process(_kernel_config(tmp_path / "b.toml", "b", redis_server.url, tmp_path / "b"))
    second.wait_for("ready", timeout=15)
    time.sleep(0.3)
    assert not any(e.get("event") == "trading_enabled" for e in second.events)
    killed = time.monotonic()
    first.proc.kill()
    enabled = second.wait_for("trading_enabled", timeout=10)
    took = time.monotonic() - killed
    assert enabled["fence"] == int(first.wait_for("trading_enabled")["fence"]) + 1
    assert took <= 0.8 + 0.1 + 1.0, f"failover took {took:.2f}s"  # ttl + renewal + start-up slack
    recorded = second.wait_for("failover_recorded", timeout=5, kind="leadership")
    assert 0.5 <= float(recorded["duration_s"]) <= took + 0.2
    second.signal(signal.SIGTERM)
    assert second.wait(10) == 0
    lost = [e for e in second.events if e.get("event") == "leadership_lost"]
    assert lost and lost[-1]["reason"] == "shutdown"


def test_two_kernels_paused_leader_steps_down_on_resume(kernel_process: Any, redis_server: Any, tmp_path: Path) -> None:
    first = kernel_process(_kernel_config(tmp_path / "a.toml", "a", redis_server.url, tmp_path / "a"))
    old = int(first.wait_for("trading_enabled", timeout=15)["fence"])
    second = kernel_process(_kernel_config(tmp_path / "b.toml", "b", redis_server.url, tmp_path / "b"))
    second.wait_for("ready", timeout=15)
    first.signal(signal.SIGSTOP)
    new = int(second.wait_for("trading_enabled", timeout=10)["fence"])
    assert new == old + 1
    time.sleep(0.3)
    first.signal(signal.SIGCONT)
    lost = first.wait_for("leadership_lost", timeout=5)
    assert int(lost["fence"]) == old
    time.sleep(0.5)
    enabled = [int(e["fence"]) for e in first.events if e.get("event") == "trading_enabled"]
    assert enabled == [old]  # it never traded again after resuming
    assert any(e.get("event") == "trading_enabled" for e in second.events)
