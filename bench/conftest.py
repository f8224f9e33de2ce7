"""Shared bench fixtures.

Every bench runs with the production log configuration: :func:`hrkernel.logging.configure` as
``hrkernel run`` calls it with hr.toml's defaults (level ``info``, JSON lines), writing to a file
on disk as a deployment redirecting stdout would. Info lines are on, so their cost is measured.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from hrkernel.logging import configure as configure_logging


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A private, non-persistent redis-server on loopback for one bench module."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port, workdir = _free_port(), tempfile.mkdtemp(prefix="hr-bench-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/0"
    proc.kill()
    proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def production_logging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Log as ``hrkernel run`` does (info, JSON lines, one flush per line) for one bench module.

    Module-scoped so a module that configures logging for itself starts from production again.
    The path is handed to benches that start servers, so their processes log the same way.
    """
    path = tmp_path_factory.mktemp("hr-bench-logs") / "bench.log"
    with path.open("a", buffering=1) as stream:
        configure_logging("info", "json", stream=stream)
        yield path
        structlog.reset_defaults()
