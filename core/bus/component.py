"""The bus as a kernel component (``bus``), built from ``[bus]``."""

from __future__ import annotations

from typing import Any

import anyio
from anyio.abc import TaskGroup

from hrkernel.bus.base import Bus
from hrkernel.bus.config import BusSection
from hrkernel.bus.fallback import FallbackBus
from hrkernel.bus.memory import MemoryBus
from hrkernel.lifecycle import Component
from hrkernel.logging import get_logger


def make_bus(section: BusSection, consumer_name: str | None = None) -> Bus:
    """The backend ``section.backend`` names (no I/O yet: ``connect()`` opens it), wrapped in a
    :class:`FallbackBus` when ``fallback = "memory"``."""
    memory = MemoryBus(section.memory.queue_size, section.policy)
    broker: Bus
    if section.backend == "redis":
        from hrkernel.bus.redis_streams import RedisStreamsBus

        broker = RedisStreamsBus(section.redis, section.policy, consumer_name)
    elif section.backend == "rabbitmq":
        from hrkernel.bus.rabbitmq import RabbitBus

        broker = RabbitBus(section.rabbitmq, section.policy)
    else:
        return memory
    if section.fallback == "memory":
        return FallbackBus(broker, memory, retry=float(section.fallback_retry))
    return broker


class BusComponent(Component):
    """Holds the bus (:attr:`bus` is the handle other parts and plugins are given)."""

    name = "bus"

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.log = get_logger("hrkernel.bus")

    async def start(self, tg: TaskGroup) -> None:
        await self.bus.connect()
        if isinstance(self.bus, FallbackBus):
            tg.start_soon(self.bus.watch, name="bus:fallback-watch")
        flush = getattr(self.bus, "flush_buffers", None)
        if flush is not None:
            tg.start_soon(self._flusher, flush)

    async def _flusher(self, flush: Any) -> None:
        # Buffered events (Redis down) go out as soon as Redis is back, even if nobody publishes.
        while True:
            await anyio.sleep(1.0)
            try:
                await flush()
            except Exception as exc:  # noqa: BLE001 - never let a flush kill the kernel
                self.log.warning("bus_flush_failed", error=str(exc))

    async def stop(self) -> None:
        await self.bus.aclose()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "bus", "backend": self.bus.backend}

    def stats(self) -> dict[str, Any]:
        return self.bus.stats()

    def health_checks(self) -> dict[str, Any]:
        """``bus``: degraded while running on the in-process fallback (``fallback = "memory"``)."""
        return {"bus": self.bus} if isinstance(self.bus, FallbackBus) else {}
