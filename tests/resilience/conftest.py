"""Fixtures for the resilience tests: a manual clock (nothing here sleeps for real), and every
async test runs on asyncio and, when trio is installed, on trio too."""

from __future__ import annotations

import importlib.util

import pytest

from hrkernel.resilience import ManualClock

BACKENDS = ["asyncio"] + (["trio"] if importlib.util.find_spec("trio") else [])


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
