"""Market data by polling an exchange's public REST API through :class:`hrkernel.exchange.Exchange`.

Used for Nobitex (type ``nobitex``) and for the simulator (type ``sim``, the embedded default):
both speak the same Nobitex API, so one source serves both. Errors back off exponentially with
jitter; a poll that keeps failing simply lets the data age, which the freshness check reports.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.abc import TaskGroup

from hrkernel.bus.events import BookEvent, BookLevel, TickerEvent, TradeEvent
from hrkernel.exchange import Exchange, OrderBook
from hrkernel_datasources.base import MarketDataSource
from hrkernel_datasources.config import PollConfig


def book_event(source: str, book: OrderBook) -> BookEvent:
    return BookEvent(
        time=book.timestamp or datetime.now(UTC), source=source, symbol=book.symbol,
        bids=[BookLevel(level.price, level.amount) for level in book.bids],
        asks=[BookLevel(level.price, level.amount) for level in book.asks],
    )


class ExchangePollSource(MarketDataSource):
    kind = "poll"

    def __init__(self, name: str, config: PollConfig, *, context: Any = None, exchange: Exchange | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, float(config.max_age), context=context, topic=config.topic,
                         publish=config.publish, clock=clock)
        self.config = config
        self.exchange = exchange
        self.errors = 0
        self._wake = anyio.Event()
        self._stop = anyio.Event()
        self._seen_trades: set[tuple[str, str, str, str]] = set()

    def _resolve(self) -> Exchange:
        if self.exchange is None:
            if self.context is None:
                raise LookupError(f"data source {self.name}: no exchange given and no kernel context")
            self.exchange = self.context.component(f"exchange:{self.config.exchange}")
        assert self.exchange is not None
        return self.exchange

    def resync(self, symbol: str) -> None:
        super().resync(symbol)
        self._wake.set()  # poll again now instead of waiting for the interval

    async def poll_once(self) -> None:
        exchange = self._resolve()
        for symbol in self.config.symbols:
            if self.config.book:
                self.ingest(book_event(self.name, await exchange.order_book(symbol)))
            if self.config.ticker:
                stats = await exchange.market_stats(symbol)
                self.ingest(TickerEvent(time=datetime.now(UTC), source=self.name, symbol=symbol, last=stats.last,
                                        best_bid=stats.best_bid, best_ask=stats.best_ask, volume_base=stats.volume_base))
            if self.config.trades:
                for trade in await exchange.recent_trades(symbol):
                    key = (symbol, str(trade.time), str(trade.price), str(trade.amount))
                    if key in self._seen_trades:
                        continue
                    self._seen_trades.add(key)
                    self.ingest(TradeEvent(time=trade.time, source=self.name, symbol=symbol, price=trade.price,
                                           amount=trade.amount, side=trade.side.value))
                if len(self._seen_trades) > 10_000:
                    self._seen_trades.clear()
        await self.flush_to_bus()

    async def start(self, tg: TaskGroup) -> None:
        self.attach_bus()
        tg.start_soon(self._run)

    async def _run(self) -> None:
        delay = float(self.config.interval)
        while not self._stop.is_set():
            try:
                await self.poll_once()
                delay = float(self.config.interval)
            except Exception as exc:  # noqa: BLE001 - keep polling; staleness reports the outage
                self.errors += 1
                delay = min(float(self.config.backoff_max), max(delay, float(self.config.interval)) * 2)
                self.malformed(type(exc).__name__, str(exc))
            self._wake = anyio.Event()
            with anyio.move_on_after(delay * random.uniform(0.8, 1.2)):
                await self._wake.wait()

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
