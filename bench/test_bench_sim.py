"""Simulator throughput on loopback, measured against a bare Starlette app on the same uvicorn.

Run: ``python -m pytest bench/test_bench_sim.py --benchmark-only``. Compare the means within one
run: ``bare_json`` is the floor of the stack (uvicorn + Starlette + one JSON answer); the other
rows show what the simulator's auth, fault decision, rate limiter, request log and matching
engine add per call. Rate limits are off so placement is not capped at 300 per 10 minutes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.responses import JSONResponse
from starlette.routing import Route

from hrkernel_sim.config import SimConfig, parse_config
from hrkernel_sim.server import SimServer

pytestmark = pytest.mark.benchmark(group="sim-roundtrip")


class _Background:
    """Runs one SimServer in its own thread and event loop."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.start())
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> SimServer:
        self.thread.start()
        self.ready.wait(10)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    cfg = parse_config({"rate_limits": {"enabled": False}, "duplicate_window": "0s",
                        "accounts": {"b": {"token": "bench", "balances": {"rls": "1" + "0" * 20,
                                                                          "btc": "1000000"}}}})
    assert isinstance(cfg, SimConfig)
    server = SimServer(cfg)

    async def bare(request: Any) -> JSONResponse:
        return JSONResponse({"status": "ok", "order": {"id": 1, "status": "Active"}})

    server.app.router.routes.insert(0, Route("/bare", bare, methods=["GET", "POST"]))
    with _Background(server) as started:
        yield started


@pytest.fixture(scope="module")
def client(sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": "Token bench"}) as c:
        yield c


def test_bare_json(benchmark, client) -> None:
    assert benchmark(lambda: client.post("/bare", json={"id": 1})).status_code == 200


def test_order_status(benchmark, client) -> None:
    oid = client.post("/market/orders/add", json={
        "type": "buy", "srcCurrency": "btc", "dstCurrency": "rls", "amount": "0.001",
        "price": "100000000000"}).json()["order"]["id"]
    r = benchmark(lambda: client.post("/market/orders/status", json={"id": oid}))
    assert r.json()["status"] == "ok"


def test_market_order_placement(benchmark, client) -> None:
    body = {"type": "buy", "execution": "market", "srcCurrency": "btc", "dstCurrency": "rls",
            "amount": "0.001"}
    r = benchmark(lambda: client.post("/market/orders/add", json=body))
    assert r.json()["status"] == "ok", r.text


def test_orderbook(benchmark, client) -> None:
    assert benchmark(lambda: client.get("/v3/orderbook/BTCIRT")).json()["status"] == "ok"
