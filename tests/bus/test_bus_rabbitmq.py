"""RabbitMQ bus against the real broker at 127.0.0.1:5672 (guest/guest)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

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
    from hrkernel_chaos.netcut import TcpProxy

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


def _signal(n: int) -> Any:
    from hrkernel.bus.events import SignalAction, SignalEvent

    return SignalEvent(time=NOW, signal_id=f"s-{n}", source="test", exchange="paper", symbol="BTCIRT",
                       action=SignalAction.BUY, amount=Decimal("0.001"))


@pytest.mark.anyio
async def test_a_required_group_gets_what_was_published_before_it_first_subscribed() -> None:
    """The broker drops a message no queue is bound for: without require_group a signal published
    before the order path subscribes is gone (the regression: accepted, never ordered)."""
    exchange = f"hrtest-{uuid.uuid4().hex[:8]}"
    bus = RabbitBus(RabbitBusSettings(exchange=exchange))
    try:
        bus.require_group("signals", "orders")
        await bus.connect()
        await bus.publish("signals", _signal(1))
        bus.require_group("signals", "late")  # named after connect: declared before the next publish
        await bus.publish("signals", _signal(2))
        got: dict[str, list[str]] = {"orders": [], "late": []}
        for group, want in (("orders", 2), ("late", 1)):
            async with bus.subscribe("signals", group) as sub:
                with anyio.fail_after(10):
                    while len(got[group]) < want:
                        d = await sub.__anext__()
                        got[group].append(d.event.signal_id)  # type: ignore[attr-defined]
                        await d.ack()
        assert got == {"orders": ["s-1", "s-2"], "late": ["s-2"]}
    finally:
        await _cleanup(bus, exchange, [f"{exchange}.signals.orders", f"{exchange}.signals.late"])
        await bus.aclose()


@pytest.mark.anyio
async def test_the_assembled_kernel_keeps_signals_for_the_order_path_before_the_router_consumes(
    tmp_path: Path, unused_port: Callable[[], int],
) -> None:
    """A kernel built with ``[bus] backend = "rabbitmq"``: a signal published (by the intake) before
    the signal router first subscribes waits in the order path's queue."""
    from hrkernel.config import load_config_text
    from hrkernel.kernel import Kernel
    from hrkernel.orders.routing import GROUP
    from hrkernel.plugins import PluginHost

    exchange = f"hrtest-{uuid.uuid4().hex[:8]}"
    text = f"""
[kernel]
data_dir = "{tmp_path / 'data'}"
[webhook]
enabled = true
secret = "wh-secret-assembly"
exchange = "paper"
[exchanges.paper]
type = "sim"
[exchanges.paper.simulator]
port = {unused_port()}
[bus]
backend = "rabbitmq"
[bus.rabbitmq]
exchange = "{exchange}"
"""
    host = PluginHost(strict=True)
    host.discover()
    host.collect()
    kernel = Kernel.build(load_config_text(text, "test.toml"), host)
    bus = kernel.get("bus").bus
    try:
        await bus.connect()
        await bus.publish("signals", _signal(1))
        async with bus.subscribe("signals", GROUP) as sub:
            with anyio.fail_after(10):
                d = await sub.__anext__()
            assert d.event.signal_id == "s-1"
            await d.ack()
    finally:
        await _cleanup(bus, exchange, [f"{exchange}.signals.{GROUP}"])
        await bus.aclose()
