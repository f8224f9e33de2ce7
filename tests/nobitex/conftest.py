"""Fixtures for the Nobitex adapter tests.

``scripted``: a real HTTP/1.1 server on 127.0.0.1 (its own thread and event loop) whose answers
each test scripts, including the faults a real exchange produces: hanging, dropping the
connection after reading the request, garbage bodies. It decodes nothing the adapter sends
except the request line, headers and body, which it records for the test to check.
The contract tests against the Nobitex simulator use the simulator's own fixture.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest

# /v2/options as Nobitex serves it (docs-api `_other.md`), trimmed to three markets.
OPTIONS = {
    "status": "ok",
    "nobitex": {
        "minOrders": {"rls": "3000000", "usdt": "11", "2": "3000000", "13": "11"},
        "amountPrecisions": {"BTCIRT": "0.000001", "BTCUSDT": "0.000001", "USDTIRT": "0.01"},
        "pricePrecisions": {"BTCIRT": "10", "BTCUSDT": "0.01", "USDTIRT": "10"},
    },
}


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]] | str
Handler = Callable[[Req], Reply]


@dataclass
class ScriptedServer:
    port: int = 0
    routes: dict[str, Handler | list[Reply] | Reply] = field(default_factory=dict)
    requests: list[Req] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on(self, path: str, *replies: Reply | Handler) -> None:
        """Answer ``path`` with ``replies`` in turn (the last one repeats), or a handler."""
        self.routes[path] = list(replies) if len(replies) > 1 else replies[0]  # type: ignore[assignment]

    def hits(self, path: str) -> list[Req]:
        return [r for r in self.requests if r.path == path]

    def _answer(self, req: Req) -> Reply:
        route = self.routes.get(req.path)
        if route is None and req.path == "/v2/options":
            return (200, OPTIONS)
        if route is None:
            return (404, "<html><body>Not Found</body></html>")
        if isinstance(route, list):
            return route.pop(0) if len(route) > 1 else route[0]
        if callable(route):
            return route(req)
        return route

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    raw = await reader.readline()
                    if raw in (b"\r\n", b"\n", b""):
                        break
                    key, _, value = raw.decode().partition(":")
                    headers[key.strip().lower()] = value.strip()
                size = int(headers.get("content-length", "0"))
                body = await reader.readexactly(size) if size else b""
                path, _, query = target.partition("?")
                req = Req(method, path, dict(parse_qsl(query)), headers, body)
                self.requests.append(req)
                reply = self._answer(req)
                if reply == "drop":
                    writer.transport.abort()
                    return
                if reply == "hang":
                    await asyncio.sleep(3600)
                    return
                assert not isinstance(reply, str)
                status, payload, *rest = reply
                extra = rest[0] if rest else {}
                data = payload if isinstance(payload, bytes) else (
                    payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                )
                head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(head.encode() + b"\r\n" + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        server.port = srv.sockets[0].getsockname()[1]
        holder["srv"] = srv
        ready.set()
        async with srv:
            await srv.serve_forever()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(5)
    yield server

    def stop() -> None:
        for task in asyncio.all_tasks(loop):
            task.cancel()

    loop.call_soon_threadsafe(stop)
    thread.join(5)
    loop.close()


TOKEN = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def make_exchange() -> Iterator[Callable[..., Any]]:
    """``make_exchange(base_url, **config) -> (exchange, clock)``: a NobitexExchange with a
    ManualClock (its sleeps advance the clock instead of waiting); closed after the test."""
    from hrkernel.resilience import ManualClock
    from hrkernel.types import Duration
    from hrkernel_nobitex.config import NobitexConfig
    from hrkernel_nobitex.exchange import NobitexExchange

    made: list[Any] = []

    def make(base_url: str, *, instance_id: str = "hr-test", **overrides: Any) -> tuple[Any, Any]:
        options: dict[str, Any] = {
            "token": TOKEN, "base_url": base_url, "bot_name": "tests",
            "timeout": Duration(0.5), "connect_timeout": Duration(0.5),
        }
        options.update(overrides)
        clock = ManualClock()
        exchange = NobitexExchange(NobitexConfig(**options), instance_id=instance_id, clock=clock, sleep=clock.sleep)
        made.append(exchange)
        return exchange, clock

    yield make
    leaked = [e.name for e in made if e.started]
    assert not leaked, f"tests must close their exchanges (async with): {leaked}"


SIM_TOKEN = "contract-token-0001"


@pytest.fixture
async def sim() -> Any:
    """The Nobitex simulator (hrkernel_sim's public SimServer) on loopback, one account whose
    token is SIM_TOKEN. Reached by the adapter over real HTTP; inspected through /_sim/*."""
    from hrkernel.types import Amount
    from hrkernel_sim.config import AccountConfig, SimConfig
    from hrkernel_sim.server import SimServer

    config = SimConfig(accounts={"default": AccountConfig(token=SIM_TOKEN, balances={
        "rls": Amount("100000000000"), "usdt": Amount("10000"), "btc": Amount("1"), "eth": Amount("10")})})
    async with SimServer(config) as server:
        yield server


@pytest.fixture
async def sim_admin(sim: Any) -> Any:
    """An httpx client on the simulator's admin endpoints (``/_sim/...``)."""
    import httpx

    async with httpx.AsyncClient(base_url=sim.base_url, headers=sim.admin_headers, timeout=5) as client:
        yield client
