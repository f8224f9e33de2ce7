"""The documents' CircuitBreaker(...).execute and ConnectionPool(name=, create_client_func=, config={...})
against the simulator over real HTTP."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from hrkernel.compat import CircuitBreaker, ConnectionPool
from hrkernel.resilience import BreakerState, CircuitOpenError

pytestmark = pytest.mark.anyio


async def orderbook_hits(sim_admin: httpx.AsyncClient) -> int:
    requests = (await sim_admin.get("/_sim/requests")).json()
    entries = requests.get("requests", requests) if isinstance(requests, dict) else requests
    return sum(1 for r in entries if "orderbook" in str(r.get("path", r.get("endpoint", ""))))


async def test_breaker_from_the_documents_opens_on_503s_and_closes_after_a_trial(
    sim: Any, sim_admin: httpx.AsyncClient,
) -> None:
    breaker = CircuitBreaker(name="compat-nobitex", failure_threshold=2, reset_timeout=0.3,
                             half_open_max_requests=1, success_threshold=1)
    await sim_admin.post("/_sim/faults/script", json={"endpoint": "orderbook", "kind": "error_503", "count": 2})
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=5) as client:

        async def book(symbol: str, *, raise_for_status: bool = True) -> dict[str, Any]:
            response = await client.get(f"/v3/orderbook/{symbol}")
            if raise_for_status:
                response.raise_for_status()
            return response.json()

        for _ in range(2):
            with pytest.raises(httpx.HTTPStatusError):
                await breaker.execute(book, "BTCIRT", raise_for_status=True)
        assert breaker.state is BreakerState.OPEN
        sent = await orderbook_hits(sim_admin)
        assert sent >= 2
        with pytest.raises(CircuitOpenError):
            await breaker.execute(book, "BTCIRT")
        assert await orderbook_hits(sim_admin) == sent  # rejected without a request
        await anyio.sleep(0.35)
        answer = await breaker.execute(book, "BTCIRT")
        assert answer["status"] == "ok" and breaker.state is BreakerState.CLOSED


async def test_pool_from_the_documents_initializes_executes_by_method_name_and_stops(sim: Any) -> None:
    made: list[httpx.AsyncClient] = []

    def create_client() -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=sim.base_url, timeout=5)
        made.append(client)
        return client

    pool: ConnectionPool[httpx.AsyncClient] = ConnectionPool(
        name="compat-sim", create_client_func=create_client,
        config={"min_connections": 2, "max_connections": 3, "connection_timeout": 2.5, "idle_timeout": 60})
    assert pool.config.connection_timeout == 2.5
    await pool.initialize()
    assert pool.metrics().size == 2
    answers: list[int] = []

    async def one() -> None:
        response = await pool.execute("get", "/v2/options")
        answers.append(response.status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(one)
    assert answers == [200] * 6
    assert 2 <= pool.metrics().size <= 3 and len(made) <= 3
    await pool.stop()
    assert all(client.is_closed for client in made)


def test_pool_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="unknown key\\(s\\) max_size"):
        ConnectionPool(name="p", create_client_func=object, config={"max_size": 3})
    with pytest.raises(ValueError, match="max_connections must be >= 1 and >= min_connections"):
        ConnectionPool(name="p", create_client_func=object, config={"min_connections": 5, "max_connections": 2})
    with pytest.raises(ValueError, match="idle_timeout must be a number of seconds"):
        ConnectionPool(name="p", create_client_func=object, config={"idle_timeout": "5m"})


async def test_the_documents_decorator_guards_a_call_to_the_simulator(sim: Any, sim_admin: httpx.AsyncClient) -> None:
    from hrkernel.compat import circuit_breaker
    from hrkernel.resilience import BreakerRegistry

    registry = BreakerRegistry()

    @circuit_breaker(name="compat-options", failure_threshold=1, reset_timeout=60, registry=registry)
    async def options() -> int:
        async with httpx.AsyncClient(base_url=sim.base_url, timeout=5) as client:
            response = await client.get("/v2/options")
            response.raise_for_status()
            return response.status_code

    assert await options() == 200
    await sim_admin.post("/_sim/faults/script", json={"endpoint": "options", "kind": "error_502", "count": 1})
    with pytest.raises(httpx.HTTPStatusError):
        await options()
    with pytest.raises(CircuitOpenError):
        await options()
