"""RabbitMQ bus against the real broker at 127.0.0.1:5672 (guest/guest)."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime

import anyio
import pytest

from hrkernel.bus.config import RabbitBusSettings
from hrkernel.bus.events import HealthEvent
from hrkernel.bus.rabbitmq import RabbitBus

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _rabbit_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=0.5):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _rabbit_up(), reason="RabbitMQ is not running on 127.0.0.1:5672")


async def _cleanup(bus: RabbitBus, exchange: str, queues: list[str]) -> None:
    assert bus._connection is not None
    channel = await bus._connection.channel()
    for q in queues:
        await channel.queue_delete(q)
    await channel.exchange_delete(exchange)
    await channel.close()


@pytest.mark.anyio
async def test_persistent_messages_survive_a_consumer_restart() -> None:
    exchange = f"hrtest-{uuid.uuid4().hex[:8]}"
    bus = RabbitBus(RabbitBusSettings(exchange=exchange, prefetch=10))
    try:
        first = bus.subscribe("health", "workers")
        # Declare the durable queue (first receive attempt) before publishing.
        with anyio.move_on_after(0.3):
            await first.__anext__()
        for n in range(5):
            await bus.publish("health", HealthEvent(time=NOW, component=f"c{n}", status="healthy"))
        d = await first.__anext__()
        assert d.event.component == "c0"  # type: ignore[attr-defined]
        await d.ack()
        d = await first.__anext__()  # taken but never acknowledged: the consumer "crashes"
        assert d.event.component == "c1"  # type: ignore[attr-defined]
        await first.aclose()

        second = RabbitBus(RabbitBusSettings(exchange=exchange, prefetch=10))
        sub = second.subscribe("health", "workers")
        got = []
        with anyio.fail_after(10):
            while len(got) < 4:
                d = await sub.__anext__()
                got.append((d.event.component, d.redelivered))  # type: ignore[attr-defined]
                await d.ack()
        assert sorted(c for c, _ in got) == ["c1", "c2", "c3", "c4"]
        assert dict(got)["c1"] is True  # handed out again, marked redelivered
        await sub.aclose()
        await second.aclose()
    finally:
        await _cleanup(bus, exchange, [f"{exchange}.health.workers"])
        await bus.aclose()


@pytest.mark.anyio
async def test_unreachable_broker_raises_bus_unavailable_naming_the_topic() -> None:
    from hrkernel.bus.errors import BusUnavailable

    bus = RabbitBus(RabbitBusSettings(url="amqp://guest:guest@127.0.0.1:1/"))
    with pytest.raises(BusUnavailable, match="signals"):
        await bus.publish("signals", HealthEvent(time=NOW, component="c", status="ok"))
    await bus.aclose()
