"""Another process follows the kernel over the bus: a consumer process subscribed to ``orders``,
``fills``, ``ledger``, ``alerts`` and ``health`` (Redis Streams on a private redis-server; RabbitMQ on the system broker)
sees an order's whole life while a real `hrkernel run` trades on its embedded simulator."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

SECRET = "wh-secret-events"

CONSUMER = r'''
import sys, anyio, msgspec
from hrkernel.bus.config import BusSection
from hrkernel.bus.component import make_bus
from hrkernel.bus.events import encode

TOPICS = ("orders", "fills", "ledger", "alerts", "health")

async def declare_rabbit(section):
    # The queues must exist before the kernel publishes (RabbitMQ drops unrouted messages).
    import aio_pika
    connection = await aio_pika.connect(section.rabbitmq.url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(section.rabbitmq.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    for topic in TOPICS:
        queue = await channel.declare_queue(f"{section.rabbitmq.exchange}.{topic}.observer", durable=True)
        await queue.bind(exchange, routing_key=topic)
    await connection.close()

async def main(raw):
    section = msgspec.json.decode(raw, type=BusSection)
    if section.backend == "rabbitmq":
        await declare_rabbit(section)
    bus = make_bus(section, "observer")
    await bus.connect()

    async def pump(topic):
        async with bus.subscribe(topic, "observer") as sub:
            async for d in sub:
                print(topic, encode(d.event).decode(), flush=True)
                await d.ack()

    async with anyio.create_task_group() as tg:
        for topic in TOPICS:
            tg.start_soon(pump, topic)
        print("READY", flush=True)

anyio.run(main, sys.argv[1])
'''


def _rabbit_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=0.5):
            return True
    except OSError:
        return False


class Consumer:
    def __init__(self, script: Path, section: dict[str, Any]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(script), json.dumps(section)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.events: list[tuple[str, dict[str, Any]]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_ready(self, timeout: float = 20) -> None:
        try:
            assert self.lines.get(timeout=timeout) == "READY"
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"the consumer did not start: {self.proc.communicate()[1][-2000:]}") from None

    def until(self, predicate: Callable[[list[tuple[str, dict[str, Any]]]], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"not seen; events so far: {self.events}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            topic, _, body = line.partition(" ")
            self.events.append((topic, json.loads(body)))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def _section(backend: str, redis_url: str | None) -> dict[str, Any]:
    if backend == "redis":
        return {"backend": "redis", "redis": {"url": redis_url, "prefix": f"ev{uuid.uuid4().hex[:6]}:"}}
    return {"backend": "rabbitmq", "rabbitmq": {"exchange": f"hrtest-ev-{uuid.uuid4().hex[:8]}"}}


def _toml(section: dict[str, Any]) -> str:
    lines = ["[bus]", f'backend = "{section["backend"]}"', f'[bus.{section["backend"]}]']
    lines += [f"{k} = {json.dumps(v)}" for k, v in section[section["backend"]].items()]
    return "\n".join(lines)


@pytest.mark.parametrize("backend", ["redis", "rabbitmq"])
def test_another_process_sees_an_orders_whole_life_on_the_bus(
    backend: str, request: pytest.FixtureRequest, kernel_process: Callable[..., Any], tmp_path: Path,
    unused_port: Callable[[], int],
) -> None:
    if backend == "rabbitmq" and not _rabbit_up():
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672")
    redis_url = request.getfixturevalue("redis_server").url if backend == "redis" else None
    section = _section(backend, redis_url)
    script = tmp_path / "observer.py"
    script.write_text(CONSUMER)
    consumer = Consumer(script, section)
    try:
        consumer.wait_ready()
        web, sim = unused_port(), unused_port()
        config = tmp_path / "hr.toml"
        config.write_text(f"""
[kernel]
data_dir = "{tmp_path / 'data'}"
[dashboard]
port = {web}
[webhook]
enabled = true
secret = "{SECRET}"
exchange = "paper"
[exchanges.paper]
type = "sim"
[exchanges.paper.simulator]
port = {sim}
{_toml(section)}
""")
        kernel = kernel_process(config, cwd=tmp_path)
        kernel.wait_for("orders_trading_enabled", timeout=30)
        alert = {"secret": SECRET, "ticker": "BTCIRT", "action": "buy", "amount": "0.001", "id": "ev-1"}
        assert httpx.post(f"http://127.0.0.1:{web}/webhooks/tradingview", json=alert, timeout=5).status_code == 200

        def states(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
            return [e["state"] for t, e in events if t == "orders" and e.get("signal_id", "").endswith("ev-1")]

        consumer.until(lambda ev: "VERIFIED" in states(ev))
        life = states(consumer.events)
        assert life[0] in ("PREPARED", "SUBMITTING") and "ACKED" in life and life[-1] == "VERIFIED", life
        assert life.index("ACKED") < life.index("VERIFIED")
        order = next(e for t, e in consumer.events if t == "orders" and e["state"] == "VERIFIED")
        assert order["kind"] == "order" and order["v"] == 1 and order["exchange"] == "paper"
        coid = order["client_order_id"]
        consumer.until(lambda ev: any(t == "fills" and e["client_order_id"] == coid for t, e in ev))
        fills = [e for t, e in consumer.events if t == "fills" and e["client_order_id"] == coid]
        assert sum(float(f["amount"]) for f in fills) == pytest.approx(0.001) and fills[0]["side"] == "buy"
        consumer.until(lambda ev: any(t == "ledger" and e["tx_kind"] == "fill" and e["order_ref"] == coid for t, e in ev))
        # Health changes (published by HA) reach the same consumer.
        consumer.until(lambda ev: any(t == "health" and e["kind"] == "health" and e["status"] for t, e in ev))
        # The opening balance the start-up reconciliation posted was published too.
        assert any(t == "ledger" and e["tx_kind"] != "fill" for t, e in consumer.events)
        seqs = [e["seq"] for t, e in consumer.events if t == "orders"]
        assert seqs == sorted(seqs)
        kernel.signal(signal.SIGTERM)
        assert kernel.wait(timeout=30) == 0
        # Alerts are published as well: the one the shutdown raises arrives before the bus closes.
        consumer.until(lambda ev: any(t == "alerts" and e["name"] == "kernel shutting down" for t, e in ev))
    finally:
        consumer.close()
