"""The polling source against the Nobitex simulator over real HTTP on loopback."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from hrkernel.bus.events import TickerEvent
from hrkernel.types import Amount, HealthStatus
from hrkernel_datasources.config import PollConfig
from hrkernel_datasources.poll import ExchangePollSource


@pytest.fixture
async def sim_exchange() -> Any:
    from hrkernel_nobitex.config import NobitexConfig
    from hrkernel_nobitex.exchange import NobitexExchange
    from hrkernel_sim.config import AccountConfig, SimConfig
    from hrkernel_sim.server import SimServer

    config = SimConfig(accounts={"default": AccountConfig(token="datasource-token-01", balances={"rls": Amount("1000")})})
    async with SimServer(config) as server:
        exchange = NobitexExchange(NobitexConfig(token="datasource-token-01", base_url=server.base_url), instance_id="t")
        await exchange.start()
        try:
            yield exchange
        finally:
            await exchange.aclose()


@pytest.mark.anyio
async def test_polls_book_ticker_and_trades_from_the_simulator(sim_exchange: Any) -> None:
    source = ExchangePollSource("sim", PollConfig(symbols=["BTCIRT"], interval=0.05, trades=True, max_age=2.0),  # type: ignore[arg-type]
                                exchange=sim_exchange)
    async with anyio.create_task_group() as tg:
        await source.start(tg)
        with anyio.fail_after(5):
            while source.latest_book("BTCIRT") is None or source.latest_ticker("BTCIRT") is None:
                await anyio.sleep(0.02)
        book, age = source.latest_book("BTCIRT")  # type: ignore[misc]
        assert book.bids and book.asks and book.bids[0].price < book.asks[0].price
        assert 0 <= age < 2.0
        ticker, _ = source.latest_ticker("BTCIRT")  # type: ignore[misc]
        assert isinstance(ticker, TickerEvent)
        assert (await source.check()).status == HealthStatus.HEALTHY
        await source.stop()
        tg.cancel_scope.cancel()
    assert source.errors == 0


@pytest.mark.anyio
async def test_a_dead_exchange_makes_the_source_stale_not_crash() -> None:
    from hrkernel_nobitex.config import NobitexConfig
    from hrkernel_nobitex.exchange import NobitexExchange

    exchange = NobitexExchange(NobitexConfig(base_url="http://127.0.0.1:9", timeout="200ms"), instance_id="t")  # type: ignore[arg-type]
    source = ExchangePollSource("dead", PollConfig(symbols=["BTCIRT"], interval=0.05, max_age=0.2), exchange=exchange)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        await source.start(tg)
        with anyio.fail_after(10):
            while source.errors < 2:
                await anyio.sleep(0.02)
        assert (await source.check()).status == HealthStatus.UNHEALTHY
        await source.stop()
        tg.cancel_scope.cancel()
    await exchange.aclose()
