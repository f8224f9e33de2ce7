"""The bus contract: ``publish(topic, event)`` and ``subscribe(topic, group)``.

Code that publishes or consumes uses only :class:`Bus`, so the backend (memory, Redis Streams,
RabbitMQ) is a config choice. Within one *group* every event goes to one consumer; every group
gets every event. Consumers call :meth:`Delivery.ack` once an event is handled; the durable
backends redeliver unacknowledged events (at-least-once, so handlers are idempotent by the
event's id), the memory backend never redelivers (at-most-once).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from hrkernel.bus.events import Event


class Delivery:
    """One event handed to one consumer."""

    __slots__ = ("_ack", "acked", "event", "id", "redelivered", "topic")

    def __init__(
        self,
        topic: str,
        event: Event,
        id: str,
        ack: Callable[[], Awaitable[None]] | None = None,
        redelivered: bool = False,
    ) -> None:
        self.topic = topic
        self.event = event
        self.id = id
        self.redelivered = redelivered
        self.acked = False
        self._ack = ack

    async def ack(self) -> None:
        """Mark the event handled; the broker will not hand it out again."""
        if self.acked:
            return
        if self._ack is not None:
            await self._ack()
        self.acked = True


class Subscription(abc.ABC):
    """An async iterator of :class:`Delivery`; close it with ``aclose()`` (or ``async with``)."""

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self

    @abc.abstractmethod
    async def __anext__(self) -> Delivery: ...

    @abc.abstractmethod
    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Bus(abc.ABC):
    backend: str = "bus"

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open connections (the kernel calls this from ``start``)."""

    @abc.abstractmethod
    async def publish(self, topic: str, event: Event) -> None:
        """Hand ``event`` to the broker. Raises :class:`~hrkernel.bus.errors.BusUnavailable`
        when the broker cannot take it and the topic's policy is ``fail`` (or its buffer is full)."""

    @abc.abstractmethod
    def subscribe(self, topic: str, group: str, *, consumer: str | None = None) -> Subscription:
        """Consume ``topic`` as a member of ``group`` (created on first use)."""

    @abc.abstractmethod
    async def aclose(self) -> None: ...

    def require_group(self, topic: str, group: str) -> None:
        """From now on keep ``topic``'s events for ``group`` even while no member consumes.

        The order path calls this at assembly for the signals topic: its consumer subscribes
        only while this instance may trade, and a signal published before then must wait for it.
        Redis Streams keeps every event in the stream (a group created later reads it from the
        start) and the memory bus refuses a ``fail`` topic's event while no group exists, so
        there is nothing to do; RabbitMQ drops a message no queue is bound for, so it declares
        the group's queue before it publishes.
        """
        return None

    def stats(self) -> dict[str, Any]:
        return {"backend": self.backend}

    async def run_handler(
        self,
        topic: str,
        group: str,
        handler: Callable[[Event], Awaitable[None]],
        *,
        consumer: str | None = None,
    ) -> None:
        """Consume forever, calling ``handler`` per event and acknowledging when it returns.

        An exception in ``handler`` leaves the event unacknowledged (the durable backends hand
        it out again) and is re-raised: the caller decides whether to restart.
        """
        async with self.subscribe(topic, group, consumer=consumer) as sub:
            async for delivery in sub:
                await handler(delivery.event)
                await delivery.ack()
