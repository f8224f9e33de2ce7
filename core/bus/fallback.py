"""``[bus] fallback = "memory"``: start on the in-process bus when the broker cannot be reached,
and move to the broker as soon as it answers.

For development and single-process setups: while on the fallback, events never leave this
process, so the ``bus`` health check reports *degraded* (which raises an alert) until the switch.
The switch is one way: once on the broker, an outage is handled by the broker backend's own
``on_unavailable`` policy (buffer or fail), never by silently going back to memory — consumers in
other processes would stop seeing events without anyone noticing. Events published on the
fallback and not consumed yet when the switch happens stay behind (the memory bus is at-most-once).
"""

from __future__ import annotations

from typing import Any

import anyio

from hrkernel.bus.base import Bus, Delivery, Subscription
from hrkernel.bus.events import Event
from hrkernel.bus.memory import MemoryBus
from hrkernel.logging import get_logger
from hrkernel.types import HealthResult, HealthStatus

log = get_logger("hrkernel.bus")


async def probe(bus: Bus) -> None:
    """Connect, and prove the broker answers (raises when it does not)."""
    await bus.connect()
    check = getattr(bus, "probe", None)
    if check is not None:
        await check()


class FallbackBus(Bus):
    """The configured broker bus, or the memory bus while the broker could not be reached."""

    def __init__(self, primary: Bus, memory: MemoryBus, *, retry: float = 5.0) -> None:
        self.primary = primary
        self.memory = memory
        self.retry = retry
        self.active: Bus = primary
        self.reason: str | None = None
        """Why the fallback is in use (None: on the broker)."""
        self._switched = anyio.Event()
        self.switches = 0

    @property
    def backend(self) -> str:  # type: ignore[override]
        return self.primary.backend if self.active is self.primary else f"memory (fallback for {self.primary.backend})"

    async def connect(self) -> None:
        try:
            with anyio.fail_after(10):
                await probe(self.primary)
        except Exception as exc:
            self.reason = f"{self.primary.backend} unreachable at start-up ({type(exc).__name__}: {exc})"
            self.active = self.memory
            await self.memory.connect()
            log.error("bus_fallback_memory", backend=self.primary.backend, error=self.reason,
                      action="running on the in-process bus until the broker answers; events stay in this process")

    async def watch(self) -> None:
        """While on the fallback, try the broker every ``retry`` seconds; switch when it answers."""
        while self.active is not self.primary:
            await anyio.sleep(self.retry)
            try:
                with anyio.fail_after(10):
                    await probe(self.primary)
            except Exception as exc:
                log.debug("bus_broker_still_down", backend=self.primary.backend, error=f"{type(exc).__name__}: {exc}")
                continue
            self.active, self.reason = self.primary, None
            self.switches += 1
            self._switched.set()
            log.warning("bus_broker_back", backend=self.primary.backend, action="switched from the in-process fallback")

    async def publish(self, topic: str, event: Event) -> None:
        await self.active.publish(topic, event)

    def subscribe(self, topic: str, group: str, *, consumer: str | None = None) -> Subscription:
        return _FollowingSubscription(self, topic, group, consumer)

    def require_group(self, topic: str, group: str) -> None:
        # The broker's side too: once it answers, what is published there waits for the group.
        self.primary.require_group(topic, group)
        self.memory.require_group(topic, group)

    async def flush_buffers(self) -> int:
        flush = getattr(self.active, "flush_buffers", None)
        return int(await flush()) if flush is not None else 0

    async def aclose(self) -> None:
        await self.memory.aclose()
        await self.primary.aclose()

    def stats(self) -> dict[str, Any]:
        out = dict(self.active.stats())
        out.update(backend=self.backend, fallback=self.active is not self.primary, fallback_reason=self.reason,
                   switches=self.switches)
        return out

    async def check(self) -> HealthResult:
        """The ``bus`` health check: degraded while on the fallback."""
        if self.active is self.primary:
            return HealthResult(status=HealthStatus.HEALTHY, detail=f"on the {self.primary.backend} broker")
        return HealthResult(status=HealthStatus.DEGRADED,
                            detail=f"in-process fallback: {self.reason}; events do not leave this process")


class _FollowingSubscription(Subscription):
    """Reads from whichever bus is active; moves to the broker when the fallback ends."""

    def __init__(self, owner: FallbackBus, topic: str, group: str, consumer: str | None) -> None:
        self.owner = owner
        self.topic, self.group, self.consumer = topic, group, consumer
        self._on: Bus | None = None
        self._sub: Subscription | None = None

    async def _current(self) -> Subscription:
        if self._sub is None or self._on is not self.owner.active:
            if self._sub is not None:
                await self._sub.aclose()
            self._on = self.owner.active
            self._sub = self._on.subscribe(self.topic, self.group, consumer=self.consumer)
        return self._sub

    async def __anext__(self) -> Delivery:
        while True:
            sub = await self._current()
            if self._on is self.owner.primary:
                return await sub.__anext__()  # the switch is one way: nothing to race
            got = await self._unless_switched(sub)
            if got is not None:
                return got

    async def _unless_switched(self, sub: Subscription) -> Delivery | None:
        """The next delivery of ``sub``, or None when the bus switched to the broker first."""
        got: list[Delivery] = []
        ended = False
        async with anyio.create_task_group() as tg:

            async def receive() -> None:
                nonlocal ended
                try:
                    got.append(await sub.__anext__())
                except StopAsyncIteration:
                    ended = True
                tg.cancel_scope.cancel()

            async def switched() -> None:
                await self.owner._switched.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(receive)
            tg.start_soon(switched)
        if ended:
            raise StopAsyncIteration
        return got[0] if got else None

    async def aclose(self) -> None:
        if self._sub is not None:
            await self._sub.aclose()
            self._sub = None
