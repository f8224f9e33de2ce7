"""The HA component: takeover gate, leadership hooks, failover-time records, kernel wiring."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from hrkernel import hookimpl
from hrkernel.config import load_config_text
from hrkernel.errors import StartupError
from hrkernel.ha.component import HAComponent, probes
from hrkernel.ha.config import HASection
from hrkernel.ha.errors import HAError
from hrkernel.kernel import Kernel
from hrkernel.plugins import PluginHost
from hrkernel.types import ConfigStruct, HealthResult, HealthStatus

pytestmark = pytest.mark.anyio


class Hooks:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, hook: str, **kwargs: Any) -> None:
        self.calls.append((hook, kwargs))


def redis_config(url: str, **extra: Any) -> HASection:
    return HASection(backend="redis", redis_url=url, key_prefix="c", lease_ttl=0.5, renew_interval=0.1, margin=0.15, **extra)


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


async def test_local_backend_trades_only_after_takeover_steps(tmp_path: Path) -> None:
    hooks = Hooks()
    ready = {"value": False}
    ha = HAComponent(HASection(), "solo", data_dir=tmp_path, notify=hooks, ready=lambda: ready["value"])
    seen_during_step: list[bool] = []

    async def reconcile(token: int) -> None:
        seen_during_step.append(ha.may_trade())
        assert token == 1

    ha.add_takeover_step(reconcile)
    async with anyio.create_task_group() as tg:
        await ha.start(tg)
        await anyio.sleep(0.05)
        assert ha.lease.is_leader and not ha.may_trade()  # rest of the kernel not started yet
        assert not await ha.fence_check()
        ready["value"] = True
        await wait_until(ha.may_trade)
        assert ha.token == 1 and await ha.fence_check() and ha.holds_with_margin()
        assert seen_during_step == [False]
        assert hooks.calls == [("hr_leadership_gained", {"fencing_token": 1})]
        await ha.stop()
    assert not ha.may_trade()
    assert hooks.calls[-1] == ("hr_leadership_lost", {"reason": "shutdown"})
    assert (tmp_path / "ha.duckdb").exists()


async def test_failed_takeover_gives_the_lease_to_the_other_instance(redis_server: Any, tmp_path: Path) -> None:
    a = HAComponent(redis_config(redis_server.url), "a", data_dir=tmp_path / "a")
    b = HAComponent(redis_config(redis_server.url), "b", data_dir=tmp_path / "b")

    attempts: list[int] = []

    async def broken_reconcile(token: int) -> None:
        attempts.append(token)
        raise RuntimeError("exchange unreachable during reconciliation")

    a.add_takeover_step(broken_reconcile)
    async with anyio.create_task_group() as tg:
        await a.start(tg)
        await wait_until(lambda: bool(attempts), 2)
        await b.start(tg)
        await wait_until(b.may_trade, 5)
        assert not a.may_trade() and len(attempts) == 1 and b.token == attempts[0] + 1
        await a.stop()
        await b.stop()


async def test_takeover_after_a_crash_is_timed_and_recorded(redis_server: Any, tmp_path: Path) -> None:
    a = HAComponent(redis_config(redis_server.url), "a", data_dir=tmp_path / "a")
    b = HAComponent(redis_config(redis_server.url, failover_target=0.2), "b", data_dir=tmp_path / "b")
    slow: list[float] = []
    b.failover_monitor.add_slow_listener(lambda record, target: slow.append(record.duration or 0))
    async with anyio.create_task_group() as tg:
        async with anyio.create_task_group() as crashing:
            await a.start(crashing)
            await wait_until(a.may_trade, 3)
            await b.start(tg)
            await anyio.sleep(0.2)
            assert not b.may_trade()
            crashed_at = time.monotonic()
            crashing.cancel_scope.cancel()  # a dies: no release, no more renewals
        await wait_until(b.may_trade, 3)
        took_over = time.monotonic() - crashed_at
        await wait_until(lambda: bool(slow), 2)  # recorded just after trading was enabled
        stats = b.failover_monitor.stats("leadership")
        assert stats["count"] == 1
        # From a's last renewal (<= 0.1 s before the crash) to b trading.
        assert 0.4 <= stats["last"] <= took_over + 0.15
        assert slow and slow[0] == stats["last"]  # slower than the 0.2 s target: alerted
        rows = b.store.failover_rows() if b.store else []
        assert [(r["kind"], r["from"], r["to"]) for r in rows] == [("leadership", "a", "b")]
        status = b.status()
        assert status["role"] == "leader" and status["leader"] == "b" and status["trading"]
        assert 0 < status["lease_expires_in"] <= 0.5
        await b.stop()
        await a.lease.stop()


def _kernel(tmp_path: Path, text: str) -> Kernel:
    loaded = load_config_text(f'[kernel]\ndata_dir = "{tmp_path / "data"}"\n[dashboard]\nenabled = false\n' + text, "test.toml")
    host = PluginHost(strict=True)
    host.discover()
    host.collect()
    return Kernel.build(loaded, host)


async def test_kernel_builds_ha_first_and_serves_probes(tmp_path: Path) -> None:
    kernel = _kernel(tmp_path, "")
    names = [c.name for c in kernel.components]
    # Before everything that trades or reports on it (the bus may come earlier).
    assert names.index("ha") < min(names.index(n) for n in names if n in ("alerts", "health", "web") or n.startswith("exchange:"))
    subscription = kernel.get("bus").bus.subscribe("leadership", "ha-test")
    async with anyio.create_task_group() as tg:
        tg.start_soon(kernel.run)
        ha = kernel.get("ha")
        await wait_until(lambda: ha.may_trade() and kernel.get("health").readiness()["ready"], 5)
        result = probes(kernel)
        assert result["live"][0] == 200 and result["ready"][0] == 200
        assert result["ready"][1]["role"] == "leader" and result["ready"][1]["trading"] is True
        with anyio.fail_after(3):
            delivery = await subscription.__anext__()
        assert delivery.event.leader is True and delivery.event.fencing_token == 1
        await subscription.aclose()
        kernel.request_stop("test")


async def test_a_group_naming_a_missing_component_stops_start_up(tmp_path: Path) -> None:
    kernel = _kernel(tmp_path, '[ha.groups.feeds]\ncomponents = ["datasource:x", "datasource:y"]\n')
    with pytest.raises(BaseException) as caught:
        await kernel.run()
    error = caught.value
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    assert isinstance(error, StartupError) and "ha.groups.feeds.components" in str(error) and "datasource:x" in str(error)


def test_ha_config_errors_name_the_key_path() -> None:
    from hrkernel.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_config_text('[ha]\nbackend = "zookeeper"\nlease_ttl = 3\n[ha.groups.g]\nmode = "hot"\ncomponents = ["a", "b"]\n')
    text = str(caught.value)
    assert "ha.backend" in text and "ha.lease_ttl" in text and "ha.groups.g.mode" in text
    with pytest.raises(ConfigError, match="renew_interval must be shorter"):
        load_config_text('[ha]\nlease_ttl = "1s"\nmargin = "600ms"\nrenew_interval = "500ms"\n')


class FeedConfig(ConfigStruct, kw_only=True):
    down_file: str
    """The feed reports unhealthy while this file exists (the test's fault switch)."""


class FileFeed:
    def __init__(self, config: FeedConfig) -> None:
        self.down_file = Path(config.down_file)

    async def check(self) -> HealthResult:
        if self.down_file.exists():
            return HealthResult(status=HealthStatus.UNHEALTHY, detail="feed stale")
        return HealthResult(status=HealthStatus.HEALTHY)


class FeedPlugin:
    @hookimpl
    def hr_register_datasources(self, register: Any) -> None:
        register("file_feed", lambda config, context: FileFeed(config), config=FeedConfig)


async def test_kernel_group_fails_over_and_back_with_history_and_alerts(tmp_path: Path) -> None:
    text = f"""
[kernel]
data_dir = "{tmp_path / "data"}"
[dashboard]
enabled = false
[datasources.primary]
type = "file_feed"
down_file = "{tmp_path / "primary.down"}"
[datasources.backup]
type = "file_feed"
down_file = "{tmp_path / "backup.down"}"
[ha.groups.feeds]
components = ["datasource:primary", "datasource:backup"]
check_interval = "20ms"
fail_after = 2
recover_after = 2
"""
    loaded = load_config_text(text, "test.toml")
    host = PluginHost(strict=True)
    host.discover()
    host.add(FeedPlugin(), "file_feed_plugin")
    host.collect()
    kernel = Kernel.build(loaded, host)
    async with anyio.create_task_group() as tg:
        tg.start_soon(kernel.run)
        ha = kernel.get("ha")
        await wait_until(lambda: ha.may_trade(), 5)
        assert ha.failover.active_id("feeds") == "datasource:primary"
        assert isinstance(ha.failover.active("feeds"), FileFeed)
        (tmp_path / "primary.down").write_text("x")
        await wait_until(lambda: ha.failover.active_id("feeds") == "datasource:backup", 5)
        (tmp_path / "primary.down").unlink()
        await wait_until(lambda: ha.failover.active_id("feeds") == "datasource:primary", 5)
        await wait_until(lambda: len(ha.store.failover_rows()) == 2, 2)  # written just after the switch
        rows = ha.store.failover_rows()
        assert [(r["from"], r["to"]) for r in rows] == [
            ("datasource:primary", "datasource:backup"), ("datasource:backup", "datasource:primary")
        ]
        assert "feed stale" in rows[0]["cause"] and rows[1]["cause"].startswith("failback")
        alerts = kernel.get("alerts")
        assert "failover group switched" in [a.title for a in alerts.open.values()]
        kernel.request_stop("test")


async def test_cli_group_failover_through_the_running_kernels_api(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = f"""
[kernel]
data_dir = "{tmp_path / "data"}"
[dashboard]
enabled = true
host = "127.0.0.1"
port = {port}
token = "dash-token-5678"
[datasources.primary]
type = "file_feed"
down_file = "{tmp_path / "primary.down"}"
[datasources.backup]
type = "file_feed"
down_file = "{tmp_path / "backup.down"}"
[ha.groups.feeds]
components = ["datasource:primary", "datasource:backup"]
auto_failback = false
"""
    config = tmp_path / "hr.toml"
    config.write_text(text)
    host = PluginHost(strict=True)
    host.discover()
    host.add(FeedPlugin(), "file_feed_plugin")
    host.collect()
    kernel = Kernel.build(load_config_text(text, str(config)), host)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HRKERNEL_")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        # The CLI has no file_feed plugin: it only reads [dashboard] and calls the API.
        return subprocess.run(
            [sys.executable, "-m", "hrkernel", "failover", "--group", "feeds", *args],
            capture_output=True, text=True, env=env, timeout=60,
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(kernel.run)
        ha = kernel.get("ha")
        await wait_until(ha.may_trade, 10)
        await anyio.sleep(0.3)  # the dashboard listens
        wrong = await anyio.to_thread.run_sync(lambda: cli(str(config), "--token", "nope"))
        assert wrong.returncode == 1 and "wrong dashboard token" in wrong.stderr
        moved = await anyio.to_thread.run_sync(lambda: cli(str(config), "--token", "dash-token-5678"))
        assert moved.returncode == 0, moved.stderr
        assert "datasource:primary -> datasource:backup" in moved.stdout
        assert ha.failover.active_id("feeds") == "datasource:backup"
        assert ha.failover.history[-1].cause.startswith("manual")
        unknown = await anyio.to_thread.run_sync(lambda: cli(str(config), "--token", "dash-token-5678", "--to", "zz"))
        assert unknown.returncode == 1 and "zz" in unknown.stderr
        kernel.request_stop("test")


async def test_step_down_hands_the_lease_over(redis_server: Any, tmp_path: Path) -> None:
    a = HAComponent(redis_config(redis_server.url), "a", data_dir=tmp_path / "a")
    b = HAComponent(redis_config(redis_server.url), "b", data_dir=tmp_path / "b")
    async with anyio.create_task_group() as tg:
        await a.start(tg)
        await wait_until(a.may_trade, 3)
        await b.start(tg)
        await anyio.sleep(0.2)
        await a.step_down("operator asked")
        assert not a.may_trade()
        await wait_until(b.may_trade, 2)
        await a.stop()
        await b.stop()
    local = HAComponent(HASection(), "solo")
    with pytest.raises(HAError, match="local lease"):
        await local.step_down()
