"""``/market/udf/history`` (OHLC) and ``/v3/orderbook/all`` as Nobitex documents them, and the
malformed-200 faults, over real HTTP."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

pytestmark = pytest.mark.anyio

T0 = 1_790_000_000  # the FakeClock's start (tests/sim/conftest.py)


async def walk(admin, clock, minutes: int, steps_per_minute: int = 3) -> None:
    for _ in range(minutes):
        r = await admin.post("/_sim/markets/BTCIRT", json={"steps": steps_per_minute})
        assert r.status_code == 200, r.text
        clock.advance(60)


async def test_udf_history_builds_minute_candles_from_the_tape(sim, client, admin, clock):
    await walk(admin, clock, 4)
    r = await client.get("/market/udf/history", params={"symbol": "BTCIRT", "resolution": "1", "to": T0 + 3600})
    assert r.status_code == 200
    body = r.json()
    assert body["s"] == "ok" and set(body) == {"s", "t", "o", "h", "l", "c", "v"}
    assert body["t"] == [T0 // 60 * 60 + 60 * i for i in range(4)]
    # Prices are JSON numbers, as in the docs' sample, and every candle is consistent.
    raw = msgspec.json.decode(r.content, type=dict[str, object], dec_hook=None)
    assert all(isinstance(x, int | float) for x in raw["o"])  # type: ignore[union-attr]
    tape = list(sim.state.engine.markets["BTCIRT"].tape)
    for i, start in enumerate(body["t"]):
        prices = [p for t, p, _ in tape if start <= t < start + 60]
        assert Decimal(str(body["o"][i])) == prices[0] and Decimal(str(body["c"][i])) == prices[-1]
        assert Decimal(str(body["h"][i])) == max(prices) and Decimal(str(body["l"][i])) == min(prices)
    assert body["o"][0] == 100000000000  # the opening price is the first point of the tape


async def test_udf_history_countback_from_and_paging(sim, client, admin, clock):
    await walk(admin, clock, 6)
    base = {"symbol": "BTCIRT", "resolution": "1", "to": T0 + 3600}
    every = (await client.get("/market/udf/history", params=base)).json()["t"]
    assert len(every) == 6
    assert (await client.get("/market/udf/history", params={**base, "countback": 2})).json()["t"] == every[-2:]
    # countback takes priority over from
    both = {**base, "countback": 2, "from": every[0]}
    assert (await client.get("/market/udf/history", params=both)).json()["t"] == every[-2:]
    assert (await client.get("/market/udf/history", params={**base, "from": every[3]})).json()["t"] == every[3:]
    assert (await client.get("/market/udf/history", params={**base, "to": every[1]})).json()["t"] == every[:2]
    assert (await client.get("/market/udf/history", params={**base, "page": 2})).json() == {"s": "no_data"}
    hourly = (await client.get("/market/udf/history", params={**base, "resolution": "60"})).json()
    assert hourly["t"] == [T0 // 3600 * 3600] and hourly["h"][0] == max(
        (await client.get("/market/udf/history", params=base)).json()["h"])


@pytest.mark.parametrize(("params", "answer"), [
    ({"symbol": "BTCIRT", "resolution": "7", "to": T0}, {"s": "error", "errmsg": "Invalid resolution!"}),
    ({"symbol": "BTCIRT", "resolution": "D", "to": T0 - 10 * 86400}, {"s": "no_data"}),
])
async def test_udf_history_documented_error_and_no_data(client, params, answer):
    r = await client.get("/market/udf/history", params=params)
    assert r.status_code == 200 and r.json() == answer


async def test_udf_history_refuses_missing_parameters_and_unknown_markets(client):
    for params in ({"resolution": "D", "to": T0}, {"symbol": "NOPEIRT", "resolution": "D", "to": T0},
                   {"symbol": "BTCIRT", "resolution": "D"}, {"symbol": "BTCIRT", "resolution": "D", "to": "x"}):
        body = (await client.get("/market/udf/history", params=params)).json()
        assert body["s"] == "error" and body["errmsg"], params


async def test_orderbook_all_holds_every_market_under_its_symbol(client):
    r = await client.get("/v3/orderbook/all")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok"
    assert set(body) == {"status", "BTCIRT", "USDTIRT", "BTCUSDT"}
    one = (await client.get("/v3/orderbook/BTCIRT")).json()
    assert set(body["BTCIRT"]) == set(one) - {"status"} == {"lastUpdate", "lastTradePrice", "asks", "bids"}
    for book in (body[s] for s in ("BTCIRT", "USDTIRT", "BTCUSDT")):
        asks = [Decimal(p) for p, _ in book["asks"]]
        bids = [Decimal(p) for p, _ in book["bids"]]
        assert asks == sorted(asks) and bids == sorted(bids, reverse=True) and bids[0] < asks[0]


async def test_orderbook_all_shares_the_order_book_limit_and_faults(client, admin):
    r = await admin.post("/_sim/faults/script", json={"endpoint": "orderbook", "kind": "error_503"})
    assert r.status_code == 200
    assert (await client.get("/v3/orderbook/all")).status_code == 503
    log = (await admin.get("/_sim/requests", params={"endpoint": "orderbook"})).json()["requests"]
    assert [x["path"] for x in log] == ["/v3/orderbook/all"]


async def test_ok_without_data_executes_then_answers_the_bare_envelope(client, admin, buy):
    await admin.post("/_sim/faults/script", json={"endpoint": "orders_add", "kind": "ok_without_data"})
    r = await client.post("/market/orders/add", json={**buy, "clientOrderId": "bare-1"})
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    [order] = (await admin.get("/_sim/orders", params={"clientOrderId": "bare-1"})).json()["orders"]
    [rec] = (await admin.get("/_sim/requests", params={"endpoint": "orders_add"})).json()["requests"]
    assert (rec["fault"], rec["account"], rec["client_order_id"], rec["order_id"]) == (
        "ok_without_data", "alice", "bare-1", order["id"])


async def test_malformed_200_draws_each_variant_from_the_seed(client, admin):
    await admin.post("/_sim/faults/script", json={"endpoint": "orderbook", "kind": "malformed_200", "count": 40})
    seen = set()
    for _ in range(40):
        r = await client.get("/v3/orderbook/BTCIRT")
        assert r.status_code == 200
        try:
            body = r.json()
        except ValueError:
            seen.add("html_page" if r.content.startswith(b"<html") else "truncated_json" if r.content else "empty_body")
            continue
        assert body["status"] == "ok" and body["asks"] is None and body["bids"] is None
        seen.add("null_data")
    assert seen == {"html_page", "truncated_json", "null_data", "empty_body"}


@pytest.mark.parametrize("kind", ["error_503", "error_429", "hang"])
async def test_requests_hit_by_an_early_fault_keep_account_and_client_order_id(client, admin, buy, kind):
    await admin.post("/_sim/faults/script", json={"endpoint": "orders_add", "kind": kind})
    try:
        await client.post("/market/orders/add", json={**buy, "clientOrderId": f"hit-{kind}"}, timeout=0.3)
    except Exception:  # the hang ends in a client timeout
        pass
    [rec] = (await admin.get("/_sim/requests", params={"endpoint": "orders_add"})).json()["requests"]
    assert (rec["fault"], rec["account"], rec["client_order_id"]) == (kind, "alice", f"hit-{kind}")
    assert (await admin.get("/_sim/orders")).json()["orders"] == []
