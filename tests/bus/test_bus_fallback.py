"""``[bus] fallback``: a kernel whose broker is down at start-up runs on the in-process bus
(``memory``) or refuses to start (``fail``), and moves to the broker when it answers.

The broker is the system RabbitMQ behind a TCP proxy on loopback (:mod:`hrkernel_chaos.netcut`)
that resets every connection while cut: the broker itself is never stopped."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from hrkernel.bus.config import RabbitBusSettings
from hrkernel.bus.events import HealthEvent
from hrkernel.bus.fallback import FallbackBus
from hrkernel.bus.memory import MemoryBus
from hrkernel.bus.rabbitmq import RabbitBus
from hrkernel.types import HealthStatus
from hrkernel_chaos.netcut import TcpProxy

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _rabbit_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=0.5):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _rabbit_up(), reason="RabbitMQ is not running on 127.0.0.1:5672")


@pytest.fixture
def cut_proxy() -> Iterator[TcpProxy]:
    """A proxy to 127.0.0.1:5672 that starts cut (every connection reset)."""
    proxy = TcpProxy(5672)
    proxy.start()
    proxy.cut("rst")
    yield proxy
    proxy.close()


@pytest.mark.anyio
async def test_the_fallback_runs_in_memory_then_moves_publishers_and_consumers_to_the_broker(cut_proxy: TcpProxy) -> None:
    exchange = f"hrtest-{uuid.uuid4().hex[:8]}"
    broker = RabbitBus(RabbitBusSettings(url=f"amqp://guest:guest@127.0.0.1:{cut_proxy.port}/", exchange=exchange,
                                         publish_timeout=1.0))
    bus = FallbackBus(broker, MemoryBus(), retry=0.2)
    await bus.connect()
    assert bus.backend == "memory (fallback for rabbitmq)"
    result = await bus.check()
    assert result.status is HealthStatus.DEGRADED and "rabbitmq unreachable" in result.detail
    got: list[str] = []
    try:
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async with bus.subscribe("health", "g") as sub:
                    async for d in sub:
                        got.append(d.event.component)  # type: ignore[attr-defined]
                        await d.ack()

            tg.start_soon(consume)
            tg.start_soon(bus.watch)
            await anyio.sleep(0.1)
            await bus.publish("health", HealthEvent(time=NOW, component="in-memory", status="healthy"))
            with anyio.fail_after(5):
                while got != ["in-memory"]:
                    await anyio.sleep(0.02)
            await anyio.to_thread.run_sync(cut_proxy.restore)
            with anyio.fail_after(15):
                while bus.active is not broker:
                    await anyio.sleep(0.05)
            assert (await bus.check()).status is HealthStatus.HEALTHY
            # The consumer re-subscribed on the broker: give it time to declare its queue.
            with anyio.fail_after(10):
                while broker.stats()["published"] == 0 or len(got) < 2:
                    await bus.publish("health", HealthEvent(time=NOW, component="on-broker", status="healthy"))
                    await anyio.sleep(0.3)
            tg.cancel_scope.cancel()
        assert got[0] == "in-memory" and got[1] == "on-broker"
        assert bus.stats()["backend"] == "rabbitmq" and bus.stats()["switches"] == 1
    finally:
        if broker._connection is not None:
            channel = await broker._connection.channel()
            await channel.queue_delete(f"{exchange}.health.g")
            await channel.exchange_delete(exchange)
            await channel.close()
        await bus.aclose()


def _config(tmp_path: Path, port: int, fallback: str) -> Path:
    config = tmp_path / "hr.toml"
    config.write_text(f"""
[kernel]
data_dir = "{tmp_path / 'data'}"
[dashboard]
enabled = false
[health]
default_interval = "300ms"
[health.checks.duckdb_writable]
enabled = false
[alerts]
group_wait = "100ms"
[bus]
backend = "rabbitmq"
fallback = "{fallback}"
fallback_retry = "300ms"
[bus.rabbitmq]
url = "amqp://guest:guest@127.0.0.1:{port}/"
exchange = "hrtest-fallback-{uuid.uuid4().hex[:8]}"
""")
    return config


def _wait_output(kernel: Any, text: str, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while text not in kernel.output():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not in the output:\n{kernel.output()[-3000:]}")
        time.sleep(0.1)


def test_a_kernel_with_fallback_memory_starts_alerts_and_switches_back(
    cut_proxy: TcpProxy, kernel_process: Callable[..., Any], tmp_path: Path
) -> None:
    kernel = kernel_process(_config(tmp_path, cut_proxy.port, "memory"), cwd=tmp_path)
    kernel.wait_for("ready", timeout=30)
    assert kernel.wait_for("bus_fallback_memory")["level"] == "error"
    kernel.wait_for("health_status", check="bus", status="degraded", timeout=10)
    # The degraded check raises an alert (the default console channel prints it).
    _wait_output(kernel, "bus is degraded: in-process fallback")
    cut_proxy.restore()
    kernel.wait_for("bus_broker_back", timeout=15)
    kernel.wait_for("health_status", check="bus", status="healthy", timeout=10)
    kernel.signal(2)
    assert kernel.wait(timeout=30) == 0


def test_a_kernel_with_fallback_fail_refuses_to_start_without_its_broker(
    cut_proxy: TcpProxy, kernel_process: Callable[..., Any], tmp_path: Path
) -> None:
    kernel = kernel_process(_config(tmp_path, cut_proxy.port, "fail"), cwd=tmp_path)
    assert kernel.wait(timeout=30) == 1
    assert "component 'bus' failed to start" in kernel.output()
    assert "Traceback" not in kernel.output()
