"""The pipeline against the Nobitex simulator over real HTTP: prepare refusals, dedupe, lease,
lost responses resolved by client order id, fills posted once, ground truth from /_sim/*."""

from __future__ import annotations

import os
import random
from decimal import Decimal
from typing import Any

import msgspec
import pytest
import structlog
import structlog.testing

from hrkernel.exchange import OrderRequest, OrderType, Side
from hrkernel.orders.errors import NotLeaderError, OrderRejectedError, TradingHaltedError
from hrkernel.orders.journal import OrderState
from hrkernel.orders.pipeline import Signal, client_order_id_for
from hrkernel.types import Duration
from tests.helpers.timing import FastForward

pytestmark = pytest.mark.anyio


async def mid(admin: Any, symbol: str = "BTCIRT") -> Decimal:
    return Decimal((await admin.get(f"/_sim/markets/{symbol}")).json()["mid"])


async def sim_orders(admin: Any) -> list[dict[str, Any]]:
    return (await admin.get("/_sim/orders")).json()["orders"]


async def sim_trades(admin: Any) -> list[dict[str, Any]]:
    return [t for t in (await admin.get("/_sim/trades")).json()["trades"] if t["account"] == "default"]


def price_at(m: Decimal, factor: str) -> Decimal:
    return (m * Decimal(factor) / 10).to_integral_value() * 10


def buy(signal_id: str, price: Decimal, amount: str = "0.001", **kw: Any) -> Signal:
    return Signal(signal_id=signal_id, exchange="nobitex", symbol="BTCIRT", side=Side.BUY,
                  amount=Decimal(amount), price=price, **kw)


def test_client_order_id_is_deterministic_and_fits_32_chars() -> None:
    a = client_order_id_for("nobitex", "sig-1")
    assert a == client_order_id_for("nobitex", "sig-1") and len(a) == 32 and a.isalnum()
    assert a != client_order_id_for("nobitex", "sig-2") != client_order_id_for("other", "sig-1")


async def test_a_crossing_buy_is_placed_once_filled_and_posted(make_pipeline, sim_admin) -> None:
    pipeline = make_pipeline()
    before = pipeline.ledger.venue_balances("nobitex")
    rec = await pipeline.submit(buy("s-fill", price_at(await mid(sim_admin), "1.02")))
    assert rec.state is OrderState.VERIFIED, rec
    assert [e.state for e in pipeline.journal.history(rec.client_order_id)] == [
        OrderState.PREPARED, OrderState.SUBMITTING, OrderState.ACKED, OrderState.FILLED, OrderState.VERIFIED]
    orders = await sim_orders(sim_admin)
    assert [o["clientOrderId"] for o in orders] == [rec.client_order_id]
    trades = await sim_trades(sim_admin)
    assert trades and all(pipeline.ledger.has_fill("nobitex", str(t["id"])) for t in trades)
    after = pipeline.ledger.venue_balances("nobitex")
    assert after["BTC"] > before["BTC"] and after["RLS"] < before["RLS"]
    # the same signal again: the same order, nothing new on the exchange
    again = await pipeline.submit(buy("s-fill", price_at(await mid(sim_admin), "1.02")))
    assert again.client_order_id == rec.client_order_id and len(await sim_orders(sim_admin)) == 1
    assert pipeline.ledger.unbalanced_transactions() == []


async def test_a_resting_order_stays_open_after_the_verify_deadline(make_pipeline, sim_admin) -> None:
    pipeline = make_pipeline(verify_deadline=0.1)
    rec = await pipeline.submit(buy("s-rest", price_at(await mid(sim_admin), "0.95")))
    assert rec.state is OrderState.ACKED and not rec.unresolved and rec.exchange_order_id
    assert [o.client_order_id for o in pipeline.journal.open_orders()] == [rec.client_order_id]


@pytest.mark.parametrize(
    ("signal_kw", "config", "match"),
    [
        ({"symbol": "NOPEIRT"}, {}, "unknown symbol"),
        ({"amount": Decimal("0.0000001")}, {}, "amount step"),
        ({"amount": Decimal("0.000001")}, {}, "below the market minimum"),
        ({"price_factor": "2"}, {}, "away from the book"),
        ({}, {"max_notional": {"RLS": Decimal("1000")}}, "max_notional"),
        ({}, {"max_position": {"BTC": Decimal("1")}}, "max_position"),
        ({"amount": Decimal("5")}, {"max_price_deviation": Decimal("0.5")}, "insufficient RLS"),
    ],
)
async def test_prepare_refuses_and_journals_the_reason(make_pipeline, sim_admin, signal_kw, config, match) -> None:
    pipeline = make_pipeline(**config)
    m = await mid(sim_admin)
    kw = dict(signal_kw)
    factor = kw.pop("price_factor", "1.0")
    signal = Signal(signal_id="s-bad", exchange="nobitex", symbol=kw.pop("symbol", "BTCIRT"), side=Side.BUY,
                    amount=kw.pop("amount", Decimal("0.001")), price=price_at(m, factor))
    with pytest.raises(OrderRejectedError, match=match):
        await pipeline.create_transaction(signal)
    rec = pipeline.journal.by_signal("s-bad")
    assert rec is not None and rec.state is OrderState.FAILED and match.split()[0] in (rec.reason or "")
    assert await sim_orders(sim_admin) == []


async def test_kill_switch_halt_and_lost_lease_send_nothing(make_pipeline, sim_admin) -> None:
    class Standby:
        token = None

        def holds_with_margin(self) -> bool:
            return False

    p = price_at(await mid(sim_admin), "0.95")
    with pytest.raises(TradingHaltedError, match="kill switch"):
        await make_pipeline(kill_switch=True, db="a.duckdb").create_transaction(buy("k1", p))
    halted = make_pipeline(db="b.duckdb")
    halted.halt("drift", "balance drift on BTC")
    with pytest.raises(TradingHaltedError, match="drift on BTC"):
        await halted.create_transaction(buy("k2", p))
    standby = make_pipeline(lease=Standby(), db="c.duckdb")
    tx = await standby.create_transaction(buy("k3", p))
    with pytest.raises(NotLeaderError):
        await standby.execute_transaction(tx)
    assert standby.journal.get(tx.client_order_id).state is OrderState.PREPARED  # type: ignore[union-attr]
    assert await sim_orders(sim_admin) == []


async def test_a_dropped_response_becomes_unknown_and_is_found_by_client_id(make_pipeline, sim_admin) -> None:
    pipeline = make_pipeline()
    await sim_admin.post("/_sim/faults/script", json={"endpoint": "orders_add", "kind": "drop_after_accept"})
    rec = await pipeline.submit(buy("s-drop", price_at(await mid(sim_admin), "1.02")))
    states = [e.state for e in pipeline.journal.history(rec.client_order_id)]
    assert OrderState.UNKNOWN in states and rec.state is OrderState.VERIFIED, states
    assert len(await sim_orders(sim_admin)) == 1 and rec.attempts == 1


async def test_a_hung_placement_that_never_landed_is_resubmitted_once_absent(make_pipeline, sim_admin) -> None:
    pipeline = make_pipeline()
    await sim_admin.post("/_sim/faults/script", json={"endpoint": "orders_add", "kind": "error_503"})
    rec = await pipeline.submit(buy("s-503", price_at(await mid(sim_admin), "1.02")))
    assert rec.state is OrderState.VERIFIED and rec.attempts == 2
    assert len(await sim_orders(sim_admin)) == 1


async def test_unresolvable_lookup_is_put_aside_and_alerted(make_pipeline, sim_admin) -> None:
    alerts: list[tuple[str, str]] = []
    pipeline = make_pipeline(lookup_attempts=2, alert=lambda level, msg, details: alerts.append((level, msg)))
    tx = await pipeline.create_transaction(buy("s-lost", price_at(await mid(sim_admin), "0.95")))
    # every endpoint but placement answers 500; the placement lands and its response is dropped
    await sim_admin.put("/_sim/faults", json={"endpoints": {"*": {"error_500": 1.0}, "orders_add": {}}})
    await sim_admin.post("/_sim/faults/script", json={"endpoint": "orders_add", "kind": "drop_after_accept"})
    rec = await pipeline.execute_transaction(tx)
    assert rec.state is OrderState.UNKNOWN and rec.unresolved
    assert alerts and alerts[0][0] == "critical" and rec.client_order_id in alerts[0][1]
    await sim_admin.put("/_sim/faults", json={})
    # once the exchange answers again, execution resumes from the journal: found, not resubmitted
    again = await pipeline.execute_transaction(rec)
    assert again.state in (OrderState.ACKED, OrderState.VERIFIED) and again.attempts == 1
    assert len(await sim_orders(sim_admin)) == 1


async def test_a_rate_limited_lookup_waits_out_the_limit_instead_of_going_unresolved(make_pipeline, sim_admin,
                                                                                   fast_forward) -> None:
    """The placement's response is lost, then the look-up answers 429
    (backOff 3 s) more times than ``lookup_attempts`` allows failures: the rate limit is waited out, not
    counted as failures, and the order is found and verified with no critical alert."""
    alerts: list[tuple[str, str]] = []
    time = fast_forward  # the three 3 s back-offs are asked for, not waited out
    pipeline = make_pipeline(lookup_attempts=2, time=time,
                             alert=lambda level, msg, details: alerts.append((level, msg)))
    # backOff 3 s: longer than the adapter waits out by itself, so the pipeline sees each 429
    await sim_admin.put("/_sim/faults", json={"back_off": 3})
    await sim_admin.post("/_sim/faults/script", json={"endpoint": "orders_add", "kind": "drop_after_accept"})
    await sim_admin.post("/_sim/faults/script", json={"endpoint": "orders_status", "kind": "error_429", "count": 3})
    rec = await pipeline.submit(buy("s-429", price_at(await mid(sim_admin), "1.02")))
    assert rec.state is OrderState.VERIFIED and not rec.unresolved, rec
    assert alerts == [] and rec.attempts == 1 and len(await sim_orders(sim_admin)) == 1
    assert len([w for w in time.waits if w >= 1]) >= 3, time.waits
    # with no budget for waiting, the same storm is a failure and the order is put aside
    tight = make_pipeline(db="tight.duckdb", lookup_attempts=2, rate_limit_wait=Duration(0), time=time,
                          alert=lambda level, msg, details: alerts.append((level, msg)))
    await sim_admin.post("/_sim/faults/script", json={"endpoint": "orders_add", "kind": "drop_after_accept"})
    await sim_admin.post("/_sim/faults/script", json={"endpoint": "orders_status", "kind": "error_429", "count": 8})
    lost = await tight.submit(buy("s-429b", price_at(await mid(sim_admin), "1.02")))
    assert lost.unresolved and alerts and alerts[0][0] == "critical"


LOST_RUNS = int(os.environ.get("HRKERNEL_LOST_RESPONSE_RUNS", "40"))


async def test_lost_responses_randomized_never_double_or_lose(make_pipeline, sim_admin) -> None:
    """Placements dropped after acceptance, hung or failed at random (seeded): every signal has
    exactly one order on the exchange and every exchange fill is in the ledger exactly once.
    ``HRKERNEL_LOST_RESPONSE_RUNS=1000`` runs the long version."""
    rng = random.Random(5)
    pipeline = make_pipeline(submit_attempts=5, lookup_attempts=20)
    await sim_admin.put("/_sim/faults", json={"seed": 5, "endpoints": {"orders_add": {
        "drop_after_accept": 0.3, "hang": 0.05, "error_503": 0.1}}})
    records = []
    for i in range(LOST_RUNS):
        m = await mid(sim_admin)
        side = rng.choice([Side.BUY, Side.SELL])
        factor = "1.02" if side is Side.BUY else "0.98"  # crossing: fills at once
        signal = Signal(signal_id=f"lost-{i}", exchange="nobitex", symbol="BTCIRT", side=side, type=OrderType.LIMIT,
                        amount=Decimal("0.0001"), price=price_at(m, factor))
        records.append(await pipeline.submit(signal))
    await sim_admin.put("/_sim/faults", json={})
    orders = await sim_orders(sim_admin)
    by_cid: dict[str, int] = {}
    for o in orders:
        by_cid[o["clientOrderId"]] = by_cid.get(o["clientOrderId"], 0) + 1
    assert all(n == 1 for n in by_cid.values()), {k: n for k, n in by_cid.items() if n > 1}
    assert set(by_cid) <= {r.client_order_id for r in records}
    # resting orders: verify again now faults are off; every trade on the exchange is posted once
    for rec in records:
        if not rec.is_terminal:
            await pipeline.execute_transaction(rec)
    trades = await sim_trades(sim_admin)
    assert all(pipeline.ledger.has_fill("nobitex", str(t["id"])) for t in trades)
    fills = [t for t in pipeline.ledger.transactions(100_000) if t.kind == "fill"]
    assert len(fills) == len(trades)
    assert pipeline.stats["unknown"] > 0
    assert pipeline.ledger.unbalanced_transactions() == []


async def test_fills_go_through_the_group_commit_writer_when_given(make_pipeline, sim_admin) -> None:
    import anyio

    from hrkernel.ledger import LedgerWriter

    pipeline = make_pipeline()
    pipeline.writer = LedgerWriter(pipeline.ledger)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.writer.run)
        m = await mid(sim_admin)
        with anyio.fail_after(20):
            records = []
            async with anyio.create_task_group() as orders:
                async def one(i: int) -> None:
                    records.append(await pipeline.submit(buy(f"w{i}", price_at(m, "1.02"), amount="0.0001")))
                for i in range(5):
                    orders.start_soon(one, i)
        tg.cancel_scope.cancel()
    assert [r.state for r in records] == [OrderState.VERIFIED] * 5
    trades = await sim_trades(sim_admin)
    assert all(pipeline.ledger.has_fill("nobitex", str(t["id"])) for t in trades)
    assert 1 <= pipeline.writer.batches <= len(trades)


async def test_a_new_leader_adopting_a_predecessors_filled_order_does_not_count_its_fills_twice(
        make_pipeline, sim_admin, exchange) -> None:
    """Instance A places and fills an order; instance B (its own journal and ledger, as after a
    failover without a replica) opens its ledger from the exchange's balances, which already hold
    that fill, then adopts A's order by client order id: the fill is not posted again. An order B
    submits itself after its opening is posted in full."""
    from hrkernel.orders.reconcile import StateReconciliation

    a = make_pipeline(db="a.duckdb")
    placed = await a.submit(buy("s-before", price_at(await mid(sim_admin), "1.02")))
    assert placed.state is OrderState.VERIFIED
    b = make_pipeline(db="b.duckdb", seed=False)
    await StateReconciliation(b).reconcile_all()  # B's opening balance: the exchange's, fill included

    async def truth() -> dict[str, Decimal]:
        return {x.currency: x.total for x in await exchange.balances() if x.total}

    assert b.ledger.venue_balances("nobitex") == await truth()
    adopted = await b.journal.create(msgspec.structs.replace(placed, state=OrderState.PREPARED, exchange_order_id=None))
    adopted = await b.journal.record(adopted.client_order_id, OrderState.UNKNOWN, reason="accepted before this tenure")
    rec = await b.execute_transaction(adopted)
    assert rec.state is OrderState.VERIFIED and rec.exchange_order_id == placed.exchange_order_id
    assert b.ledger.venue_balances("nobitex") == await truth()  # was off by the fill, counted twice
    own = await b.submit(buy("s-after", price_at(await mid(sim_admin), "1.02")))
    assert own.state is OrderState.VERIFIED and b.ledger.has_fill("nobitex", str((await sim_trades(sim_admin))[-1]["id"]))
    assert b.ledger.venue_balances("nobitex") == await truth()
    assert len(await sim_orders(sim_admin)) == 2


class SwitchableLease:
    """A lease this test can lose, and whose fence check can fail."""

    def __init__(self) -> None:
        self.token: int | None = 5
        self.margin = True
        self.fence_ok = True
        self.fence_checks = 0

    def holds_with_margin(self) -> bool:
        return self.margin

    async def fence_check(self) -> bool:
        self.fence_checks += 1
        return self.fence_ok


async def test_an_order_sent_at_once_is_journaled_prepared_and_submitting_in_one_commit(
    make_pipeline, sim_admin
) -> None:
    lease = SwitchableLease()
    pipeline = make_pipeline(lease=lease)
    m = await mid(sim_admin)
    with structlog.testing.capture_logs() as logs:
        rec = await pipeline.submit(buy("f-1", price_at(m, "1.02")))
    assert rec.state is OrderState.VERIFIED and lease.fence_checks == 1
    assert [e["signal_id"] for e in logs if e["event"] == "order_prepared"] == ["f-1"]  # once, after the send
    history = pipeline.journal.history(rec.client_order_id)
    assert [(e.state, e.attempt, e.fencing_token) for e in history[:2]] == [
        (OrderState.PREPARED, 0, None), (OrderState.SUBMITTING, 1, 5)]
    assert history[0].at == history[1].at  # one commit, made before the request left
    assert len(await sim_orders(sim_admin)) == 1

    # A fence check that fails at prepare: journaled PREPARED alone, nothing sent.
    lease.fence_ok = False
    tx = await pipeline.create_transaction(buy("f-2", price_at(m, "1.02")), submit=True)
    assert tx.state is OrderState.PREPARED
    assert [e.state for e in pipeline.journal.history(tx.client_order_id)] == [OrderState.PREPARED]
    with pytest.raises(NotLeaderError):
        await pipeline.execute_transaction(tx)
    assert len(await sim_orders(sim_admin)) == 1


async def test_an_order_that_waited_after_its_one_commit_is_journaled_submitting_again_or_put_back(
    make_pipeline, sim_admin
) -> None:
    """SUBMITTING's time is what the visibility window counts from, so an order that did not
    leave at once (it waited for an execution slot) is journaled SUBMITTING again, after a fresh
    lease check, right before it leaves; one whose instance lost the lease meanwhile goes back
    to PREPARED (never sent: recovery fails it as stale rather than placing it late)."""
    import time

    from hrkernel.orders.pipeline import SEND_AT_ONCE

    lease = SwitchableLease()
    skew = [0.0]
    pipeline = make_pipeline(lease=lease)
    pipeline._clock = lambda: time.monotonic() + skew[0]
    m = await mid(sim_admin)
    with structlog.testing.capture_logs() as logs:
        waited = await pipeline.create_transaction(buy("w-1", price_at(m, "1.02")), submit=True)
        assert waited.state is OrderState.SUBMITTING and lease.fence_checks == 1
        skew[0] += SEND_AT_ONCE * 2
        rec = await pipeline.execute_transaction(waited)
    assert rec.state is OrderState.VERIFIED and lease.fence_checks == 2
    # The order_prepared line of an order that waited is written too (the chaos runner's "every
    # accepted signal reached the order path" counts these lines): once.
    assert [e["signal_id"] for e in logs if e["event"] == "order_prepared"] == ["w-1"]
    history = pipeline.journal.history(rec.client_order_id)
    assert [(e.state, e.attempt) for e in history[:3]] == [
        (OrderState.PREPARED, 0), (OrderState.SUBMITTING, 1), (OrderState.SUBMITTING, 1)]
    assert history[2].at > history[1].at and "waited" in (history[2].reason or "")
    assert len(await sim_orders(sim_admin)) == 1

    lost = await pipeline.create_transaction(buy("w-2", price_at(m, "1.02")), submit=True)
    lease.margin = False
    with pytest.raises(NotLeaderError):
        await pipeline.execute_transaction(lost)
    back = pipeline.journal.get(lost.client_order_id)
    assert back is not None and (back.state, back.attempts) == (OrderState.PREPARED, 0)
    assert "lost the lease" in (back.reason or "")
    assert len(await sim_orders(sim_admin)) == 1


async def test_the_router_fuses_the_commit_only_when_an_execution_slot_is_free(make_pipeline, sim_admin) -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace

    import anyio

    from hrkernel.bus.events import SignalAction, SignalEvent
    from hrkernel.orders.routing import SignalRouter

    pipeline = make_pipeline()
    router = SignalRouter(bus=None, orders=SimpleNamespace(pipeline=pipeline), topic="signals",
                          exchanges=["nobitex"], max_concurrent=1)
    price = price_at(await mid(sim_admin), "1.02")

    class Delivery:
        def __init__(self, signal_id: str) -> None:
            self.event = SignalEvent(time=datetime.now(UTC), signal_id=signal_id, source="test", exchange="nobitex",
                                     symbol="BTCIRT", action=SignalAction.BUY, amount=Decimal("0.001"),
                                     order_type="limit", price=price, received_at=datetime.now(UTC))
            self.acked = anyio.Event()

        async def ack(self) -> None:
            self.acked.set()

    def history(signal_id: str) -> list[Any]:
        return pipeline.journal.history(client_order_id_for("nobitex", signal_id))

    busy = object()
    router._limiter.acquire_on_behalf_of_nowait(busy)  # every execution slot taken
    async with anyio.create_task_group() as tg:
        waiting = Delivery("r-wait")
        await router._handle(waiting, tg)
        await anyio.sleep(0.05)
        assert [e.state for e in history("r-wait")] == [OrderState.PREPARED]  # journaled, waiting, not sent
        assert await sim_orders(sim_admin) == []
        router._limiter.release_on_behalf_of(busy)
        with anyio.fail_after(10):
            await waiting.acked.wait()
        at_once = Delivery("r-free")
        await router._handle(at_once, tg)
        with anyio.fail_after(10):
            await at_once.acked.wait()
    two, one = history("r-wait"), history("r-free")
    assert [e.state for e in two[:2]] == [e.state for e in one[:2]] == [OrderState.PREPARED, OrderState.SUBMITTING]
    assert two[0].at < two[1].at and one[0].at == one[1].at
    assert two[-1].state is one[-1].state is OrderState.VERIFIED
    assert len(await sim_orders(sim_admin)) == 2 and router._limiter.borrowed_tokens == 0


async def test_a_placement_refused_by_the_client_side_limit_waits_for_its_slot_not_looked_up(
        sim, sim_admin, tmp_path) -> None:
    """The adapter's own limit (here 1 placement per 3 s) refuses the second order before anything
    is sent: the pipeline knows it did not land, waits for the slot and sends it as the same
    attempt: no UNKNOWN, no look-up, one order each on the exchange. With too small a budget it is
    FAILED as never sent, with nothing on the exchange."""
    import duckdb

    from hrkernel.ledger import Ledger
    from hrkernel.orders.journal import OrderJournal
    from hrkernel.orders.pipeline import TransactionVerificationPipeline
    from hrkernel_nobitex.config import EndpointLimit, NobitexConfig
    from hrkernel_nobitex.exchange import NobitexExchange

    from .conftest import BALANCES, SIM_TOKEN, fast_config

    config = NobitexConfig(token=SIM_TOKEN, base_url=sim.base_url, bot_name="orders-tests", rate_limit=True,
                           rate_limits={"place": EndpointLimit(requests=1, per=Duration(3.0))},
                           rate_limit_max_wait=Duration(0.2), retry_base_delay=Duration(0.01),
                           retry_max_delay=Duration(0.05))
    time = FastForward()  # the adapter's limiter and the pipeline share a clock that skips the 3 s waits
    async with NobitexExchange(config, instance_id="hr-orders-test", clock=time.clock, sleep=time.sleep) as limited:
        def pipeline(db: str, **overrides: Any) -> TransactionVerificationPipeline:
            con = duckdb.connect(str(tmp_path / db))
            ledger = Ledger(con)
            for ccy, amount in BALANCES.items():
                ledger.deposit("nobitex", ccy.upper(), Decimal(amount), reason="opening balance")
            journal = OrderJournal(tmp_path / db.replace(".duckdb", ".journal.sqlite"))
            return TransactionVerificationPipeline(exchanges={"nobitex": limited}, journal=journal,
                                                   ledger=ledger, config=fast_config(**overrides),
                                                   clock=time.clock, sleep=time.sleep)

        p = pipeline("a.duckdb")
        price = price_at(await mid(sim_admin), "1.02")
        first = await p.submit(buy("s-first", price))
        second = await p.submit(buy("s-second", price))
        for rec in (first, second):
            states = [e.state for e in p.journal.history(rec.client_order_id)]
            assert rec.state is OrderState.VERIFIED and OrderState.UNKNOWN not in states, states
        assert second.attempts == 1 and len(await sim_orders(sim_admin)) == 2

        hasty = pipeline("b.duckdb", rate_limit_wait=Duration(0.5))
        time.advance(3.1)  # the slot the second order used is free again
        assert (await hasty.submit(buy("s-third", price))).state is OrderState.VERIFIED
        never = await hasty.submit(buy("s-fourth", price))
        assert never.state is OrderState.FAILED and "never sent" in (never.reason or ""), never
        assert len(await sim_orders(sim_admin)) == 3


async def test_a_prepared_order_from_another_process_is_looked_up_before_it_is_sent(
        make_pipeline, sim_admin, exchange) -> None:
    """A replica (or a restart) holds an order PREPARED whose placement another process made and
    never journaled (its SUBMITTING lost with it). The exchange keeps client order ids unique only
    among OPEN orders, so once that order filled a blind send would be accepted a second time: the
    order is looked up first, found, and verified — one order on the exchange."""
    first = make_pipeline(db="shared.duckdb")
    tx = await first.create_transaction(buy("s-elsewhere", price_at(await mid(sim_admin), "1.02")))
    assert tx.state is OrderState.PREPARED
    placed = await exchange.place_order(OrderRequest(symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT,
                                                     amount=tx.amount, price=tx.price,
                                                     client_order_id=tx.client_order_id))
    assert placed.filled_amount == tx.amount  # filled: no longer "open", its id may be reused
    first.journal.close()
    first.ledger.connection.close()
    second = make_pipeline(db="shared.duckdb")  # the next process over the same journal
    rec = await second.execute_transaction(tx)
    assert rec.state is OrderState.VERIFIED and rec.exchange_order_id == placed.exchange_id, rec
    assert [o["clientOrderId"] for o in await sim_orders(sim_admin)] == [tx.client_order_id]
    # this process's own PREPARED order is sent at once (no look-up, no visibility wait)
    own = await second.create_transaction(buy("s-own", price_at(await mid(sim_admin), "1.02")))
    sent = await second.execute_transaction(own)
    assert [e.state for e in second.journal.history(own.client_order_id)][:3] == [
        OrderState.PREPARED, OrderState.SUBMITTING, OrderState.ACKED] and sent.state is OrderState.VERIFIED
