"""Fixtures for the order pipeline tests: the Nobitex simulator on loopback (real HTTP), the
Nobitex adapter pointed at it, and a journal + ledger in one DuckDB file under tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from hrkernel.ledger import Ledger
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.journal import OrderJournal
from hrkernel.orders.pipeline import TransactionVerificationPipeline
from hrkernel.types import Amount, Duration
from tests.helpers.timing import FastForward

SIM_TOKEN = "orders-token-0001"
BALANCES = {"rls": "100000000000", "usdt": "10000", "btc": "1"}


@pytest.fixture
async def sim() -> AsyncIterator[Any]:
    from hrkernel_sim.config import AccountConfig, RateLimitConfig, SimConfig
    from hrkernel_sim.server import SimServer

    config = SimConfig(accounts={"default": AccountConfig(
        token=SIM_TOKEN, balances={k: Amount(v) for k, v in BALANCES.items()})},
        rate_limits=RateLimitConfig(enabled=False), duplicate_window=Duration(0.0))
    async with SimServer(config) as server:
        yield server


@pytest.fixture
async def sim_admin(sim: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url, headers=sim.admin_headers, timeout=5) as client:
        yield client


@pytest.fixture
def fast_forward() -> FastForward:
    """The clock and sleep the ``exchange`` fixture's adapter runs on: a test hands the same to its
    pipeline (``make_pipeline(time=fast_forward)``) to skip rate-limit back-offs instead of
    waiting them out."""
    return FastForward()


@pytest.fixture
async def exchange(sim: Any, fast_forward: FastForward) -> AsyncIterator[Any]:
    from hrkernel_nobitex.config import NobitexConfig
    from hrkernel_nobitex.exchange import NobitexExchange

    ex = NobitexExchange(NobitexConfig(token=SIM_TOKEN, base_url=sim.base_url, bot_name="orders-tests",
                                       timeout=Duration(0.3), connect_timeout=Duration(0.5), rate_limit=False,
                                       retry_base_delay=Duration(0.01), retry_max_delay=Duration(0.05),
                                       breaker_failure_threshold=1000),
                         instance_id="hr-orders-test", clock=fast_forward.clock, sleep=fast_forward.sleep)
    async with ex:
        yield ex


def fast_config(**overrides: Any) -> OrdersSection:
    options: dict[str, Any] = {
        "visibility_window": Duration(0.05), "lookup_backoff": Duration(0.01), "poll_initial": Duration(0.01),
        "poll_max": Duration(0.05), "verify_deadline": Duration(2.0), "max_open_orders": 1000,
    }
    options.update(overrides)
    return OrdersSection(**options)


@pytest.fixture
def make_pipeline(tmp_path: Path, exchange: Any) -> Iterator[Callable[..., TransactionVerificationPipeline]]:
    """``make_pipeline(**config_overrides)``: a pipeline on the simulator, ledger seeded with the
    simulator account's opening balances."""
    made: list[duckdb.DuckDBPyConnection] = []
    journals: list[OrderJournal] = []

    def make(*, seed: bool = True, lease: Any = None, alert: Any = None, db: str = "orders.duckdb",
             time: FastForward | None = None, **overrides: Any) -> TransactionVerificationPipeline:
        con = duckdb.connect(str(tmp_path / db))
        made.append(con)
        ledger = Ledger(con)
        journal = OrderJournal(tmp_path / db.replace(".duckdb", ".journal.sqlite"))
        journals.append(journal)
        if seed and not ledger.has_postings("nobitex"):
            for ccy, amount in BALANCES.items():
                ledger.deposit("nobitex", ccy.upper(), Decimal(amount), reason="opening balance")
        return TransactionVerificationPipeline(exchanges={"nobitex": exchange}, journal=journal, ledger=ledger,
                                               config=fast_config(**overrides), lease=lease, alert=alert,
                                               **({"clock": time.clock, "sleep": time.sleep} if time else {}))

    yield make
    for journal in journals:
        journal.close()
