"""Running ``hrkernel`` commands and waiting on what a running kernel does, for the tests that
drive the kernel as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def hr(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hrkernel ARGS`` in ``cwd`` with no ``HRKERNEL_*`` variables from the
    outer environment; the output is captured as text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HRKERNEL_")}
    return subprocess.run([sys.executable, "-m", "hrkernel", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=60)


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``predicate`` every 0.1 s until it holds; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError("condition not met")


def wait_for_answer(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``predicate`` every 0.05 s until it returns something truthy and return that. While a
    kernel is starting or failing over its API may refuse or answer half: HTTP, parse and lookup
    errors count as "not yet". TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} not met within {timeout}s")


SIM_ADMIN = {"X-Sim-Admin-Token": "sim-admin"}


def _sim_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_sim/orders", headers=SIM_ADMIN, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def sim_process(port: int) -> Iterator[str]:
    """``hrkernel sim serve`` on ``port`` as a process: yields its URL once it answers, terminates
    it on exit."""
    proc = subprocess.Popen([sys.executable, "-m", "hrkernel", "sim", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _sim_up(url))
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
