"""Fixtures shared by the whole suite: real servers on loopback, started and cleaned up here.

Area-specific fixtures live in ``tests/<area>/conftest.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def unused_port() -> object:
    """``unused_port()`` → a TCP port on 127.0.0.1 that was free a moment ago."""
    return free_port


def _doc_files(page: str) -> dict[str, str]:
    body = (ROOT / "docs" / page).read_text()
    files: dict[str, str] = {}
    for block in re.findall(r"```(?:python|toml)\n(.*?)```", body, re.S):
        first, _, rest = block.partition("\n")
        match = re.match(r"# file: (\S+)", first)
        if match:
            files[match.group(1)] = rest
    return files


@pytest.fixture(scope="session")
def doc_files() -> object:
    """``doc_files(page)`` → ``{path: text}`` of the code blocks of ``docs/<page>`` that start with
    a ``# file: <path>`` line: the example packages the guides show, built by tests."""
    return _doc_files


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class RedisServer:
    """A private ``redis-server`` on its own port that a test may stop, kill, pause and restart."""

    def __init__(self, port: int, workdir: str) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:  # .ci/run installs it; only a hand-made environment lacks it
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.workdir, "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh private Redis for this test (stopped afterwards, whatever the test did to it)."""
    workdir = tempfile.mkdtemp(prefix="hr-redis-")
    server = RedisServer(free_port(), workdir)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment minus HRKERNEL_* variables, for subprocess kernels."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HRKERNEL_")}
    return env


class KernelProcess:
    """``hrkernel run CONFIG`` as a real subprocess whose JSON log lines are collected as they come."""

    def __init__(self, config: Path, env: dict[str, str], python: str | None = None, cwd: Path | None = None) -> None:
        import json
        import queue
        import sys
        import threading

        self._json = json
        self.events: list[dict[str, object]] = []
        self.raw: list[str] = []
        self._queue: queue.Queue[dict[str, object] | None] = queue.Queue()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [python or sys.executable, "-m", "hrkernel", "run", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(cwd) if cwd else None,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            try:
                event = self._json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.events.append(event)
                self._queue.put(event)
        self._queue.put(None)

    def wait_for(self, event: str, timeout: float = 10.0, **fields: object) -> dict[str, object]:
        """Block until a log event named ``event`` (with matching fields) appears."""
        import queue

        for seen in self.events:
            if seen.get("event") == event and all(seen.get(k) == v for k, v in fields.items()):
                return seen
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {event!r} event within {timeout}s; output:\n{''.join(self.raw)[-4000:]}")
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if item is None:
                raise RuntimeError(f"kernel exited ({self.proc.wait()}) before {event!r}; output:\n{''.join(self.raw)[-4000:]}")
            if item.get("event") == event and all(item.get(k) == v for k, v in fields.items()):
                return item

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 10.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def output(self) -> str:
        return "".join(self.raw)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def kernel_process(clean_env: dict[str, str]) -> Iterator[object]:
    """Factory: ``kernel_process(config_path, env=None, python=None)`` → :class:`KernelProcess`.

    Every process started is killed at the end of the test if it is still running.
    """
    started: list[KernelProcess] = []

    def start(config: Path, env: dict[str, str] | None = None, python: str | None = None, cwd: Path | None = None) -> KernelProcess:
        full_env = dict(clean_env)
        full_env.update(env or {})
        process = KernelProcess(config, full_env, python=python, cwd=cwd)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


# Modules whose every test starts real processes (the kernel, a worker, `hrkernel` commands, a
# pip build), real servers or a browser, or waits out seconds: marked ``slow`` here in one place, so
# ``pytest -m "not slow"`` is the inner loop. A single slow test in an otherwise fast module is
# marked where it is written (``@pytest.mark.slow``), as are the modules marked before this list.
SLOW_MODULES = frozenset({
    "alerts/test_alerts_cli.py",
    "alerts/test_alerts_failing_channel.py",
    "alerts/test_alerts_readme_plugin.py",
    "bus/test_bus_fallback.py",
    "bus/test_bus_rabbitmq.py",
    "bus/test_bus_redis.py",
    "compat/test_compat_failover.py",
    "compat/test_compat_shutdown.py",
    "config/test_config_errors_cli.py",
    "config/test_config_fuzz.py",
    "datasources/test_datasources_kernel.py",
    "ha/test_ha_component.py",
    "ha/test_ha_health_grace.py",
    "ha/test_ha_replication.py",
    "kernel/test_kernel_cli.py",
    "kernel/test_kernel_cli_conventions.py",
    "kernel/test_kernel_deploy.py",
    "kernel/test_kernel_events.py",
    "kernel/test_kernel_exchange_contract.py",
    "kernel/test_kernel_lifecycle.py",
    "kernel/test_kernel_plugins.py",
    "kernel/test_kernel_quickstart.py",
    "kernel/test_kernel_shutdown.py",
    "kernel/test_kernel_signal_path.py",
    "orders/test_orders_component.py",
    "orders/test_orders_crash.py",
    "orders/test_orders_journal_crash.py",
    "orders/test_orders_kernel.py",
    "orders/test_orders_operator.py",
    "signals/test_signals_outcomes.py",
    "signals/test_signals_positions.py",
    "signals/test_signals_webhook_fuzz.py",
    "sim/test_sim_persist.py",
    "web/test_web_browser.py",
    "web/test_web_guard.py",
    "web/test_web_kernel.py",
    "web/test_web_positions_browser.py",
    "web/test_web_status_browser.py",
})
SLOW_FOLDERS = ("chaos/",)  # every chaos test drives the kernel and the simulator as processes


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).resolve().parent
    for item in items:
        try:
            module = item.path.resolve().relative_to(tests).as_posix()
        except ValueError:
            continue
        if module in SLOW_MODULES or module.startswith(SLOW_FOLDERS):
            item.add_marker(pytest.mark.slow)
