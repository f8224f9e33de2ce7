"""What every built-in source shares: validation, the latest-value cache, freshness, gap checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from hrkernel.bus.events import BookEvent, Event, GapEvent, TickerEvent, TradeEvent
from hrkernel.types import HealthResult, HealthStatus

Listener = Callable[[Event], None]
MarketEvent = BookEvent | TradeEvent | TickerEvent


class Cached:
    __slots__ = ("event", "received")

    def __init__(self, event: Event, received: float) -> None:
        self.event = event
        self.received = received


class MarketDataSource:
    """Base of the sources: call :meth:`ingest` with each decoded event.

    ``ingest`` rejects crossed books, notices sequence gaps (both emit a :class:`GapEvent` and
    call :meth:`resync`), updates the cache and hands the event to listeners (a failover group,
    the bus publisher). ``check()`` is the freshness health check.
    """

    kind = "source"

    def __init__(self, name: str, max_age: float, *, context: Any = None, topic: str = "marketdata",
                 publish: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.max_age = max_age
        self.topic = topic
        self.publish_events = publish
        self.context = context
        self.clock = clock
        self.log = structlog.get_logger("hrkernel_datasources").bind(source=name)
        self.books: dict[str, Cached] = {}
        self.tickers: dict[str, Cached] = {}
        self.last_update: float | None = None
        self.listeners: list[Listener] = []
        self._sequences: dict[tuple[str, str], int] = {}
        self.counts: dict[str, int] = {"events": 0, "malformed": 0, "gaps": 0, "crossed": 0, "resyncs": 0}
        self._malformed_logged: set[str] = set()
        self._bus: Any = None
        self._pending: list[Event] = []

    # ------------------------------------------------------------------ intake
    def malformed(self, kind: str, error: str) -> None:
        """Count a message that failed validation; log only the first of each kind."""
        self.counts["malformed"] += 1
        if kind not in self._malformed_logged:
            self._malformed_logged.add(kind)
            self.log.warning("datasource_malformed_message", kind=kind, error=error[:300], note="logged once per kind")

    def ingest(self, event: Event) -> bool:
        if isinstance(event, BookEvent) and event.bids and event.asks and event.bids[0].price >= event.asks[0].price:
            self.counts["crossed"] += 1
            self._gap(event.symbol, f"crossed book: bid {event.bids[0].price} >= ask {event.asks[0].price}")
            return False
        symbol = getattr(event, "symbol", "")
        seq = getattr(event, "sequence", None)
        if seq is not None:
            key = (type(event).__name__, symbol)
            last = self._sequences.get(key)
            self._sequences[key] = seq
            if last is not None and seq != last + 1:
                self.counts["gaps"] += 1
                self._gap(symbol, f"sequence gap: {last} -> {seq}")
        now = self.clock()
        if isinstance(event, BookEvent):
            self.books[symbol] = Cached(event, now)
        elif isinstance(event, TickerEvent):
            self.tickers[symbol] = Cached(event, now)
        self.last_update = now
        self.counts["events"] += 1
        self._emit(event)
        return True

    def _gap(self, symbol: str, reason: str) -> None:
        self.log.info("datasource_gap", symbol=symbol, reason=reason)
        self._emit(GapEvent(time=datetime.now(UTC), source=self.name, symbol=symbol, reason=reason))
        self.counts["resyncs"] += 1
        self.resync(symbol)

    def resync(self, symbol: str) -> None:
        """Fetch a fresh snapshot soon (sources override; the default waits for the next one)."""
        self._sequences = {k: v for k, v in self._sequences.items() if k[1] != symbol}

    def _emit(self, event: Event) -> None:
        for listener in list(self.listeners):
            listener(event)
        if self.publish_events and self._bus is not None:
            self._pending.append(event)

    # ------------------------------------------------------------------ bus
    def attach_bus(self) -> None:
        if self.context is None or not self.publish_events:
            return
        try:
            self._bus = self.context.component("bus")  # an hrkernel.types.EventBus
        except (KeyError, AttributeError):
            return

    async def flush_to_bus(self) -> None:
        if self._bus is None or not self._pending:
            return
        pending, self._pending = self._pending, []
        for event in pending:
            try:
                await self._bus.publish(self.topic, event)
            except Exception as exc:  # noqa: BLE001 - market data is best effort; never stop the feed
                self.malformed("bus_publish", str(exc))

    # ------------------------------------------------------------------ freshness
    def age(self) -> float | None:
        return None if self.last_update is None else self.clock() - self.last_update

    def is_fresh(self) -> bool:
        age = self.age()
        return age is not None and age <= self.max_age

    def latest_book(self, symbol: str) -> tuple[BookEvent, float] | None:
        """The latest book of ``symbol`` and its age in seconds."""
        hit = self.books.get(symbol)
        return None if hit is None else (hit.event, self.clock() - hit.received)  # type: ignore[return-value]

    def latest_ticker(self, symbol: str) -> tuple[TickerEvent, float] | None:
        hit = self.tickers.get(symbol)
        return None if hit is None else (hit.event, self.clock() - hit.received)  # type: ignore[return-value]

    async def check(self) -> HealthResult:
        age = self.age()
        if age is None:
            return HealthResult(status=HealthStatus.UNHEALTHY, detail="no data received yet")
        if age > self.max_age:
            return HealthResult(status=HealthStatus.UNHEALTHY, detail=f"stale: last update {age:.1f}s ago (max_age {self.max_age:g}s)")
        return HealthResult(status=HealthStatus.HEALTHY, detail=f"last update {age:.2f}s ago")

    def stats(self) -> dict[str, Any]:
        age = self.age()
        return {**self.counts, "age": None if age is None else round(age, 3), "fresh": self.is_fresh(),
                "books": {s: round(self.clock() - c.received, 3) for s, c in self.books.items()},
                "tickers": {s: round(self.clock() - c.received, 3) for s, c in self.tickers.items()}}
