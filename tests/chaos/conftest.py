"""Chaos tests start real processes through hrkernel_chaos (simulator, redis-server, kernels)."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def needs_redis() -> None:
    if shutil.which("redis-server") is None:  # .ci/run installs it
        pytest.skip("redis-server is not installed")
