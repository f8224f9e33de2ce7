"""Fixtures for the compat tests: the Nobitex simulator on loopback (real HTTP) and the
documents' ``EnhancedNobitexAdapter`` pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from hrkernel.types import Amount, Duration

SIM_TOKEN = "compat-token-0001"
BALANCES = {"rls": "100000000000", "usdt": "10000", "btc": "1"}


async def start_sim() -> Any:
    from hrkernel_sim.config import AccountConfig, RateLimitConfig, SimConfig
    from hrkernel_sim.server import SimServer

    config = SimConfig(accounts={"default": AccountConfig(
        token=SIM_TOKEN, balances={k: Amount(v) for k, v in BALANCES.items()})},
        rate_limits=RateLimitConfig(enabled=False), duplicate_window=Duration(0.0))
    server = SimServer(config)
    await server.start()
    return server


@pytest.fixture
async def sim() -> AsyncIterator[Any]:
    server = await start_sim()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def sim_admin(sim: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url, headers=sim.admin_headers, timeout=5) as client:
        yield client


def adapter_config(base_url: str, **extra: Any) -> dict[str, Any]:
    """The documents' adapter config plus what a test on loopback needs (fast retries, no limits)."""
    return {"api_key": SIM_TOKEN, "api_secret": "not-used-by-nobitex", "base_url": base_url,
            "rate_limit": False, "timeout": 2, "retry_base_delay": 0.01, "retry_max_delay": 0.05, **extra}


@pytest.fixture
async def make_adapter() -> AsyncIterator[Callable[..., Any]]:
    """``await make_adapter(base_url, **extra)`` → an initialized EnhancedNobitexAdapter (closed after)."""
    from hrkernel.compat import EnhancedNobitexAdapter

    made: list[Any] = []

    async def make(base_url: str, **extra: Any) -> Any:
        adapter = EnhancedNobitexAdapter(config=adapter_config(base_url, **extra))
        await adapter.initialize()
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close()


@pytest.fixture
async def adapter(sim: Any, make_adapter: Callable[..., Any]) -> Any:
    return await make_adapter(sim.base_url)
