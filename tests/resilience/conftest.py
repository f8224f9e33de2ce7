"""Fixtures for the resilience tests: a manual clock, so nothing here sleeps for real."""

from __future__ import annotations

import pytest

from hrkernel.resilience import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
