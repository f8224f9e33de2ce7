"""Fault injection over real HTTP: 5xx, 429 with backOff, hang, accept-then-drop, downtime,
latency, rate limits with the 2-minute block, and seeded replay."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

pytestmark = pytest.mark.anyio


async def script(admin: httpx.AsyncClient, endpoint: str, kind: str, count: int = 1) -> None:
    r = await admin.post("/_sim/faults/script", json={"endpoint": endpoint, "kind": kind, "count": count})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_scripted_server_errors(client, admin, status):
    await script(admin, "orders_status", f"error_{status}")
    r = await client.post("/market/orders/status", json={"id": 1})
    assert r.status_code == status
    # only the next request was faulted
    assert (await client.post("/market/orders/status", json={"id": 1})).status_code == 404
    log = (await admin.get("/_sim/requests", params={"endpoint": "orders_status"})).json()["requests"]
    assert [(x["status"], x["fault"]) for x in log] == [(status, f"error_{status}"), (404, None)]


async def test_injected_429_carries_back_off_and_retry_after(client, admin):
    await script(admin, "orderbook", "error_429")
    r = await client.get("/v3/orderbook/BTCIRT")
    assert r.status_code == 429
    body = r.json()
    assert body["status"] == "failed" and body["code"] == "TooManyRequests"
    assert body["backOff"] == 5 and r.headers["retry-after"] == "5"


async def test_hang_holds_the_request_until_the_client_times_out(client, admin):
    await script(admin, "orders_list", "hang")
    start = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/market/orders/list", timeout=0.3)
    assert 0.25 < time.monotonic() - start < 2
    # the server is still fine afterwards
    assert (await client.get("/market/orders/list")).status_code == 200


async def test_a_hung_post_is_released_when_the_client_leaves(sim, client, admin, buy):
    await script(admin, "orders_add", "hang")
    with pytest.raises(httpx.ReadTimeout):
        await client.post("/market/orders/add", json=buy, timeout=0.2)
    # nothing was placed, and the server's handler let go of the request
    assert (await admin.get("/_sim/orders")).json() == {"orders": []}
    for _ in range(40):  # hang_for is 300 s: only noticing the disconnect ends it this soon
        log = (await admin.get("/_sim/requests", params={"endpoint": "orders_add"})).json()["requests"]
        if log[0]["finished"]:
            break
        await anyio.sleep(0.05)
    assert log[0]["fault"] == "hang" and log[0]["status"] is None and log[0]["finished"]


async def test_accept_then_drop_places_the_order_but_the_client_sees_a_connection_error(client, admin, buy):
    await script(admin, "orders_add", "drop_after_accept")
    with pytest.raises(httpx.TransportError):
        await client.post("/market/orders/add", json={**buy, "clientOrderId": "lost-1"},
                          headers={"X-HR-Instance": "node-a", "X-HR-Fencing-Token": "42"})
    orders = (await admin.get("/_sim/orders", params={"clientOrderId": "lost-1"})).json()["orders"]
    assert len(orders) == 1
    assert orders[0]["instance"] == "node-a" and orders[0]["fencing_token"] == "42"
    assert orders[0]["status"] == "Active"
    # the client resolves the uncertainty by clientOrderId: it is there, no second order needed
    r = await client.post("/market/orders/status", json={"clientOrderId": "lost-1"})
    assert r.json()["order"]["id"] == orders[0]["id"]
    log = (await admin.get("/_sim/requests", params={"endpoint": "orders_add"})).json()["requests"]
    assert log[0]["fault"] == "drop_after_accept" and log[0]["status"] is None
    assert log[0]["order_id"] == orders[0]["id"] and log[0]["instance"] == "node-a"
    assert log[0]["client_order_id"] == "lost-1" and log[0]["fencing_token"] == "42"


async def test_downtime_window_answers_503_then_recovers(sim_factory, clock):
    sim = sim_factory(faults={"downtime": [{"start": "10s", "end": "20s"}]})
    async with sim, httpx.AsyncClient(base_url=sim.base_url) as c:
        assert (await c.get("/market/stats")).status_code == 200
        clock.advance(12)
        assert (await c.get("/market/stats")).status_code == 503
        assert (await c.get("/v2/options")).status_code == 503
        clock.advance(10)
        assert (await c.get("/market/stats")).status_code == 200


async def test_latency_fixed_delays_every_answer(sim_factory):
    sim = sim_factory(faults={"latency": {"fixed": "150ms"}})
    async with sim, httpx.AsyncClient(base_url=sim.base_url) as c:
        start = time.monotonic()
        assert (await c.get("/v2/options")).status_code == 200
        assert time.monotonic() - start >= 0.15


async def test_runtime_fault_config_via_admin(client, admin):
    r = await admin.put("/_sim/faults", json={"seed": 3, "endpoints": {"stats": {"error_500": 1.0}}})
    assert r.status_code == 200 and r.json()["faults"]["endpoints"]["stats"]["error_500"] == 1.0
    assert (await client.get("/market/stats")).status_code == 500
    assert (await client.get("/v2/options")).status_code == 200
    bad = await admin.put("/_sim/faults", json={"endpoints": {"stats": {"error_500": 2}}})
    assert bad.status_code == 400 and "probability" in bad.json()["message"]
    bad = await admin.put("/_sim/faults", json={"latency": {"fixd": "1s"}})
    assert bad.status_code == 400 and "fixd" in bad.json()["message"]
    await admin.put("/_sim/faults", json={})
    assert (await client.get("/market/stats")).status_code == 200


async def test_admin_endpoint_requires_the_admin_token(sim):
    async with httpx.AsyncClient(base_url=sim.base_url) as c:
        assert (await c.get("/_sim/orders")).status_code == 401
        r = await c.get("/_sim/orders", headers={"X-Sim-Admin-Token": "wrong"})
        assert r.status_code == 401


async def test_rate_limit_per_endpoint_then_two_minute_block(client, admin, clock):
    for _ in range(20):  # market/stats: 20 per minute
        assert (await client.get("/market/stats")).status_code == 200
    r = await client.get("/market/stats")
    assert r.status_code == 429 and r.json()["code"] == "TooManyRequests"
    assert r.json()["backOff"] == 60 and r.json()["limit"] == 20
    # other endpoints are still fine
    assert (await client.get("/v2/options")).status_code == 200
    # ignoring the backOff three times blocks the identity on every endpoint for 2 minutes
    for _ in range(3):
        r = await client.get("/market/stats")
        assert r.status_code == 429
    assert r.json()["backOff"] == 120
    clock.advance(61)  # the window passed but the block has not
    r = await client.get("/v3/orderbook/BTCIRT")
    assert r.status_code == 429 and 55 <= r.json()["backOff"] <= 60
    clock.advance(60)
    assert (await client.get("/market/stats")).status_code == 200


async def test_placement_limit_is_300_per_10_minutes(client, clock, buy):
    for i in range(300):
        r = await client.post("/market/orders/add", json={**buy, "amount": "0.0001", "pro": "yes"})
        assert r.status_code == 200, (i, r.text)
        clock.advance(1)
    r = await client.post("/market/orders/add", json=buy)
    assert r.status_code == 429 and r.json()["limit"] == 300
    assert r.json()["backOff"] == 300  # the first of the 300 leaves the window in 300 s
    clock.advance(300)
    assert (await client.post("/market/orders/add", json={**buy, "pro": "yes"})).status_code == 200


async def test_bad_tokens_from_one_ip_block_the_ip(sim_factory):
    sim = sim_factory(rate_limits={"bad_token_per_ip": 5})
    async with sim, httpx.AsyncClient(base_url=sim.base_url) as c:
        for _ in range(5):
            r = await c.post("/market/orders/status", json={"id": 1}, headers={"Authorization": "Token bad"})
            assert r.status_code == 401
        r = await c.post("/market/orders/status", json={"id": 1}, headers={"Authorization": "Token bad"})
        assert r.status_code == 429
        r = await c.post("/market/orders/status", json={"id": 1}, headers={"Authorization": "Token tok-alice"})
        assert r.status_code == 429


async def _run_seeded(sim_factory, seed: int) -> tuple[list[tuple[int, str | None]], list[str]]:
    sim = sim_factory(walk_on_request=True, seed=seed, rate_limits={"enabled": False},
                      faults={"seed": seed, "endpoints": {"*": {"error_500": 0.2, "error_503": 0.1,
                                                                "error_429": 0.1}}})
    async with sim, httpx.AsyncClient(base_url=sim.base_url,
                                      headers={"Authorization": "Token tok-alice"}) as c:
        for i in range(30):
            await c.get("/v3/orderbook/BTCIRT")
            await c.post("/market/orders/add", json={
                "type": "buy", "execution": "market", "srcCurrency": "btc", "dstCurrency": "rls",
                "amount": "0.0005", "clientOrderId": f"r{i}"})
        log = (await c.get("/_sim/requests", headers=sim.admin_headers)).json()["requests"]
        mid = (await c.get("/_sim/markets/BTCIRT", headers=sim.admin_headers)).json()["mid"]
        orders = (await c.get("/_sim/orders", headers=sim.admin_headers)).json()["orders"]
    return [(x["status"], x["fault"]) for x in log], [mid] + [o["matchedAmount"] for o in orders]


async def test_same_seed_replays_the_same_faults_and_prices(sim_factory):
    first = await _run_seeded(sim_factory, 11)
    second = await _run_seeded(sim_factory, 11)
    other = await _run_seeded(sim_factory, 12)
    assert first == second
    assert first != other
    faults = [f for _, f in first[0] if f]
    assert len(faults) > 5 and {"error_500", "error_503", "error_429"} <= set(faults)


async def test_reset_returns_to_the_configured_start(client, admin, buy):
    await client.post("/market/orders/add", json=buy)
    await admin.put("/_sim/faults", json={"endpoints": {"stats": {"error_500": 1.0}}})
    assert (await admin.post("/_sim/reset")).json() == {"status": "ok"}
    assert (await admin.get("/_sim/orders")).json() == {"orders": []}
    assert (await admin.get("/_sim/requests")).json() == {"requests": []}
    assert (await client.get("/market/stats")).status_code == 200
    bal = (await admin.get("/_sim/balances")).json()["balances"]["alice"]["rls"]
    assert bal == {"balance": "10000000000", "blocked": "0"}
