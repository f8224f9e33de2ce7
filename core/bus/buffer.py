"""The ``on_unavailable`` publish policy, one implementation for every broker backend.

While the broker cannot take an event, a topic whose policy is ``buffer`` keeps it in a bounded
local queue and sends it — in order, before any newer event of that topic — once the broker takes
events again (on the next publish, or from the bus component's flusher every second); a topic
whose policy is ``fail`` raises :class:`BusUnavailable` at once. A full buffer raises too:
nothing is dropped silently. The backends differ only in how one payload is sent.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from typing import Any

from hrkernel.bus.config import TopicPolicy
from hrkernel.bus.errors import BusUnavailable

Send = Callable[[str, bytes], Awaitable[None]]
"""``send(topic, payload)``: hand one encoded event to the broker; raises when it cannot."""


class PublishBuffer:
    """Per-topic bounded buffers and the policy that decides between buffering and failing."""

    def __init__(self, backend: str, policy: Callable[[str], TopicPolicy], size: int, log: Any) -> None:
        self.backend = backend
        self.policy = policy
        self.size = size
        self.log = log
        self.buffers: dict[str, collections.deque[bytes]] = {}
        self.buffered = 0
        self.flushed = 0
        self._down_logged = False

    def waiting(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    async def flush(self, topic: str, send: Send) -> None:
        """Send what ``topic`` buffered, oldest first; stops (raising) at the first failure."""
        buffer = self.buffers.get(topic)
        while buffer:
            await send(topic, buffer[0])
            buffer.popleft()
            self.flushed += 1

    async def publish(self, topic: str, payload: bytes, send: Send, down: tuple[type[BaseException], ...]) -> bool:
        """Send ``payload`` after what the topic buffered; on one of the ``down`` errors apply
        the policy. Returns True when the payload reached the broker, False when it was buffered."""
        try:
            if self.buffers.get(topic):
                await self.flush(topic, send)  # keep order: older buffered events go first
            await send(topic, payload)
        except down as exc:
            self.keep(topic, payload, f"{self.backend} unreachable ({type(exc).__name__}: {exc})")
            return False
        if self._down_logged:
            self.log.info("bus_broker_back", backend=self.backend, waiting=self.waiting())
        self._down_logged = False
        return True

    def keep(self, topic: str, payload: bytes, reason: str) -> None:
        """Buffer ``payload`` or raise :class:`BusUnavailable`, as the topic's policy says."""
        policy = self.policy(topic)
        if not self._down_logged:
            self.log.warning("bus_broker_down", backend=self.backend, topic=topic, policy=policy.on_unavailable,
                             error=reason)
            self._down_logged = True
        if policy.on_unavailable == "fail":
            raise BusUnavailable(self.backend, topic, reason)
        buffer = self.buffers.setdefault(topic, collections.deque())
        if len(buffer) >= self.size:
            raise BusUnavailable(self.backend, topic, f"{reason}; local buffer full ({self.size})")
        buffer.append(payload)
        self.buffered += 1

    async def flush_all(self, send: Send, down: tuple[type[BaseException], ...]) -> int:
        """Flush every topic (the broker may be back); returns how many are still waiting."""
        for topic in list(self.buffers):
            try:
                await self.flush(topic, send)
            except down:
                pass
        return self.waiting()
