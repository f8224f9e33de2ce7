"""Fixtures for the web tests: a real kernel (built from config + installed plugins) running in a
background event loop, its dashboard on a free loopback port, reached over real HTTP."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import httpx
import pytest

from hrkernel.config import load_config_text
from hrkernel.kernel import Component, Kernel
from hrkernel.plugins import PluginHost

TOKEN = "web-test-token-123"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Feed(Component):
    """A stand-in market-data feed whose health the test controls (a failover-group member)."""

    kind = "datasource"

    def __init__(self, name: str) -> None:
        self.name = name
        self.healthy = True

    def is_healthy(self) -> bool:
        return self.healthy

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind}


@dataclass
class RunningKernel:
    kernel: Kernel
    portal: anyio.from_thread.BlockingPortal
    url: str
    token: str

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` (sync or async) on the kernel's event loop thread."""
        return self.portal.call(fn, *args)

    def get(self, name: str) -> Any:
        return self.kernel.get(name)


CONFIG = """
[kernel]
instance_id = "web-test"
data_dir = "{data}"
[logging]
level = "warning"
[health]
default_interval = "200ms"
[health.checks.event_loop_lag]
interval = "200ms"
[ha.groups.feeds]
components = ["feed:a", "feed:b"]
check_interval = "100ms"
fail_after = 1
recover_after = 1
auto_failback = false
[dashboard]
host = "127.0.0.1"
port = {port}
token = "${{WEB_TEST_TOKEN}}"
push_interval = "200ms"
stale_after = "2s"
{extra}
"""


def start_kernel(tmp_path: Path, extra: str = "") -> tuple[RunningKernel, Callable[[], None]]:
    port = _free_port()
    text = CONFIG.format(data=tmp_path / "data", port=port, extra=extra)
    loaded = load_config_text(text, "web-test.toml", environ={"WEB_TEST_TOKEN": TOKEN})
    host = PluginHost(strict=True)
    host.discover()
    host.collect()
    kernel = Kernel.build(loaded, host)
    kernel.add(Feed("feed:a"))
    kernel.add(Feed("feed:b"))
    cm = anyio.from_thread.start_blocking_portal()
    portal = cm.__enter__()
    ready = anyio.Event()
    future = portal.start_task_soon(lambda: kernel.run(on_ready=ready.set))
    portal.call(lambda: _wait(ready))
    running = RunningKernel(kernel, portal, f"http://127.0.0.1:{port}", TOKEN)

    def stop() -> None:
        portal.call(kernel.request_stop, "test over")
        future.result(timeout=15)
        cm.__exit__(None, None, None)

    return running, stop


async def _wait(event: anyio.Event) -> None:
    with anyio.fail_after(15):
        await event.wait()


@pytest.fixture
def running_kernel(tmp_path: Path) -> Iterator[RunningKernel]:
    """A kernel with health checks, alerts, HA (local lease + failover group ``feeds``) and the
    dashboard (token ``TOKEN``) on a free port."""
    running, stop = start_kernel(tmp_path)
    try:
        yield running
    finally:
        stop()


@pytest.fixture(scope="module")
def shared_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningKernel]:
    """One such kernel shared by a module's read-only tests (keeps the suite fast)."""
    running, stop = start_kernel(tmp_path_factory.mktemp("web-shared"))
    try:
        yield running
    finally:
        stop()


@pytest.fixture
def make_kernel(tmp_path: Path) -> Iterator[Callable[[str], RunningKernel]]:
    """Factory: ``make_kernel(extra_dashboard_lines)`` starts such a kernel; all stopped after."""
    stops: list[Callable[[], None]] = []

    def make(extra: str = "") -> RunningKernel:
        running, stop = start_kernel(tmp_path / f"k{len(stops)}", extra)
        stops.append(stop)
        return running

    yield make
    for stop in stops:
        stop()


@dataclass
class SimKernel:
    kernel: RunningKernel
    sim: Any

    def fault(self, kind: str, count: int) -> None:
        """Script ``count`` faults of ``kind`` on every endpoint of the simulator (its admin API)."""
        r = httpx.post(self.sim.base_url + "/_sim/faults/script", json={"endpoint": "*", "kind": kind, "count": count},
                       headers=self.sim.admin_headers)
        r.raise_for_status()


@pytest.fixture
def sim_kernel(tmp_path: Path) -> Iterator[SimKernel]:
    """The Nobitex simulator on loopback, and a kernel whose ``nobitex`` exchange trades on it
    (breaker after 3 failures, no read retries) with the dashboard up."""
    from hrkernel_sim.server import SimServer

    with anyio.from_thread.start_blocking_portal() as sim_portal:
        sim = SimServer()
        sim_portal.call(sim.start)
        try:
            extra = (
                '[exchanges.nobitex]\ntype = "nobitex"\ntoken = "sim-token-default"\n'
                f'base_url = "{sim.base_url}"\nbreaker_failure_threshold = 3\nbreaker_reset_timeout = "60s"\n'
                "retry_attempts = 1\n"
            )
            running, stop = start_kernel(tmp_path, extra)
            try:
                yield SimKernel(running, sim)
            finally:
                stop()
        finally:
            sim_portal.call(sim.stop)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
