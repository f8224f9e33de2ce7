"""The embedded bus: bounded in-process queues, backpressure, at-most-once, zero setup."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream as ObjectReceiveStream
from anyio.streams.memory import MemoryObjectSendStream as ObjectSendStream

from hrkernel.bus.base import Bus, Delivery, Subscription
from hrkernel.bus.config import TopicPolicy
from hrkernel.bus.errors import BusClosed, BusUnavailable
from hrkernel.bus.events import Event


class _MemorySubscription(Subscription):
    def __init__(self, topic: str, receive: ObjectReceiveStream[tuple[str, Event]]) -> None:
        self.topic = topic
        self._receive = receive

    async def __anext__(self) -> Delivery:
        try:
            msg_id, event = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        return Delivery(self.topic, event, msg_id)

    async def aclose(self) -> None:
        await self._receive.aclose()


class MemoryBus(Bus):
    """One bounded queue per (topic, group); members of a group share it.

    ``publish`` waits while any group's queue is full (backpressure instead of unbounded memory).
    Events published while a topic has no group are dropped (counted) — except on topics whose
    policy is ``fail`` (``signals``, ``orders``): there ``publish`` raises
    :class:`~hrkernel.bus.errors.BusUnavailable`, so a signal replayed at start-up before its
    consumer subscribed stays in the caller's hands instead of vanishing.
    """

    backend = "memory"

    def __init__(self, queue_size: int = 10_000, policy: Callable[[str], TopicPolicy] | None = None) -> None:
        self.queue_size = queue_size
        self._policy = policy
        self._groups: dict[str, dict[str, tuple[ObjectSendStream[tuple[str, Event]], ObjectReceiveStream[tuple[str, Event]]]]] = {}
        self._ids = itertools.count(1)
        self._closed = False
        self.published = 0
        self.dropped = 0

    async def connect(self) -> None:
        return None

    async def publish(self, topic: str, event: Event) -> None:
        if self._closed:
            raise BusClosed("the memory bus is closed")
        self.published += 1
        groups = self._groups.get(topic)
        if not groups:
            if self._policy is not None and self._policy(topic).on_unavailable == "fail":
                raise BusUnavailable(self.backend, topic, "no consumer has subscribed to this topic yet")
            self.dropped += 1
            return
        msg = (str(next(self._ids)), event)
        for send, _receive in list(groups.values()):
            await send.send(msg)

    def subscribe(self, topic: str, group: str, *, consumer: str | None = None) -> Subscription:
        if self._closed:
            raise BusClosed("the memory bus is closed")
        groups = self._groups.setdefault(topic, {})
        if group not in groups:
            size = self.queue_size if self.queue_size > 0 else math.inf
            groups[group] = anyio.create_memory_object_stream[tuple[str, Event]](size)
        return _MemorySubscription(topic, groups[group][1].clone())

    async def aclose(self) -> None:
        self._closed = True
        for groups in self._groups.values():
            for send, receive in groups.values():
                await send.aclose()
                await receive.aclose()
        self._groups.clear()

    def stats(self) -> dict[str, Any]:
        depth = {
            f"{topic}/{group}": pair[1].statistics().current_buffer_used
            for topic, groups in self._groups.items()
            for group, pair in groups.items()
        }
        return {"backend": self.backend, "published": self.published, "dropped_no_subscriber": self.dropped, "depth": depth}
