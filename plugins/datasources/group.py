"""A failover group of sources for the same markets: the active member's data is the group's.

Every ``check_interval`` the group looks at its members' freshness. When the active member is
stale (no update within ``max_age``) and another is fresh, the next fresh member in preference
order takes over, so failover happens within ``max_age + check_interval``. With ``failback`` the
group returns to a more preferred member once it is fresh again. Each switch emits a
:class:`~hrkernel.bus.events.GapEvent` (consumers should treat the book as resynced) and is
recorded in :attr:`switches`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.abc import TaskGroup

from hrkernel.bus.events import Event, GapEvent
from hrkernel_datasources.base import MarketDataSource
from hrkernel_datasources.config import FailoverConfig


class FailoverSource(MarketDataSource):
    kind = "failover"

    def __init__(self, name: str, config: FailoverConfig, *, context: Any = None,
                 members: list[MarketDataSource] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, float(config.max_age), context=context, topic=config.topic,
                         publish=config.publish, clock=clock)
        self.config = config
        self.members: list[MarketDataSource] = members or []
        self.labels: list[str] = [m.name for m in self.members]
        self._active: MarketDataSource | None = None
        self.switches: list[tuple[float, str | None, str, str]] = []
        """``(clock time, from, to, reason)`` of each switch."""
        self._stop = anyio.Event()

    def _resolve(self) -> None:
        if self.members or self.context is None:
            return
        self.members = [self.context.component(f"datasource:{m}") for m in self.config.members]
        self.labels = list(self.config.members)

    @property
    def active(self) -> str | None:
        """The serving member's label (its data-source id), or None before the first fresh one."""
        if self._active is None:
            return None
        return self.labels[self.members.index(self._active)]

    def label(self, member: MarketDataSource) -> str:
        return self.labels[self.members.index(member)]

    def _listener(self, member: MarketDataSource) -> Callable[[Event], None]:
        def on_event(event: Event) -> None:
            if member is self._active and not isinstance(event, GapEvent):
                self.ingest(event)
        return on_event

    async def start(self, tg: TaskGroup) -> None:
        self.attach_bus()
        tg.start_soon(self._run)

    def evaluate(self) -> None:
        """Pick the serving member now (the loop calls this every ``check_interval``)."""
        fresh = [m for m in self.members if m.is_fresh()]
        current = self._active
        if current is not None and current.is_fresh():
            if not self.config.failback:
                return
            preferred = fresh[0]
            if preferred is not current and self.members.index(preferred) < self.members.index(current):
                self._switch(preferred, "failback: preferred member fresh again")
            return
        if fresh:
            reason = "initial" if current is None else f"{self.label(current)} stale (age {current.age()!r}s > max_age {current.max_age:g}s)"
            self._switch(fresh[0], reason)

    def _switch(self, member: MarketDataSource, reason: str) -> None:
        previous = self.active
        self._active = member
        self.switches.append((self.clock(), previous, self.label(member), reason))
        self.log.warning("datasource_failover", group=self.name, from_member=previous, to_member=self.active, reason=reason)
        for symbol in {*member.books, *member.tickers}:
            self._emit(GapEvent(time=datetime.now(UTC), source=self.name, symbol=symbol, reason=f"switched to {self.active}"))
        # Serve the new member's latest values at once instead of waiting for its next update.
        for cached in [*member.books.values(), *member.tickers.values()]:
            self.ingest(cached.event)

    async def _run(self) -> None:
        self._resolve()
        for member in self.members:
            member.listeners.append(self._listener(member))
        while not self._stop.is_set():
            self.evaluate()
            await self.flush_to_bus()
            with anyio.move_on_after(float(self.config.check_interval)):
                await self._stop.wait()

    async def stop(self) -> None:
        self._stop.set()

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "active": self.active, "switches": len(self.switches)}
