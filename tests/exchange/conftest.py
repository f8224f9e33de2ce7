"""The Nobitex simulator for the exchange wrapper's tests (one account, SIM_TOKEN)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.helpers.sim import one_account_sim


@pytest.fixture
async def sim() -> AsyncIterator[Any]:
    async with one_account_sim() as server:
        yield server
