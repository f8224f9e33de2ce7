"""The matching engine: partial fills, resting orders filled as the book moves, fees, balances."""

from __future__ import annotations

import random
from decimal import Decimal

import httpx
import pytest

from hrkernel_sim.engine import Engine, OrderRejected

pytestmark = pytest.mark.anyio

# Book of BTCIRT in make_config(): mid 1e11; asks 1.001e11, 1.002e11 ... (0.01 BTC each level).


async def test_limit_buy_crossing_the_book_fills_partially_and_rests(client, admin):
    r = await client.post("/market/orders/add", json={
        "type": "buy", "srcCurrency": "btc", "dstCurrency": "rls", "amount": "0.025",
        "price": "100200000000"})
    order = r.json()["order"]
    # two ask levels (1.001e11 and 1.002e11) at 0.01 each are within the limit: 0.02 filled
    assert order["status"] == "Active" and order["partial"] is True
    assert order["matchedAmount"] == "0.02" and order["unmatchedAmount"] == "0.005"
    assert Decimal(order["averagePrice"]) == Decimal("100150000000")
    # taker fee 0.13% of the coin received
    assert Decimal(order["fee"]) == Decimal("0.02") * Decimal("0.0013")
    bal = (await admin.get("/_sim/balances")).json()["balances"]["alice"]
    assert Decimal(bal["btc"]["balance"]) == Decimal("0.5") + Decimal("0.02") - Decimal("0.000026")
    # the rest stays blocked at the limit price
    assert Decimal(bal["rls"]["blocked"]) == Decimal("0.005") * Decimal("100200000000")


async def test_resting_order_fills_when_the_price_moves_to_it(client, admin, buy):
    oid = (await client.post("/market/orders/add", json={**buy, "amount": "0.015"})).json()["order"]["id"]
    # move the mid down so the synthetic asks cross the resting bid at 0.99e11
    await admin.post("/_sim/markets/BTCIRT", json={"price": "98900000000"})
    order = (await client.post("/market/orders/status", json={"id": oid})).json()["order"]
    assert order["status"] == "Active" and Decimal(order["matchedAmount"]) == Decimal("0.01")
    await admin.post("/_sim/markets/BTCIRT", json={"price": "98800000000"})
    order = (await client.post("/market/orders/status", json={"id": oid})).json()["order"]
    assert order["status"] == "Done" and Decimal(order["matchedAmount"]) == Decimal("0.015")
    # filled as a maker at its own price, maker fee 0.1%
    assert Decimal(order["averagePrice"]) == Decimal("99000000000")
    assert Decimal(order["fee"]) == Decimal("0.015") * Decimal("0.001")
    assert (await admin.get("/_sim/invariants")).json() == {"problems": []}


async def test_market_order_beyond_the_band_is_canceled_with_partial_fill(client):
    # 5 levels × 0.01 = 0.05 BTC of asks, but only levels within 1% of the best ask count
    r = await client.post("/market/orders/add", json={
        "type": "buy", "execution": "market", "srcCurrency": "btc", "dstCurrency": "rls",
        "amount": "0.08"})
    order = r.json()["order"]
    assert order["status"] == "Canceled" and order["price"] == "market"
    assert Decimal(order["matchedAmount"]) == Decimal("0.05")
    # the blocked remainder was released
    w = {w["currency"]: w for w in (await client.get("/users/wallets/list")).json()["wallets"]}
    assert w["rls"]["blockedBalance"] == "0"


async def test_market_order_price_guard_limits_the_fill(client):
    r = await client.post("/market/orders/add", json={
        "type": "sell", "execution": "market", "srcCurrency": "btc", "dstCurrency": "rls",
        "amount": "0.03", "price": "101000000000"})
    # bids are at 0.999e11 and below, under the guard 1.01e11 × 0.99 = 0.9999e11: nothing fills
    order = r.json()["order"]
    assert order["status"] == "Canceled" and Decimal(str(order["matchedAmount"])) == 0


async def test_two_accounts_trade_with_each_other(sim, client, admin):
    sell = (await client.post("/market/orders/add", json={
        "type": "sell", "srcCurrency": "btc", "dstCurrency": "rls", "amount": "0.001",
        "price": "100050000000"})).json()["order"]
    r = await admin.put("/_sim/balances/bob", json={"rls": "200000000"})
    assert r.json()["balances"]["bob"]["rls"]["balance"] == "200000000"
    async with httpx.AsyncClient(base_url=sim.base_url, headers={"Authorization": "Token tok-bob"}) as bob:
        r = await bob.post("/market/orders/add", json={
            "type": "buy", "srcCurrency": "btc", "dstCurrency": "rls", "amount": "0.001",
            "price": "100100000000"})
    assert r.json()["order"]["status"] == "Done"
    assert Decimal(r.json()["order"]["averagePrice"]) == Decimal("100050000000")  # maker's price
    st = (await client.post("/market/orders/status", json={"id": sell["id"]})).json()["order"]
    assert st["status"] == "Done"
    bal = (await admin.get("/_sim/balances")).json()["balances"]["bob"]
    assert Decimal(bal["btc"]["balance"]) == Decimal("0.01") + Decimal("0.001") * (1 - Decimal("0.0013"))
    assert Decimal(bal["rls"]["balance"]) == 200000000 - Decimal("100050000")
    assert (await admin.get("/_sim/invariants")).json() == {"problems": []}


def test_balances_never_go_negative_under_random_orders():
    from hrkernel_sim.config import SimConfig, parse_config

    cfg = parse_config({
        "walk_on_request": True, "seed": 7, "duplicate_window": "0s",
        "accounts": {"a": {"token": "a", "balances": {"rls": "2000000000", "btc": "0.05"}},
                     "b": {"token": "b", "balances": {"rls": "500000000", "btc": "0.2"}}},
        "markets": [{"symbol": "BTCIRT", "price": "100000000000", "amount_precision": "0.000001",
                     "price_precision": "10", "level_size": "0.003", "levels": 8,
                     "volatility": 0.003}],
    })
    assert isinstance(cfg, SimConfig)
    t = [0.0]
    engine = Engine(cfg, lambda: t[0])
    rng = random.Random(1)
    placed = rejected = 0
    for i in range(600):
        t[0] += 1
        engine.step()
        acct = rng.choice("ab")
        side = rng.choice(("buy", "sell"))
        execution = rng.choice(("Limit", "Limit", "Market"))
        mid = engine.markets["BTCIRT"].mid
        price = (mid * Decimal(str(round(rng.uniform(0.98, 1.02), 4)))) if execution == "Limit" else None
        try:
            engine.place(acct, side=side, execution=execution, src="btc", dst="rls",
                         amount=Decimal(str(round(rng.uniform(0.0001, 0.01), 6))), price=price,
                         client_order_id=None)
            placed += 1
        except OrderRejected as exc:
            assert exc.code in ("OverValueOrder", "SmallOrder")
            rejected += 1
        if i % 7 == 0:
            for order in list(engine.orders.values()):
                if order.is_open and rng.random() < 0.3:
                    engine.cancel(order)
        assert engine.check_invariants() == []
    assert placed > 100 and rejected > 0
    assert len(engine.trades) > 50
    # every order's fills add up
    for order in engine.orders.values():
        fills = [tr for tr in engine.trades if tr.order_id == order.id]
        assert sum((tr.amount for tr in fills), Decimal(0)) == order.matched
        assert order.matched <= order.amount


def _engine(**market: object) -> Engine:
    from hrkernel_sim.config import SimConfig, parse_config

    cfg = parse_config({"seed": 3, "markets": [{"symbol": "BTCUSDT", "price": "100000",
                                                "amount_precision": "0.000001",
                                                "price_precision": "0.01", **market}]})
    assert isinstance(cfg, SimConfig)
    return Engine(cfg, lambda: 0.0)


def test_price_series_is_replayed_step_by_step_and_cycles():
    engine = _engine(price_series=["100000", "101000.004", "99000"])
    mids = []
    for _ in range(4):
        engine.step()
        mids.append(engine.markets["BTCUSDT"].mid)
    assert mids == [Decimal("100000"), Decimal("101000.00"), Decimal("99000"), Decimal("100000")]


def test_random_walk_is_seeded():
    a, b = _engine(volatility=0.01), _engine(volatility=0.01)
    a.step(50)
    b.step(50)
    assert a.markets["BTCUSDT"].mid == b.markets["BTCUSDT"].mid != Decimal("100000")
    assert [t.price for t in a.markets["BTCUSDT"].public_trades] == [
        t.price for t in b.markets["BTCUSDT"].public_trades]
