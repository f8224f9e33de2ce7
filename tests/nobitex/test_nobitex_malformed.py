"""Every read of the Nobitex adapter rejects a 200 body that is not the documented shape, over
real HTTP against the simulator's ``ok_without_data`` and ``malformed_200`` faults.

``{"status":"ok"}`` without its data key (what a gateway or proxy page can send) used to read as
an empty result: no balances, no open orders, no fills. Reconciliation would then believe open
orders vanished and fills never happened."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from hrkernel.exchange import OrderRequest, OrderStatus, OrderType, Side
from hrkernel.exchange import errors as ex

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SIM_TOKEN = "contract-token-0001"

Read = Callable[[Any], Awaitable[Any]]

# (simulator endpoint, the adapter read that goes through it)
READS: list[tuple[str, str, Read]] = [
    ("wallets_list", "balances", lambda x: x.balances()),
    ("orders_list", "list_open_orders", lambda x: x.list_open_orders()),
    ("orders_list", "list_open_orders(symbol)", lambda x: x.list_open_orders("BTCIRT")),
    ("trades_list", "recent_fills", lambda x: x.recent_fills()),
    ("orderbook", "order_book", lambda x: x.order_book("BTCIRT")),
    ("orderbook", "ping", lambda x: x.ping()),
    ("public_trades", "recent_trades", lambda x: x.recent_trades("BTCIRT")),
    ("stats", "market_stats", lambda x: x.market_stats("BTCIRT")),
    ("orders_status", "get_order", lambda x: x.get_order(client_order_id="open-1")),
]


async def script(admin: Any, endpoint: str, kind: str, count: int = 1) -> None:
    response = await admin.post("/_sim/faults/script", json={"endpoint": endpoint, "kind": kind, "count": count})
    assert response.status_code == 200, response.text


async def resting(exchange: Any, admin: Any, cid: str, *, fill: bool = False) -> Any:
    mid = Decimal((await admin.get("/_sim/markets/BTCIRT")).json()["mid"])
    return await exchange.place_order(OrderRequest(
        symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT, amount=Decimal("0.001"),
        price=mid * (Decimal("1.05") if fill else Decimal("0.9")), client_order_id=cid))


@pytest.mark.parametrize(("endpoint", "name", "read"), READS, ids=[r[1] for r in READS])
async def test_a_reply_without_its_data_key_is_malformed_not_empty(sim, sim_admin, make_exchange,
                                                                   endpoint, name, read):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN, retry_attempts=1)
    async with exchange:
        # There is something to lose: an open order, a fill, balances.
        await resting(exchange, sim_admin, "open-1")
        await resting(exchange, sim_admin, "filled-1", fill=True)
        await script(sim_admin, endpoint, "ok_without_data")
        with pytest.raises(ex.MalformedResponseError) as caught:
            await read(exchange)
        assert caught.value.raw is not None and '"status":"ok"' in caught.value.raw.replace(" ", "")
        # The next answer is whole again, and it was never "nothing".
        assert await read(exchange) not in ([], None)


@pytest.mark.parametrize(("endpoint", "name", "read"), READS, ids=[r[1] for r in READS])
async def test_every_malformed_200_variant_is_rejected(sim, sim_admin, make_exchange, endpoint, name, read):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN, retry_attempts=1,
                                breaker_failure_threshold=100)
    async with exchange:
        await resting(exchange, sim_admin, "open-1")
        for _ in range(8):  # the variant is drawn per request: 8 draws cover the 4 of them
            await script(sim_admin, endpoint, "malformed_200")
            with pytest.raises(ex.MalformedResponseError):
                await read(exchange)
    log = (await sim_admin.get("/_sim/requests", params={"fault": "malformed_200"})).json()["requests"]
    assert len(log) == 8 and all(r["status"] == 200 for r in log)


async def test_markets_without_precisions_are_malformed(sim, sim_admin, make_exchange):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN, retry_attempts=1)
    async with exchange:
        await script(sim_admin, "options", "ok_without_data")
        with pytest.raises(ex.MalformedResponseError):
            await exchange.markets()
        assert {m.symbol for m in await exchange.markets()} >= {"BTCIRT", "USDTIRT"}


async def test_a_placement_answered_without_data_is_an_unknown_outcome_then_found(sim, sim_admin, make_exchange):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN)
    async with exchange:
        await exchange.markets()
        await script(sim_admin, "orders_add", "ok_without_data")
        with pytest.raises(ex.UnknownOutcomeError) as caught:
            await resting(exchange, sim_admin, "ghost-1")
        assert caught.value.client_order_id == "ghost-1"
        found = await exchange.find_order_by_client_id("ghost-1", symbol="BTCIRT")
        assert found is not None and found.status is OrderStatus.OPEN
    orders = (await sim_admin.get("/_sim/orders", params={"clientOrderId": "ghost-1"})).json()["orders"]
    assert [o["id"] for o in orders] == [int(found.exchange_id)]


async def test_faulted_requests_keep_their_account_and_client_order_id(sim, sim_admin, make_exchange):
    exchange, _ = make_exchange(sim.base_url, token=SIM_TOKEN)
    async with exchange:
        await exchange.markets()
        for kind in ("error_503", "error_500", "error_429"):  # a 429 backs the adapter off: last
            await script(sim_admin, "orders_add", kind)
            with pytest.raises(ex.ExchangeError):
                await resting(exchange, sim_admin, f"hit-{kind}")
    log = (await sim_admin.get("/_sim/requests", params={"endpoint": "orders_add"})).json()["requests"]
    assert [(r["fault"], r["account"], r["client_order_id"]) for r in log] == [
        (kind, "default", f"hit-{kind}") for kind in ("error_503", "error_500", "error_429")]
    assert (await sim_admin.get("/_sim/orders")).json()["orders"] == []
