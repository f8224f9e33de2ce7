"""The Nobitex simulator with one funded account, for tests that need a live exchange."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

SIM_TOKEN = "contract-token-0001"


@asynccontextmanager
async def one_account_sim() -> AsyncIterator[Any]:
    """A running ``SimServer`` whose one account (``SIM_TOKEN``) holds rials, USDT and BTC."""
    from hrkernel.types import Amount
    from hrkernel_sim.config import AccountConfig, SimConfig
    from hrkernel_sim.server import SimServer

    config = SimConfig(accounts={"default": AccountConfig(token=SIM_TOKEN, balances={
        "rls": Amount("100000000000"), "usdt": Amount("10000"), "btc": Amount("1")})})
    async with SimServer(config) as server:
        yield server
