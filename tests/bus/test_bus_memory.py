from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import anyio
import msgspec
import pytest

from hrkernel.bus.events import (
    AlertEvent,
    BookEvent,
    BookLevel,
    FillEvent,
    HealthEvent,
    LeadershipEvent,
    OrderEvent,
    SignalAction,
    SignalEvent,
    TickerEvent,
    TradeEvent,
    decode,
    encode,
)
from hrkernel.bus.memory import MemoryBus

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def sig(n: int) -> SignalEvent:
    return SignalEvent(time=NOW, signal_id=f"s{n}", source="test", exchange="nobitex", symbol="BTCIRT",
                       action=SignalAction.BUY, amount=Decimal("0.01"))


def test_every_event_kind_round_trips_through_bytes_with_exact_decimals() -> None:
    events = [
        BookEvent(time=NOW, source="a", symbol="BTCIRT", bids=[BookLevel(Decimal("1.10"), Decimal("2"))], asks=[], sequence=3),
        TradeEvent(time=NOW, source="a", symbol="BTCIRT", price=Decimal("0.1"), amount=Decimal("3"), side="buy"),
        TickerEvent(time=NOW, source="a", symbol="BTCIRT", last=Decimal("12345678901234567890.123456789")),
        sig(1),
        OrderEvent(time=NOW, exchange="x", symbol="BTCIRT", client_order_id="c", state="open", side="buy", amount=Decimal("1")),
        FillEvent(time=NOW, exchange="x", symbol="BTCIRT", trade_id="t", client_order_id=None, side="sell",
                  price=Decimal("1"), amount=Decimal("1"), fee=Decimal("0.001"), fee_currency="IRT"),
        HealthEvent(time=NOW, component="c", status="healthy"),
        AlertEvent(time=NOW, name="n", severity="critical", message="m", labels={"a": "b"}),
        LeadershipEvent(time=NOW, instance_id="hr-1", leader=True, fencing_token=7),
    ]
    for event in events:
        data = encode(event)
        assert b'"kind"' in data
        assert decode(data) == event
    assert b'"12345678901234567890.123456789"' in encode(events[2])


def test_malformed_bytes_raise_a_validation_error_naming_the_field() -> None:
    with pytest.raises(msgspec.ValidationError, match="signal_id"):
        decode(b'{"kind":"signal","time":"2026-01-01T00:00:00Z","source":"x","exchange":"n","symbol":"s","action":"buy"}')


@pytest.mark.anyio
async def test_each_group_gets_every_event_and_members_of_a_group_share_them() -> None:
    bus = MemoryBus(queue_size=100)
    a1 = bus.subscribe("signals", "A")
    a2 = bus.subscribe("signals", "A")
    b = bus.subscribe("signals", "B")
    for n in range(10):
        await bus.publish("signals", sig(n))
    got_b = [(await b.__anext__()).event.signal_id for _ in range(10)]  # type: ignore[attr-defined]
    assert got_b == [f"s{n}" for n in range(10)]
    got_a = [(await a1.__anext__()).event.signal_id for _ in range(5)] + [(await a2.__anext__()).event.signal_id for _ in range(5)]  # type: ignore[attr-defined]
    assert sorted(got_a) == sorted(got_b)
    await bus.aclose()


@pytest.mark.anyio
async def test_publish_waits_while_a_group_queue_is_full() -> None:
    bus = MemoryBus(queue_size=2)
    sub = bus.subscribe("t", "g")
    await bus.publish("t", sig(1))
    await bus.publish("t", sig(2))
    with anyio.move_on_after(0.1) as scope:
        await bus.publish("t", sig(3))
    assert scope.cancelled_caught, "a full queue must apply backpressure"
    d = await sub.__anext__()
    assert d.event.signal_id == "s1"  # type: ignore[attr-defined]
    with anyio.fail_after(1):
        await bus.publish("t", sig(4))


@pytest.mark.anyio
async def test_events_without_subscribers_are_dropped_and_counted() -> None:
    bus = MemoryBus()
    await bus.publish("nobody", sig(1))
    assert bus.stats()["dropped_no_subscriber"] == 1


@pytest.mark.anyio
async def test_run_handler_acks_after_the_handler_returns() -> None:
    bus = MemoryBus()
    seen: list[str] = []
    async with anyio.create_task_group() as tg:
        async def handler(event: object) -> None:
            seen.append(event.signal_id)  # type: ignore[attr-defined]
            if len(seen) == 3:
                tg.cancel_scope.cancel()
        tg.start_soon(bus.run_handler, "t", "g", handler)
        await anyio.sleep(0)
        for n in range(3):
            await bus.publish("t", sig(n))
    assert seen == ["s0", "s1", "s2"]


@pytest.mark.anyio
async def test_critical_topics_refuse_to_drop_events_nobody_subscribed_to() -> None:
    from hrkernel.bus.config import BusSection
    from hrkernel.bus.errors import BusUnavailable

    bus = MemoryBus(policy=BusSection().policy)
    with pytest.raises(BusUnavailable, match="signals"):
        await bus.publish("signals", sig(1))
    await bus.publish("health", sig(2))  # not critical: dropped and counted
    assert bus.stats()["dropped_no_subscriber"] == 1
    sub = bus.subscribe("signals", "orders")
    await bus.publish("signals", sig(3))
    assert (await sub.__anext__()).event.signal_id == "s3"  # type: ignore[attr-defined]
