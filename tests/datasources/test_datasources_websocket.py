"""The Nobitex websocket source against a Centrifugo-speaking server on loopback."""

from __future__ import annotations

import json
import socket
from typing import Any

import anyio
import pytest

from hrkernel.bus.events import GapEvent
from hrkernel.types import HealthStatus
from hrkernel_datasources.config import WebsocketConfig
from hrkernel_datasources.websocket import WebsocketSource

websockets = pytest.importorskip("websockets")


class FakeCentrifugo:
    """Answers connect/subscribe like Nobitex, pushes order books (data as a JSON string) with
    rising offsets, pings with ``{}``; the test can silence it, skip an offset, or drop clients."""

    def __init__(self) -> None:
        self.subscriptions: list[list[str]] = []
        self.pongs = 0
        self.silent = False
        self.skip_next = False
        self.offset = 100
        self.connections: list[Any] = []
        self.port = 0

    async def handler(self, ws: Any) -> None:
        self.connections.append(ws)
        channels: list[str] = []
        self.subscriptions.append(channels)

        async def reader() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                if msg == {}:
                    self.pongs += 1
                elif "connect" in msg:
                    await ws.send(json.dumps({"id": msg["id"], "connect": {"client": "c1", "version": "5"}}))
                elif "subscribe" in msg:
                    channels.append(msg["subscribe"]["channel"])
                    await ws.send(json.dumps({"id": msg["id"], "subscribe": {}}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            n = 0
            try:
                while True:
                    await anyio.sleep(0.02)
                    n += 1
                    if n % 10 == 0:
                        await ws.send("{}")
                    if self.silent or not channels:
                        continue
                    self.offset += 2 if self.skip_next else 1
                    self.skip_next = False
                    data = json.dumps({"asks": [["101", "1"]], "bids": [["100", "2"]], "lastUpdate": 1})
                    await ws.send(json.dumps({"push": {"channel": channels[0], "pub": {"data": data, "offset": self.offset}}}))
            except websockets.exceptions.ConnectionClosed:
                tg.cancel_scope.cancel()

    async def drop_all(self) -> None:
        for ws in self.connections:
            await ws.close()


async def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_stream_reconnect_replays_subscriptions_and_reports_gaps() -> None:
    from websockets.asyncio.server import serve

    fake = FakeCentrifugo()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    async with serve(fake.handler, sock=sock):
        config = WebsocketConfig(url=f"ws://127.0.0.1:{port}/connection/websocket", symbols=["BTCIRT"],  # type: ignore[arg-type]
                                 max_age=0.3, reconnect_min=0.05, reconnect_max=0.2)
        source = WebsocketSource("ws", config)
        events: list[object] = []
        source.listeners.append(events.append)
        async with anyio.create_task_group() as tg:
            await source.start(tg)
            await wait_until(lambda: source.latest_book("BTCIRT") is not None)
            assert fake.subscriptions[0] == ["public:orderbook-BTCIRT"]
            assert (await source.check()).status == HealthStatus.HEALTHY

            fake.skip_next = True  # offset jumps by 2: a gap
            await wait_until(lambda: source.counts["gaps"] == 1)

            fake.silent = True  # socket open, pings flowing, no data: stale, not healthy
            await anyio.sleep(0.45)
            assert (await source.check()).status == HealthStatus.UNHEALTHY
            assert fake.pongs >= 1
            fake.silent = False

            await fake.drop_all()  # the server drops us: reconnect, replay, gap event
            await wait_until(lambda: len(fake.subscriptions) >= 2 and source.connects >= 2)
            assert fake.subscriptions[-1] == ["public:orderbook-BTCIRT"]
            await wait_until(lambda: any(isinstance(e, GapEvent) and "reconnected" in e.reason for e in events))
            await wait_until(lambda: source.is_fresh())
            await source.stop()
            tg.cancel_scope.cancel()
    assert source.counts["malformed"] >= 1  # the dropped connection, counted once per kind


@pytest.mark.anyio
async def test_each_connect_fills_the_gap_with_a_rest_snapshot() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from websockets.asyncio.server import serve

    from hrkernel.exchange import OrderBook, PriceLevel

    class Rest:
        calls = 0

        async def order_book(self, symbol: str) -> OrderBook:
            Rest.calls += 1
            return OrderBook(symbol=symbol, bids=[PriceLevel(Decimal("50"), Decimal("1"))],
                             asks=[PriceLevel(Decimal("51"), Decimal("1"))], timestamp=datetime.now(UTC))

    fake = FakeCentrifugo()
    fake.silent = True  # only the snapshot can provide the book
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    async with serve(fake.handler, sock=sock):
        config = WebsocketConfig(url=f"ws://127.0.0.1:{sock.getsockname()[1]}/", exchange="nobitex",  # type: ignore[arg-type]
                                 reconnect_min=0.05)
        source = WebsocketSource("ws", config, exchange=Rest())
        async with anyio.create_task_group() as tg:
            await source.start(tg)
            await wait_until(lambda: source.latest_book("BTCIRT") is not None)
            assert source.latest_book("BTCIRT")[0].bids[0].price == Decimal("50")  # type: ignore[index]
            await fake.drop_all()
            await wait_until(lambda: Rest.calls >= 2)  # again after the reconnect
            await source.stop()
            tg.cancel_scope.cancel()
