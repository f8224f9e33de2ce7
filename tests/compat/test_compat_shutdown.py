"""The documents' GracefulShutdown(trading_engine).shutdown_sequence(): five steps with their own
timeouts, over an engine trading on the simulator and leading through a real Redis."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest

from hrkernel.compat import (
    GracefulShutdown,
    LeaderElection,
    TradingEngineSteps,
    TransactionVerificationPipeline,
)
from hrkernel.compat.shutdown import DEFAULT_TIMEOUTS
from hrkernel.orders.errors import TradingHaltedError
from hrkernel.orders.journal import OrderState

pytestmark = pytest.mark.anyio


class Engine:
    """A small trading engine: the compat pipeline on the simulator, leadership on Redis."""

    def __init__(self, adapter: Any, election: LeaderElection) -> None:
        self.adapter = adapter
        self.election = election
        self.pipeline = TransactionVerificationPipeline(exchange_adapter=adapter, verification_timeout=0.2)
        self.closed_positions = False

    async def stop_new_orders(self) -> None:
        self.pipeline.pipeline.halt("shutdown", "shutting down")

    async def cancel_open_orders(self) -> None:
        for order in await self.adapter.list_open_orders():
            await self.adapter.cancel_order(exchange_id=order.exchange_id)

    async def close_positions(self) -> None:
        self.closed_positions = True

    async def flush(self) -> None:
        self.pipeline.database.execute("CHECKPOINT")

    async def release_and_close(self) -> None:
        await self.election.stop()
        await self.adapter.close()


async def resting_order(engine: Engine) -> Any:
    book = await engine.adapter.order_book("BTCUSDT")
    price = (book.bids[0].price * Decimal("0.95")).quantize(Decimal("0.01"))
    tx = await engine.pipeline.create_transaction(type="limit_buy", symbol="BTC/USDT", amount=0.001,
                                                  exchange="nobitex", price=price)
    assert await engine.pipeline.execute_transaction(tx) is False  # resting, not filled
    assert engine.pipeline.last_result is not None and engine.pipeline.last_result.state is OrderState.ACKED
    return tx


async def test_the_sequence_leaves_nothing_open_and_hands_the_lease_over(adapter: Any, redis_server: Any) -> None:
    election = LeaderElection(redis_server.url, "compat-shutdown", ttl_seconds=2, instance_id="hr-old")
    successor = LeaderElection(redis_server.url, "compat-shutdown", ttl_seconds=2, instance_id="hr-new")
    async with anyio.create_task_group() as tg:
        tg.start_soon(election.run_leader_election)
        with anyio.fail_after(5):
            while not election.is_leader:
                await anyio.sleep(0.01)
        engine = Engine(adapter, election)
        assert isinstance(engine, TradingEngineSteps)
        await resting_order(engine)
        assert len(await adapter.list_open_orders()) == 1
        tg.start_soon(successor.run_leader_election)
        shutdown = GracefulShutdown(engine)
        report = await shutdown.shutdown_sequence()
        assert [(s.step, s.outcome) for s in report.steps] == [
            ("stop_new_orders", "ok"), ("cancel_open_orders", "ok"), ("close_positions", "skipped"),
            ("flush", "ok"), ("release_and_close", "ok")]
        assert [s.timeout for s in report.steps] == [30.0, 60.0, 120.0, 30.0, 30.0] == list(DEFAULT_TIMEOUTS.values())
        assert report.clean and not engine.closed_positions
        with pytest.raises(TradingHaltedError, match="shutting down"):
            await engine.pipeline.create_transaction(type="market_buy", symbol="BTC/USDT", amount=0.001)
        assert not election.is_leader
        with anyio.fail_after(5):  # released, not left to expire: the standby leads at once
            while not successor.is_leader:
                await anyio.sleep(0.01)
        await successor.stop()
        tg.cancel_scope.cancel()


async def test_a_hanging_cancel_times_out_and_the_sequence_still_releases(
    adapter: Any, redis_server: Any, sim_admin: httpx.AsyncClient,
) -> None:
    election = LeaderElection(redis_server.url, "compat-shutdown-hang", ttl_seconds=2, instance_id="hr-h")
    async with anyio.create_task_group() as tg:
        tg.start_soon(election.run_leader_election)
        with anyio.fail_after(5):
            while not election.is_leader:
                await anyio.sleep(0.01)
        engine = Engine(adapter, election)
        await resting_order(engine)
        # The exchange holds the cancel request unanswered (the simulator's `hang` fault).
        await sim_admin.post("/_sim/faults/script", json={"endpoint": "orders_cancel", "kind": "hang", "count": 5})
        shutdown = GracefulShutdown(engine, close_positions=True, timeouts={"cancel_open_orders": 0.3})
        report = await shutdown.shutdown_sequence()
        outcomes = {s.step: s for s in report.steps}
        assert outcomes["cancel_open_orders"].outcome == "timeout"
        assert outcomes["cancel_open_orders"].seconds >= 0.3
        assert outcomes["close_positions"].outcome == "ok" and engine.closed_positions
        assert outcomes["release_and_close"].outcome == "ok" and not election.is_leader
        assert not report.clean
        tg.cancel_scope.cancel()


def test_an_engine_without_the_steps_is_refused() -> None:
    class Half:
        async def stop_new_orders(self) -> None: ...

    with pytest.raises(TypeError, match="lacks cancel_open_orders, close_positions, flush, release_and_close"):
        GracefulShutdown(Half())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown step\\(s\\) drain"):
        GracefulShutdown(Engine.__new__(Engine), timeouts={"drain": 1})
