"""The RabbitMQ bus (aio-pika): durable topic exchange, durable queue per group, persistent
messages, publisher confirms, automatic reconnection (``connect_robust``).

Each (topic, group) is a durable queue ``<exchange>.<topic>.<group>`` bound to the exchange with
routing key ``topic``; consumers of one group share the queue. An unacknowledged message goes
back to the queue when its consumer's channel closes (crash, restart). The broker drops a message
no queue is bound for, so a group that must not miss what is published before it first
subscribes (the order path's signals) is named with :meth:`RabbitBus.require_group`: its queue is
declared on connect, before this bus publishes anything.

While the broker cannot take a message (down, connection being re-established, no confirm
within ``publish_timeout``) the topic's ``on_unavailable`` policy applies exactly as on the
Redis bus (:mod:`hrkernel.bus.buffer`): ``buffer`` keeps it locally and sends it in order once
the broker is back, ``fail`` raises :class:`BusUnavailable`.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import aio_pika
import anyio
import msgspec
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from hrkernel.bus.base import Bus, Delivery, Subscription
from hrkernel.bus.buffer import PublishBuffer
from hrkernel.bus.config import RabbitBusSettings, TopicPolicy
from hrkernel.bus.errors import BusClosed
from hrkernel.bus.events import Event, decode, encode
from hrkernel.logging import get_logger

log = get_logger("hrkernel.bus.rabbitmq")


class _Down(Exception):
    """The broker did not take one message (any aio-pika connection, channel or timeout error)."""


class RabbitBus(Bus):
    backend = "rabbitmq"

    def __init__(self, settings: RabbitBusSettings | None = None, policy: Callable[[str], TopicPolicy] | None = None) -> None:
        self.settings = settings or RabbitBusSettings()
        self._policy = policy or (lambda topic: TopicPolicy())
        self._connection: AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractRobustChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._lock = anyio.Lock()
        self._closed = False
        self._required: set[tuple[str, str]] = set()
        """(topic, group) whose queue must exist before anything is published (require_group)."""
        self._declared: set[tuple[str, str]] = set()
        self.published = 0
        self.buffer = PublishBuffer(self.backend, self._policy, self.settings.buffer_size, log)

    async def connect(self) -> None:
        await self._ensure()

    async def _ensure(self) -> aio_pika.abc.AbstractExchange:
        if self._closed:
            raise BusClosed("the rabbitmq bus is closed")
        async with self._lock:
            if self._exchange is None:
                self._connection = await aio_pika.connect_robust(
                    self.settings.url, timeout=5, client_properties={"connection_name": self.settings.connection_name}
                )
                self._channel = await self._connection.channel(publisher_confirms=True)  # type: ignore[assignment]
                assert self._channel is not None
                self._exchange = await self._channel.declare_exchange(
                    self.settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
                )
                self._declared = set()
            if len(self._declared) < len(self._required):
                assert self._channel is not None
                for topic, group in sorted(self._required - self._declared):
                    queue = await self._channel.declare_queue(self.queue_name(topic, group), durable=True)
                    await queue.bind(self._exchange, routing_key=topic)
                    self._declared.add((topic, group))
            return self._exchange

    def queue_name(self, topic: str, group: str) -> str:
        return f"{self.settings.exchange}.{topic}.{group}"

    def require_group(self, topic: str, group: str) -> None:
        """Declare (on connect, or before the next publish) ``group``'s durable queue for ``topic``,
        so the broker keeps what is published before the group's first consumer subscribes."""
        self._required.add((topic, group))

    async def _send(self, topic: str, payload: bytes) -> None:
        message = aio_pika.Message(payload, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, content_type="application/json")
        try:
            with anyio.fail_after(float(self.settings.publish_timeout)):
                exchange = await self._ensure()
                # With publisher confirms, publish returns once the broker has taken the message.
                await exchange.publish(message, routing_key=topic)
        except BusClosed:
            raise
        except Exception as exc:  # aio-pika raises many connection/channel types
            raise _Down(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc

    async def publish(self, topic: str, event: Event) -> None:
        if await self.buffer.publish(topic, encode(event), self._send, (_Down,)):
            self.published += 1

    async def probe(self) -> None:
        """Raises when the broker cannot be reached (``connect`` does the same)."""
        await self._ensure()

    async def flush_buffers(self) -> int:
        """Send what was buffered while the broker was down; returns how many are still waiting."""
        return await self.buffer.flush_all(self._send, (_Down,))

    def subscribe(self, topic: str, group: str, *, consumer: str | None = None) -> Subscription:
        return _RabbitSubscription(self, topic, group)

    async def aclose(self) -> None:
        self._closed = True
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = None
        self._exchange = None

    def stats(self) -> dict[str, Any]:
        return {"backend": self.backend, "published": self.published, "buffered_now": self.buffer.waiting(),
                "buffered_total": self.buffer.buffered, "flushed": self.buffer.flushed}


class _RabbitSubscription(Subscription):
    def __init__(self, bus: RabbitBus, topic: str, group: str) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._iter: Any = None
        self._pending: collections.deque[Delivery] = collections.deque()

    async def _open(self) -> None:
        exchange = await self.bus._ensure()
        assert self.bus._connection is not None
        self._channel = await self.bus._connection.channel()
        await self._channel.set_qos(prefetch_count=self.bus.settings.prefetch)
        queue = await self._channel.declare_queue(self.bus.queue_name(self.topic, self.group), durable=True)
        await queue.bind(exchange, routing_key=self.topic)
        self._iter = queue.iterator()
        await self._iter.__aenter__()

    async def __anext__(self) -> Delivery:
        if self._iter is None:
            await self._open()
        while True:
            try:
                message: AbstractIncomingMessage = await self._iter.__anext__()
            except StopAsyncIteration:
                raise
            try:
                event = decode(message.body)
            except msgspec.DecodeError as exc:
                log.error("bus_message_malformed", topic=self.topic, error=str(exc))
                await message.reject(requeue=False)
                continue

            async def ack(m: AbstractIncomingMessage = message) -> None:
                await m.ack()

            return Delivery(self.topic, event, str(message.delivery_tag), ack, bool(message.redelivered))

    async def aclose(self) -> None:
        if self._iter is not None:
            try:
                await self._iter.close()
            except Exception:  # noqa: BLE001 - the channel may already be gone
                pass
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        self._iter = self._channel = None
