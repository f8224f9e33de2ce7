"""Health monitor: hysteresis, status-change events, bounded history, DuckDB trends, recovery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from hrkernel.ha.builtin_checks import DuckDBWritable, DuckDBWritableConfig
from hrkernel.ha.component import RedisReachable
from hrkernel.ha.health import CheckRun, HealthChange, HealthMonitor
from hrkernel.ha.store import HAStore
from hrkernel.types import HealthResult, HealthStatus

pytestmark = pytest.mark.anyio

H, D, U = HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY


class Scripted:
    """A check that returns the statuses it is given, in order (then repeats the last)."""

    def __init__(self, *statuses: HealthStatus) -> None:
        self.statuses = list(statuses)
        self.recoveries = 0
        self.fail_recovery = False

    async def check(self) -> HealthResult:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return HealthResult(status=status, detail=f"scripted {status.value}")


class Recoverable(Scripted):
    async def recover(self) -> None:
        self.recoveries += 1
        if self.fail_recovery:
            raise ConnectionError("still down")


def run_of(check: Any, name: str = "c", timeout: float = 1.0) -> CheckRun:
    return CheckRun(name=name, check=check, interval=1.0, timeout=timeout, plugin="test")


async def test_status_changes_only_after_n_consecutive_results(fake_clock: Any) -> None:
    check = Scripted(H, U, H, U, U, D, D, D, H, H)
    monitor = HealthMonitor([run_of(check)], hysteresis=3, clock=fake_clock)
    changes: list[HealthChange] = []
    monitor.add_listener(changes.append)
    reported = []
    for _ in range(10):
        await monitor.run_once(monitor.runs["c"])
        reported.append(monitor.status_of("c"))
    # H adopted at once; U,H,U,U,D,D never 3 in a row; D,D,D flips; H,H is not enough to flip back.
    assert reported == [H, H, H, H, H, H, H, D, D, D]
    assert [(c.previous, c.status) for c in changes] == [(None, H), (H, D)]
    assert monitor.snapshot()["c"]["status"] == "degraded"
    assert monitor.snapshot()["c"]["last_result"] == "healthy"


async def test_history_is_bounded(fake_clock: Any) -> None:
    monitor = HealthMonitor([run_of(Scripted(H))], history=5, clock=fake_clock)
    for _ in range(12):
        await monitor.run_once(monitor.runs["c"])
    assert len(monitor.history("c")) == 5


async def test_timeout_and_exception_count_as_unhealthy(fake_clock: Any) -> None:
    class Slow:
        async def check(self) -> HealthResult:
            await anyio.sleep(5)
            return HealthResult(status=H)

    class Broken:
        async def check(self) -> HealthResult:
            raise RuntimeError("probe exploded")

    monitor = HealthMonitor([run_of(Slow(), "slow", timeout=0.05), run_of(Broken(), "broken")], clock=fake_clock)
    slow = await monitor.run_once(monitor.runs["slow"])
    broken = await monitor.run_once(monitor.runs["broken"])
    assert slow.status == U and "timed out" in slow.detail
    assert broken.status == U and "probe exploded" in broken.detail
    assert monitor.readiness()["ready"] is False  # not started, and unhealthy checks
    assert monitor.readiness()["unhealthy"] == ["broken", "slow"]


async def test_recovery_is_attempted_with_backoff_and_recorded(fake_clock: Any, tmp_path: Path) -> None:
    check = Recoverable(U)
    check.fail_recovery = True
    store = HAStore(tmp_path / "ha.duckdb").open()
    monitor = HealthMonitor([run_of(check)], hysteresis=1, clock=fake_clock, store=store, recovery_backoff=1.0, recovery_backoff_max=4.0)
    run = monitor.runs["c"]
    attempts_at = []
    for _ in range(20):  # 10 s of 0.5 s steps
        before = check.recoveries
        await monitor.run_once(run)
        if check.recoveries > before:
            attempts_at.append(fake_clock.now - 1000.0)
        fake_clock.advance(0.5)
    # backoff 1, 2, 4, 4 ... after each attempt
    assert attempts_at == [0.0, 1.0, 3.0, 7.0]
    rows = store.recovery_rows("c")
    assert [r["attempt"] for r in rows] == [1, 2, 3, 4] and all(r["outcome"] == "error" for r in rows)
    assert "still down" in rows[0]["detail"]
    # Once healthy, the backoff resets.
    check.statuses = [H]
    await monitor.run_once(run)
    assert run.recovery_failures == 0
    store.close()


async def test_results_go_to_duckdb_for_trends(fake_clock: Any, tmp_path: Path) -> None:
    store = HAStore(tmp_path / "ha.duckdb").open()
    monitor = HealthMonitor([run_of(Scripted(H, U, U, H))], hysteresis=2, clock=fake_clock, store=store)
    for _ in range(4):
        await monitor.run_once(monitor.runs["c"])
    rows = store.health_rows("c")
    assert [r["status"] for r in rows] == ["healthy", "unhealthy", "unhealthy", "healthy"]
    assert [r["reported"] for r in rows] == ["healthy", "healthy", "unhealthy", "unhealthy"]
    trend = store.health_trend("c", bucket_seconds=3600)
    assert sum(b["count"] for b in trend) == 4
    store.close()
    # The file survives a reopen: history is durable.
    again = HAStore(tmp_path / "ha.duckdb").open()
    assert len(again.health_rows()) == 4
    again.close()


async def test_liveness_and_readiness_follow_the_running_monitor() -> None:
    check = Scripted(H)
    monitor = HealthMonitor([run_of(check)])
    assert monitor.liveness()["alive"] is False
    async with anyio.create_task_group() as tg:
        await monitor.start(tg)
        await anyio.sleep(0.05)
        assert monitor.liveness()["alive"] is True
        assert monitor.readiness() == {"ready": True, "status": "healthy", "unhealthy": []}
        await monitor.stop()
    assert monitor.liveness()["alive"] is False


async def test_duckdb_writable_check_reports_an_unwritable_data_dir(tmp_path: Path) -> None:
    ok = await DuckDBWritable(DuckDBWritableConfig(), str(tmp_path)).check()
    assert ok.status == H and ok.latency is not None
    # A data dir that cannot hold files (tests run as root, so permissions would not stop it).
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    bad = await DuckDBWritable(DuckDBWritableConfig(), str(blocker / "sub")).check()
    assert bad.status == U and "not-a-dir" in bad.detail


async def test_redis_reachable_check_follows_the_server(redis_server: Any) -> None:
    check = RedisReachable(redis_server.url, timeout=0.3, degraded_after=1.0)
    assert (await check.check()).status == H
    redis_server.stop()
    monitor = HealthMonitor([run_of(check, "redis", timeout=0.5)])
    result = await monitor.run_once(monitor.runs["redis"])
    assert result.status == U
    redis_server.start()
    await check.recover()
    assert (await check.check()).status == H
    await check.aclose()
