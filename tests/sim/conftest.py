"""Fixtures for the simulator's tests: an in-process SimServer on loopback and httpx clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgspec
import pytest

from hrkernel_sim.config import AccountConfig, SimConfig, parse_config
from hrkernel_sim.server import SimServer

TOKEN = "tok-alice"
TOKEN_BOB = "tok-bob"


class FakeClock:
    """An injectable clock: rate-limit windows, DuplicateOrder and downtime read it."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def make_config(**overrides: Any) -> SimConfig:
    """A small deterministic config: the price moves only when a test moves it."""
    base: dict[str, Any] = {
        "walk_on_request": False,
        "accounts": {
            "alice": {"token": TOKEN, "email": "alice@example.com",
                      "balances": {"rls": "10000000000", "usdt": "1000", "btc": "0.5"}},
            "bob": {"token": TOKEN_BOB, "balances": {"rls": "5000000", "btc": "0.01"}},
        },
        "markets": [
            {"symbol": "BTCIRT", "price": "100000000000", "amount_precision": "0.000001",
             "price_precision": "10", "level_size": "0.01", "levels": 5, "spread": 0.001,
             "step": 0.001},
            {"symbol": "USDTIRT", "price": "1000000", "amount_precision": "0.01",
             "price_precision": "10", "level_size": "100", "levels": 5},
            {"symbol": "BTCUSDT", "price": "100000", "amount_precision": "0.000001",
             "price_precision": "0.01", "level_size": "0.01", "levels": 5},
        ],
    }
    base.update(overrides)
    cfg = parse_config(base)
    assert isinstance(cfg, SimConfig)
    return cfg


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim_factory(clock: FakeClock) -> Callable[..., SimServer]:
    def factory(**overrides: Any) -> SimServer:
        return SimServer(make_config(**overrides), clock=clock)
    return factory


@pytest.fixture
async def sim(sim_factory: Callable[..., SimServer]) -> AsyncIterator[SimServer]:
    async with sim_factory() as server:
        yield server


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=5,
                                 headers={"Authorization": f"Token {TOKEN}"}) as c:
        yield c


@pytest.fixture
async def admin(sim: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=5, headers=sim.admin_headers) as c:
        yield c


@pytest.fixture
def buy() -> dict[str, Any]:
    """A valid limit buy below the book (rests Active)."""
    return {"type": "buy", "srcCurrency": "btc", "dstCurrency": "rls", "amount": "0.001",
            "price": "99000000000"}


__all__ = ["AccountConfig", "FakeClock", "msgspec"]
