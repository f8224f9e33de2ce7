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


def _close_connection(connection_name: str) -> int:
    """Have the broker drop our connection (as a broker restart or a network cut would)."""
    import subprocess

    listed = subprocess.run(["rabbitmqctl", "list_connections", "name", "client_properties", "--silent"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    closed = 0
    for line in listed.splitlines():
        name, _, props = line.partition("\t")
        if f'{{"connection_name","{connection_name}"}}' in props:
            done = subprocess.run(["rabbitmqctl", "close_connection", name, "hrkernel test"], capture_output=True,
                                  text=True, timeout=60)
            # This rabbitmqctl closes the connection and still exits 69 with an empty "Error:".
            assert "Closing connection" in done.stdout, (done.returncode, done.stdout, done.stderr)
            closed += 1
    return closed


@pytest.mark.anyio
@pytest.mark.skipif(__import__("shutil").which("rabbitmqctl") is None, reason="needs rabbitmqctl to drop a connection")
async def test_bus_reconnects_after_the_broker_drops_the_connection() -> None:
    exchange = f"hrtest-{uuid.uuid4().hex[:8]}"
    name = f"hrkernel-test-{uuid.uuid4().hex[:8]}"
    bus = RabbitBus(RabbitBusSettings(exchange=exchange, connection_name=name))
    try:
        sub = bus.subscribe("health", "g")
        with anyio.move_on_after(0.3):
            await sub.__anext__()  # declares the queue
        await bus.publish("health", HealthEvent(time=NOW, component="before", status="ok"))
        assert (await sub.__anext__()).event.component == "before"  # type: ignore[attr-defined]
        assert await anyio.to_thread.run_sync(_close_connection, name) == 1
        got = None
        with anyio.fail_after(30):
            while got is None:
                try:
                    await bus.publish("health", HealthEvent(time=NOW, component="after", status="ok"))
                except Exception:  # noqa: BLE001 - the robust connection is still coming back
                    await anyio.sleep(0.2)
                    continue
                with anyio.move_on_after(2):
                    d = await sub.__anext__()
                    got = d.event.component  # type: ignore[attr-defined]
                    await d.ack()
        assert got == "after"
        await sub.aclose()
    finally:
        await _cleanup(bus, exchange, [f"{exchange}.health.g"])
        await bus.aclose()


@pytest.mark.anyio
async def test_unreachable_broker_raises_bus_unavailable_naming_the_topic() -> None:
    from hrkernel.bus.config import BusSection
    from hrkernel.bus.errors import BusUnavailable

    bus = RabbitBus(RabbitBusSettings(url="amqp://guest:guest@127.0.0.1:1/"), BusSection().policy)
    with pytest.raises(BusUnavailable, match="signals"):  # a critical topic: policy "fail"
        await bus.publish("signals", HealthEvent(time=NOW, component="c", status="ok"))
    await bus.publish("health", HealthEvent(time=NOW, component="c", status="ok"))  # policy "buffer"
    assert bus.stats()["buffered_now"] == 1
    await bus.aclose()


@pytest.mark.anyio
async def test_a_broker_cut_buffers_buffer_topics_fails_critical_ones_and_flushes_in_order() -> None:
    """The same policy semantics as the Redis bus, with a real cut: a TCP proxy on loopback
    between the bus and 127.0.0.1:5672 resets every connection (the system broker keeps running)."""
    from hrkernel.bus.config import BusSection
    from hrkernel.bus.errors import BusUnavailable
    from hrkernel.chaos.netcut import TcpProxy

    proxy = TcpProxy(5672)
    port = proxy.start()
    exchange = f"hrtest-{uuid.uuid4().hex[:8]}"
    bus = RabbitBus(RabbitBusSettings(url=f"amqp://guest:guest@127.0.0.1:{port}/", exchange=exchange,
                                      publish_timeout=1.0), BusSection().policy)
    direct = RabbitBus(RabbitBusSettings(exchange=exchange))
    try:
        sub = direct.subscribe("health", "cut")
        with anyio.move_on_after(0.3):  # declares the durable queue before anything is published
            await sub.__anext__()
        await bus.publish("health", HealthEvent(time=NOW, component="before", status="healthy"))
        await anyio.to_thread.run_sync(proxy.cut, "rst")
        for n in range(10):
            await bus.publish("health", HealthEvent(time=NOW, component=f"cut{n}", status="healthy"))
        assert bus.stats()["buffered_now"] == 10
        with pytest.raises(BusUnavailable, match="signals"):
            await bus.publish("signals", HealthEvent(time=NOW, component="x", status="healthy"))
        await anyio.to_thread.run_sync(proxy.restore)
        with anyio.fail_after(30):
            while await bus.flush_buffers():
                await anyio.sleep(0.2)
        await bus.publish("health", HealthEvent(time=NOW, component="after", status="healthy"))
        got: list[str] = []
        with anyio.fail_after(15):
            while len(got) < 12:
                d = await sub.__anext__()
                got.append(d.event.component)  # type: ignore[attr-defined]
                await d.ack()
        assert got == ["before", *(f"cut{n}" for n in range(10)), "after"]
        assert bus.stats()["flushed"] == 10
        await sub.aclose()
    finally:
        await _cleanup(direct, exchange, [f"{exchange}.health.cut"])
        await direct.aclose()
        await bus.aclose()
        await anyio.to_thread.run_sync(proxy.close)
