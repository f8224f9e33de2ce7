"""Nobitex's public websocket feed (Centrifugo protocol, JSON): order book, trades, stats.

Connect ``{"connect": {}, "id": 1}``, subscribe ``{"subscribe": {"channel":
"public:orderbook-BTCIRT"}, "id": n}``; pushes carry ``pub.data`` as a JSON *string* (decoded a
second time) and an ``offset`` (a jump in it is a gap). The server's ``{}`` pings are answered
with ``{}``. A stream is healthy when data arrives, not when the socket is open: the freshness
check applies as for every source. On every (re)connect the subscriptions are replayed, a
:class:`GapEvent` is emitted, and — with ``exchange`` set — a REST snapshot of each book fills the
gap. Reconnects back off exponentially with jitter.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskGroup

from hrkernel.bus.events import BookEvent, BookLevel, TickerEvent, TradeEvent
from hrkernel_datasources.base import MarketDataSource
from hrkernel_datasources.config import WebsocketConfig
from hrkernel_datasources.poll import book_event


class _Book(msgspec.Struct):
    asks: list[tuple[Decimal, Decimal]]
    bids: list[tuple[Decimal, Decimal]]
    lastUpdate: int | None = None  # noqa: N815 - Nobitex's field name


class _Trade(msgspec.Struct):
    price: Decimal
    volume: Decimal
    type: str
    time: int


class _Stats(msgspec.Struct):
    latest: Decimal | None = None
    bestBuy: Decimal | None = None  # noqa: N815
    bestSell: Decimal | None = None  # noqa: N815
    volumeSrc: Decimal | None = None  # noqa: N815


class WebsocketSource(MarketDataSource):
    kind = "websocket"

    def __init__(self, name: str, config: WebsocketConfig, *, context: Any = None, exchange: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, float(config.max_age), context=context, topic=config.topic,
                         publish=config.publish, clock=clock)
        self.config = config
        self.exchange = exchange
        self.connects = 0
        self._offsets: dict[str, int] = {}
        self._stop = anyio.Event()
        self._ws: Any = None

    def channels(self) -> list[str]:
        return [f"public:{kind}-{symbol}" for symbol in self.config.symbols for kind in self.config.channels]

    async def start(self, tg: TaskGroup) -> None:
        self.attach_bus()
        tg.start_soon(self._run)

    async def stop(self) -> None:
        self._stop.set()
        if self._ws is not None:
            await self._ws.close()

    async def _run(self) -> None:
        from websockets.asyncio.client import connect

        delay = float(self.config.reconnect_min)
        while not self._stop.is_set():
            try:
                async with connect(self.config.url, open_timeout=10, ping_interval=None) as ws:
                    self._ws = ws
                    await self._session(ws)
                    delay = float(self.config.reconnect_min)
            except Exception as exc:  # noqa: BLE001 - any failure: back off and reconnect
                self.malformed("connection", f"{type(exc).__name__}: {exc}")
            self._ws = None
            if self._stop.is_set():
                return
            await anyio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(float(self.config.reconnect_max), delay * 2)

    async def _session(self, ws: Any) -> None:
        await ws.send(json.dumps({"connect": {}, "id": 1}))
        for n, channel in enumerate(self.channels(), start=2):
            await ws.send(json.dumps({"subscribe": {"channel": channel}, "id": n}))
        self.connects += 1
        self._offsets.clear()
        if self.connects > 1:
            for symbol in self.config.symbols:
                self._gap(symbol, "reconnected: subscriptions replayed")
        await self._snapshot()
        while True:
            with anyio.fail_after(float(self.config.ping_timeout)):
                raw = await ws.recv()
            for line in str(raw).splitlines() or [""]:
                await self._handle(ws, line)
            await self.flush_to_bus()

    async def _snapshot(self) -> None:
        if self.config.exchange is None and self.exchange is None:
            return
        try:
            exchange = self.exchange or self.context.component(f"exchange:{self.config.exchange}")
            for symbol in self.config.symbols:
                self.ingest(book_event(self.name, await exchange.order_book(symbol)))
        except Exception as exc:  # noqa: BLE001 - the stream itself may still deliver
            self.malformed("rest_snapshot", f"{type(exc).__name__}: {exc}")

    async def _handle(self, ws: Any, line: str) -> None:
        if line.strip() in ("", "{}"):
            await ws.send("{}")  # Centrifugo ping -> pong
            return
        try:
            message = json.loads(line)
        except ValueError as exc:
            self.malformed("frame", str(exc))
            return
        push = message.get("push") if isinstance(message, dict) else None
        if not isinstance(push, dict):
            return  # connect/subscribe replies
        channel = str(push.get("channel", ""))
        pub = push.get("pub") or {}
        kind, _, symbol = channel.removeprefix("public:").rpartition("-")
        offset = pub.get("offset")
        if isinstance(offset, int):
            last = self._offsets.get(channel)
            self._offsets[channel] = offset
            if last is not None and offset != last + 1:
                self.counts["gaps"] += 1
                self._gap(symbol, f"offset gap on {channel}: {last} -> {offset}")
                await self._snapshot()
        data = pub.get("data")
        payload = data.encode() if isinstance(data, str) else msgspec.json.encode(data)  # a JSON string, decoded twice
        now = datetime.now(UTC)
        try:
            if kind == "orderbook":
                book = msgspec.json.decode(payload, type=_Book)
                self.ingest(BookEvent(time=now, source=self.name, symbol=symbol,
                                      bids=[BookLevel(p, a) for p, a in book.bids],
                                      asks=[BookLevel(p, a) for p, a in book.asks]))
            elif kind == "trades":
                trade = msgspec.json.decode(payload, type=_Trade)
                self.ingest(TradeEvent(time=datetime.fromtimestamp(trade.time / 1000, UTC), source=self.name,
                                       symbol=symbol, price=trade.price, amount=trade.volume, side=trade.type))
            elif kind == "market-stats":
                stats = msgspec.json.decode(payload, type=_Stats)
                self.ingest(TickerEvent(time=now, source=self.name, symbol=symbol, last=stats.latest,
                                        best_bid=stats.bestBuy, best_ask=stats.bestSell, volume_base=stats.volumeSrc))
        except msgspec.DecodeError as exc:
            self.malformed(kind or "unknown", str(exc))

