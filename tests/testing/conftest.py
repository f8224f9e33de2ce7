"""The Nobitex simulator for the conformance kit's own tests (one account, SIM_TOKEN)."""

from __future__ import annotations

from typing import Any

import pytest

SIM_TOKEN = "contract-token-0001"


@pytest.fixture
async def sim() -> Any:
    from hrkernel.types import Amount
    from hrkernel_sim.config import AccountConfig, SimConfig
    from hrkernel_sim.server import SimServer

    config = SimConfig(accounts={"default": AccountConfig(token=SIM_TOKEN, balances={
        "rls": Amount("100000000000"), "usdt": Amount("10000"), "btc": Amount("1")})})
    async with SimServer(config) as server:
        yield server
