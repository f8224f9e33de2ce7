"""The Redis Streams bus: durable, acknowledged, shared by several kernel processes.

Publish is ``XADD <prefix><topic> MAXLEN ~ N``; each group is a consumer group read with
``XREADGROUP`` and acknowledged with ``XACK``. Before reading new entries a consumer runs
``XAUTOCLAIM`` so messages left pending by a consumer that died (SIGKILL, lost host) longer than
``claim_idle`` are taken over. Connection failures are retried with exponential backoff; while
Redis is down a topic either buffers publishes in a bounded local queue (flushed in order on
reconnect) or fails at once, per ``[bus.topics]``. A Redis that came back empty (restart without
persistence) gets its groups re-created.
"""

from __future__ import annotations

import collections
import os
import socket
from collections.abc import Callable
from typing import Any

import anyio
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hrkernel.bus.base import Bus, Delivery, Subscription
from hrkernel.bus.buffer import PublishBuffer
from hrkernel.bus.config import RedisBusSettings, TopicPolicy
from hrkernel.bus.errors import BusClosed
from hrkernel.bus.events import Event, decode, encode
from hrkernel.logging import get_logger

_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
log = get_logger("hrkernel.bus.redis")


class _Backoff:
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high, self.current = low, high, low

    def next(self) -> float:
        delay = self.current
        self.current = min(self.high, self.current * 2)
        return delay

    def reset(self) -> None:
        self.current = self.low


class RedisStreamsBus(Bus):
    backend = "redis"

    def __init__(
        self,
        settings: RedisBusSettings | None = None,
        policy: Callable[[str], TopicPolicy] | None = None,
        consumer_name: str | None = None,
    ) -> None:
        self.settings = settings or RedisBusSettings()
        self._policy = policy or (lambda topic: TopicPolicy())
        self.consumer_name = consumer_name or f"{socket.gethostname()}-{os.getpid()}"
        self._redis: aioredis.Redis | None = None
        self.buffer = PublishBuffer(self.backend, self._policy, self.settings.buffer_size, log)
        self._closed = False
        self.published = 0
        self.reclaimed = 0

    # ------------------------------------------------------------------ connection
    def _client(self) -> aioredis.Redis:
        if self._closed:
            raise BusClosed("the redis bus is closed")
        if self._redis is None:
            self._redis = aioredis.from_url(
                self.settings.url,
                socket_connect_timeout=2.0,
                socket_timeout=max(5.0, float(self.settings.block) + 5.0),
                health_check_interval=0,
            )
        return self._redis

    async def connect(self) -> None:
        self._client()

    async def aclose(self) -> None:
        self._closed = True
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def _key(self, topic: str) -> str:
        return self.settings.prefix + topic

    # ------------------------------------------------------------------ publish
    async def _xadd(self, topic: str, payload: bytes) -> None:
        await self._client().xadd(self._key(topic), {"e": payload}, maxlen=self.settings.maxlen, approximate=True)

    async def _send(self, topic: str, payload: bytes) -> None:
        await self._xadd(topic, payload)

    async def publish(self, topic: str, event: Event) -> None:
        if await self.buffer.publish(topic, encode(event), self._send, _DOWN):
            self.published += 1

    async def probe(self) -> None:
        """PING: raises when Redis cannot be reached (the bus itself connects lazily)."""
        with anyio.fail_after(3):
            await self._client().ping()

    async def flush_buffers(self) -> int:
        """Send what was buffered while Redis was down; returns how many are still waiting."""
        return await self.buffer.flush_all(self._send, _DOWN)

    # ------------------------------------------------------------------ consume
    def subscribe(self, topic: str, group: str, *, consumer: str | None = None) -> Subscription:
        return _RedisSubscription(self, topic, group, consumer or self.consumer_name)

    def stats(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "published": self.published,
            "buffered_now": self.buffer.waiting(),
            "buffered_total": self.buffer.buffered,
            "flushed": self.buffer.flushed,
            "reclaimed": self.reclaimed,
        }


class _RedisSubscription(Subscription):
    def __init__(self, bus: RedisStreamsBus, topic: str, group: str, consumer: str) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.consumer = consumer
        self.key = bus._key(topic)
        self._ready: collections.deque[Delivery] = collections.deque()
        self._group_made = False
        self._claim_cursor = "0-0"
        self._closed = False
        self._backoff = _Backoff(float(bus.settings.reconnect_min), float(bus.settings.reconnect_max))

    async def _ensure_group(self, client: aioredis.Redis) -> None:
        if self._group_made:
            return
        try:
            await client.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_made = True

    def _delivery(self, msg_id: bytes | str, fields: dict[Any, Any] | None, redelivered: bool) -> Delivery | None:
        mid = msg_id.decode() if isinstance(msg_id, bytes) else msg_id
        raw = (fields or {}).get(b"e") or (fields or {}).get("e")
        client = self.bus._client()

        async def ack() -> None:
            await client.xack(self.key, self.group, mid)

        if raw is None:
            return None
        try:
            event = decode(raw)
        except msgspec.DecodeError as exc:
            log.error("bus_message_malformed", topic=self.topic, id=mid, error=str(exc))
            return Delivery(self.topic, _Poison(), mid, ack)  # type: ignore[arg-type]
        return Delivery(self.topic, event, mid, ack, redelivered)

    async def _fill(self) -> None:
        client = self.bus._client()
        await self._ensure_group(client)
        settings = self.bus.settings
        # Take over what a dead consumer left pending.
        result = await client.xautoclaim(
            self.key, self.group, self.consumer, min_idle_time=int(float(settings.claim_idle) * 1000),
            start_id=self._claim_cursor, count=settings.batch,
        )
        self._claim_cursor = result[0].decode() if isinstance(result[0], bytes) else str(result[0])
        for msg_id, fields in result[1]:
            d = self._delivery(msg_id, fields, True)
            if d is not None:
                self.bus.reclaimed += 1
                self._ready.append(d)
        if self._ready:
            return
        streams: Any = await client.xreadgroup(
            self.group, self.consumer, {self.key: ">"}, count=settings.batch,
            block=max(1, int(float(settings.block) * 1000)),
        )
        for _key, entries in streams or []:
            for msg_id, fields in entries:
                d = self._delivery(msg_id, fields, False)
                if d is not None:
                    self._ready.append(d)

    async def __anext__(self) -> Delivery:
        while True:
            if self._closed or self.bus._closed:
                raise StopAsyncIteration
            while self._ready:
                d = self._ready.popleft()
                if isinstance(d.event, _Poison):
                    await d.ack()  # malformed: logged above, never handed out, never re-read
                    continue
                return d
            try:
                await self._fill()
                self._backoff.reset()
            except _DOWN as exc:
                delay = self._backoff.next()
                log.warning("bus_redis_consumer_retry", topic=self.topic, group=self.group, delay=delay, error=str(exc))
                await anyio.sleep(delay)
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis lost its data (restart): make the group again
                    self._group_made = False
                    self._claim_cursor = "0-0"
                    continue
                raise

    async def aclose(self) -> None:
        self._closed = True


class _Poison:
    """Stands in for an entry that does not decode."""
