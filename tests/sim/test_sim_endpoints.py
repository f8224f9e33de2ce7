"""Every Nobitex endpoint the simulator serves: happy paths and documented errors, over HTTP."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def test_private_endpoints_answer_401_detail_without_a_valid_token(sim, client):
    async with httpx.AsyncClient(base_url=sim.base_url) as anon:
        r = await anon.post("/market/orders/add", json={})
        assert r.status_code == 401 and set(r.json()) == {"detail"}
        r = await anon.post("/market/orders/status", json={"id": 1},
                            headers={"Authorization": "Token nope"})
        assert r.status_code == 401 and r.json() == {"detail": "توکن غیر مجاز"}
        for path in ("/market/orders/list", "/market/trades/list", "/users/wallets/list", "/v2/wallets"):
            assert (await anon.get(path)).status_code == 401
    # public endpoints need no token
    async with httpx.AsyncClient(base_url=sim.base_url) as anon:
        assert (await anon.get("/v3/orderbook/BTCIRT")).json()["status"] == "ok"


async def test_add_limit_order_rests_active_and_echoes_client_order_id(client, buy):
    r = await client.post("/market/orders/add", json={**buy, "clientOrderId": "c1"})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    order = body["order"]
    assert order["status"] == "Active"
    assert order["srcCurrency"] == "Bitcoin" and order["dstCurrency"] == "\ufdfc"
    assert order["market"] == "BTC-RLS" and order["execution"] == "Limit"
    assert order["matchedAmount"] == 0 and order["fee"] == 0  # ints, as in the docs' sample
    assert order["amount"] == "0.001" and order["unmatchedAmount"] == "0.001"
    assert order["clientOrderId"] == "c1" and isinstance(order["id"], int)
    assert order["created_at"].endswith("+00:00")


async def test_add_rounds_excess_decimals_silently(client):
    r = await client.post("/market/orders/add", json={
        "type": "buy", "srcCurrency": "btc", "dstCurrency": "rls",
        "amount": "0.0012349", "price": "99000000015"})
    order = r.json()["order"]
    assert order["amount"] == "0.001234"  # amount rounded down
    assert order["price"] == "99000000020"  # price: half-to-even on a step of 10 (1.5 → 2)


@pytest.mark.parametrize(("patch", "code"), [
    ({"amount": "0.00002"}, "SmallOrder"),  # 0.00002 × 99e9 = 1,980,000 < 3,000,000 rls
    ({"price": "50000000000"}, "BadPrice"),  # 50% below the market
    ({"amount": "1"}, "OverValueOrder"),  # 99e9 rls > 10e9 balance
    ({"srcCurrency": "doge"}, "InvalidMarketPair"),
    ({"type": "hold"}, "InvalidOrderType"),
    ({"execution": "iceberg"}, "InvalidExecutionType"),
    ({"price": None}, "InvalidOrderPrice"),
])
async def test_add_rejections_are_200_failed_with_code(client, buy, patch, code):
    r = await client.post("/market/orders/add", json={**buy, **patch, "clientOrderId": "x"})
    assert r.status_code == 200
    assert r.json() == {"status": "failed", "code": code, "message": r.json()["message"],
                        "clientOrderId": "x"}


async def test_small_order_on_usdt_market_uses_11_usdt(client):
    r = await client.post("/market/orders/add", json={
        "type": "buy", "srcCurrency": "btc", "dstCurrency": "usdt", "amount": "0.0001",
        "price": "99000"})  # 9.9 usdt
    assert r.json()["code"] == "SmallOrder"


async def test_unparseable_input_is_400_parse_error(client, buy):
    r = await client.post("/market/orders/add", json={**buy, "amount": "lots"})
    assert r.status_code == 400 and r.json()["code"] == "ParseError"
    r = await client.post("/market/orders/add", json={**buy, "clientOrderId": "x" * 33})
    assert r.status_code == 400 and r.json()["code"] == "ParseError"


async def test_client_order_id_is_unique_among_open_orders_only(client, buy):
    first = (await client.post("/market/orders/add", json={**buy, "clientOrderId": "dup"})).json()
    r = await client.post("/market/orders/add", json={**buy, "price": "99100000000", "clientOrderId": "dup"})
    assert r.json()["code"] == "DuplicateClientOrderId"
    await client.post("/market/orders/update-status",
                      json={"order": first["order"]["id"], "status": "canceled"})
    # once canceled the id is free again, and a lookup by it no longer finds the old order
    r = await client.post("/market/orders/status", json={"clientOrderId": "dup"})
    assert r.status_code == 404 and r.json()["error"] == "NotFound"
    r = await client.post("/market/orders/add", json={**buy, "price": "99100000000", "clientOrderId": "dup"})
    assert r.json()["status"] == "ok"


async def test_done_orders_are_invisible_by_client_order_id_but_visible_by_id(client):
    r = await client.post("/market/orders/add", json={
        "type": "buy", "execution": "market", "srcCurrency": "btc", "dstCurrency": "rls",
        "amount": "0.005", "clientOrderId": "mkt"})
    order = r.json()["order"]
    assert order["status"] == "Done"
    assert (await client.post("/market/orders/status", json={"clientOrderId": "mkt"})).status_code == 404
    r = await client.post("/market/orders/status", json={"id": order["id"]})
    assert r.json()["order"]["status"] == "Done"
    r = await client.post("/market/orders/update-status", json={"clientOrderId": "mkt", "status": "canceled"})
    assert r.status_code == 404


async def test_duplicate_order_within_10s_unless_pro(client, clock, buy):
    assert (await client.post("/market/orders/add", json=buy)).json()["status"] == "ok"
    assert (await client.post("/market/orders/add", json=buy)).json()["code"] == "DuplicateOrder"
    assert (await client.post("/market/orders/add", json={**buy, "pro": "yes"})).json()["status"] == "ok"
    clock.advance(10.5)
    assert (await client.post("/market/orders/add", json=buy)).json()["status"] == "ok"


async def test_status_by_id_uses_ten_place_strings(client, buy):
    oid = (await client.post("/market/orders/add", json=buy)).json()["order"]["id"]
    order = (await client.post("/market/orders/status", json={"id": oid})).json()["order"]
    assert order["matchedAmount"] == "0E-10" and order["fee"] == "0E-10"
    assert order["amount"] == "0.0010000000"
    r = await client.post("/market/orders/status", json={})
    assert r.json()["code"] == "NullIdAndClientOrderId"
    r = await client.post("/market/orders/status", json={"id": 999999})
    assert r.status_code == 404
    assert r.json() == {"error": "NotFound", "message": "No Order matches the given query."}


async def test_orders_of_another_account_are_not_found(sim, client, buy):
    oid = (await client.post("/market/orders/add", json=buy)).json()["order"]["id"]
    async with httpx.AsyncClient(base_url=sim.base_url, headers={"Authorization": "Token tok-bob"}) as bob:
        assert (await bob.post("/market/orders/status", json={"id": oid})).status_code == 404


async def test_cancel_active_then_cancel_again_and_cancel_done(client, buy):
    oid = (await client.post("/market/orders/add", json=buy)).json()["order"]["id"]
    r = (await client.post("/market/orders/update-status", json={"order": oid, "status": "canceled"})).json()
    assert r["status"] == "ok" and r["updatedStatus"] == "Canceled" and r["order"]["status"] == "Canceled"
    r = (await client.post("/market/orders/update-status", json={"order": oid, "status": "canceled"})).json()
    assert r == {"status": "failed", "updatedStatus": "Canceled"}
    done = (await client.post("/market/orders/add", json={
        "type": "sell", "execution": "market", "srcCurrency": "btc", "dstCurrency": "rls",
        "amount": "0.001"})).json()["order"]
    r = await client.post("/market/orders/update-status", json={"order": done["id"], "status": "canceled"})
    assert r.status_code == 200 and r.json() == {"status": "failed", "updatedStatus": "Done"}


async def test_cancel_old_cancels_active_orders_matching_filters(client, clock, buy):
    a = (await client.post("/market/orders/add", json=buy)).json()["order"]["id"]
    clock.advance(3 * 3600)
    b = (await client.post("/market/orders/add", json={**buy, "price": "99100000000"})).json()["order"]["id"]
    assert (await client.post("/market/orders/cancel-old", json={"hours": 2})).json() == {"status": "ok"}
    st = {o["id"]: o["status"] for o in (await client.get(
        "/market/orders/list", params={"status": "all", "details": 2})).json()["orders"]}
    assert st == {a: "Canceled", b: "Active"}
    await client.post("/market/orders/cancel-old", json={})
    r = await client.get("/market/orders/list", params={"status": "open"})
    assert r.json()["orders"] == []


async def test_orders_list_filters_and_details(client, buy):
    await client.post("/market/orders/add", json={**buy, "clientOrderId": "L1"})
    await client.post("/market/orders/add", json={
        "type": "buy", "execution": "market", "srcCurrency": "btc", "dstCurrency": "rls", "amount": "0.001"})
    one = (await client.get("/market/orders/list")).json()["orders"]  # default open, details 1
    assert len(one) == 1 and "id" not in one[0] and one[0]["clientOrderId"] == "L1"
    two = (await client.get("/market/orders/list", params={"status": "all", "details": "2"})).json()["orders"]
    assert [o["status"] for o in two] == ["Done", "Active"]  # newest first
    assert {"id", "status", "fee", "created_at", "averagePrice"} <= set(two[0])
    done = (await client.post("/market/orders/list", json={"status": "done", "details": 2})).json()["orders"]
    assert [o["status"] for o in done] == ["Done"]
    assert (await client.get("/market/orders/list", params={"status": "close", "type": "sell"})).json()["orders"] == []
    assert (await client.get("/market/orders/list", params={"status": "nope"})).status_code == 400


async def test_trades_list_shows_fills_with_fees(client):
    oid = (await client.post("/market/orders/add", json={
        "type": "buy", "execution": "market", "srcCurrency": "btc", "dstCurrency": "rls",
        "amount": "0.015"})).json()["order"]["id"]
    body = (await client.get("/market/trades/list", params={"srcCurrency": "btc", "dstCurrency": "rls"})).json()
    assert body["status"] == "ok" and body["hasNext"] is False
    trades = body["trades"]
    assert {t["orderId"] for t in trades} == {oid}
    assert sum(Decimal(t["amount"]) for t in trades) == Decimal("0.015")
    assert all(t["srcCurrency"] == "Bitcoin" and t["market"] == "BTC-RLS" for t in trades)
    assert (await client.get("/market/trades/list", params={"srcCurrency": "btc"})).status_code == 400


async def test_wallet_endpoints_show_blocked_funds(client, buy):
    await client.post("/market/orders/add", json=buy)  # blocks 0.001 × 99e9 = 99,000,000 rls
    wallets = {w["currency"]: w for w in (await client.get("/users/wallets/list")).json()["wallets"]}
    rls = wallets["rls"]
    assert rls["balance"] == "10000000000" and rls["blockedBalance"] == "99000000"
    assert rls["activeBalance"] == "9901000000" and rls["rialBalance"] == 10000000000
    v2 = (await client.get("/v2/wallets", params={"currencies": "rls,btc"})).json()
    assert set(v2["wallets"]) == {"RLS", "BTC"} and v2["wallets"]["BTC"]["balance"] == "0.5000000000"
    bal = (await client.post("/users/wallets/balance", json={"currency": "btc"})).json()
    assert bal == {"balance": "0.5000000000", "status": "ok"}


async def test_market_data_endpoints(client):
    book = (await client.get("/v3/orderbook/BTCIRT")).json()
    assert book["status"] == "ok" and isinstance(book["lastUpdate"], int)
    asks = [Decimal(p) for p, _ in book["asks"]]
    bids = [Decimal(p) for p, _ in book["bids"]]
    assert asks == sorted(asks) and bids == sorted(bids, reverse=True) and bids[0] < asks[0]
    assert all(isinstance(a, str) for lvl in book["asks"] for a in lvl)
    await client.post("/market/orders/add", json={
        "type": "buy", "execution": "market", "srcCurrency": "btc", "dstCurrency": "rls", "amount": "0.001"})
    trades = (await client.get("/v2/trades/BTCIRT")).json()["trades"]
    assert trades[0]["type"] == "buy" and isinstance(trades[0]["time"], int)
    stats = (await client.get("/market/stats", params={"srcCurrency": "btc,usdt", "dstCurrency": "rls"})).json()
    assert set(stats["stats"]) == {"btc-rls", "usdt-rls"}
    assert stats["stats"]["btc-rls"]["isClosed"] is False
    opts = (await client.get("/v2/options")).json()["nobitex"]
    assert opts["amountPrecisions"]["BTCIRT"] == "0.000001" and opts["pricePrecisions"]["BTCUSDT"] == "0.01"
    assert opts["minOrders"]["rls"] == "3000000"
    r = await client.get("/v3/orderbook/NOPEIRT")
    assert r.json()["status"] == "failed"


async def test_unknown_path_is_404_html(client):
    r = await client.get("/market/nothing")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")


async def test_malformed_json_body_is_400_parse_error(client):
    r = await client.post("/market/orders/add", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "ParseError"
    r = await client.post("/market/orders/add", json=["a", "list"])
    assert r.status_code == 400


async def test_form_encoded_body_is_accepted(client):
    r = await client.post("/market/orders/add", data={
        "type": "buy", "srcCurrency": "btc", "dstCurrency": "rls", "amount": "0.001",
        "price": "99000000000"})
    assert r.json()["status"] == "ok"


async def test_wrong_method_is_405_with_detail(client):
    r = await client.get("/market/orders/add")
    assert r.status_code == 405 and "detail" in r.json()


async def test_market_sell_values_the_order_at_the_best_bid(client):
    order = (await client.post("/market/orders/add", json={
        "type": "sell", "execution": "market", "srcCurrency": "btc", "dstCurrency": "rls",
        "amount": "0.001"})).json()["order"]
    assert Decimal(order["totalOrderPrice"]) == Decimal("0.001") * Decimal("99900000000")


async def test_request_log_since_and_instance_headers(client, admin):
    await client.get("/v2/options", headers={"X-HR-Instance": "i-1", "X-HR-Fencing-Token": "7"})
    await client.get("/v2/options")
    rows = (await admin.get("/_sim/requests")).json()["requests"]
    assert [(r["instance"], r["fencing_token"]) for r in rows] == [("i-1", "7"), (None, None)]
    later = (await admin.get("/_sim/requests", params={"since": rows[0]["seq"]})).json()["requests"]
    assert [r["seq"] for r in later] == [rows[1]["seq"]]
    only = (await admin.get("/_sim/requests", params={"instance": "i-1"})).json()["requests"]
    assert len(only) == 1
