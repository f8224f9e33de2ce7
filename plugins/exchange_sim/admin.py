"""The admin endpoint ``/_sim/...``: ground-truth logs, balances, faults, prices, reset.

Every call needs the header ``X-Sim-Admin-Token: <admin_token>``. Admin calls are neither
faulted, rate limited nor logged in ``/_sim/requests``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hrkernel_sim.config import FaultConfig, parse_config, to_builtins
from hrkernel_sim.engine import Order
from hrkernel_sim.markets import plain
from hrkernel_sim.state import SimState
from hrkernel_sim.views import iso


def _json(status: int, body: object) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def order_record(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "account": order.account,
        "clientOrderId": order.client_order_id,
        "instance": order.instance,
        "fencing_token": order.fencing_token,
        "request_seq": order.request_seq,
        "symbol": order.symbol,
        "type": order.side,
        "execution": order.execution,
        "amount": plain(order.amount),
        "price": plain(order.price) if order.price is not None else None,
        "status": order.status,
        "matchedAmount": plain(order.matched),
        "fee": plain(order.fee),
        "created_at": iso(order.created_at),
    }


def admin_routes(state: SimState) -> list[Route]:
    def guarded(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            given = request.headers.get("x-sim-admin-token", "")
            if not hmac.compare_digest(given.encode(), state.config.admin_token.encode()):
                return _json(401, {"detail": "admin token required (X-Sim-Admin-Token)"})
            try:
                response = await fn(request)
                if request.method != "GET":
                    state.persist(force=True)  # set balances, a reset, a price move
                return response
            except (ValueError, KeyError, InvalidOperation, msgspec.DecodeError) as exc:
                return _json(400, {"error": "BadRequest", "message": str(exc)})
        return route

    async def requests(request: Request) -> Response:
        q = request.query_params
        since = int(q.get("since", "0"))
        rows = [r for r in state.requests if r["seq"] > since
                and all(str(r.get(k)) == q[k] for k in ("endpoint", "account", "instance", "fault") if k in q)]
        return _json(200, {"requests": rows})

    async def orders(request: Request) -> Response:
        q = request.query_params
        rows = [order_record(o) for o in state.engine.orders.values()]
        for key in ("account", "clientOrderId", "instance", "status"):
            if key in q:
                rows = [r for r in rows if str(r[key]) == q[key]]
        return _json(200, {"orders": rows})

    async def trades(request: Request) -> Response:
        return _json(200, {"trades": [
            {"id": t.id, "orderId": t.order_id, "account": t.account, "symbol": t.symbol,
             "type": t.side, "price": plain(t.price), "amount": plain(t.amount), "fee": plain(t.fee)}
            for t in state.engine.trades]})

    async def balances(request: Request) -> Response:
        eng = state.engine
        return _json(200, {"balances": {
            acct: {cur: {"balance": plain(bal), "blocked": plain(eng.blocked[acct].get(cur, Decimal(0)))}
                   for cur, bal in wallets.items()}
            for acct, wallets in eng.balances.items()}})

    async def set_balances(request: Request) -> Response:
        account = request.path_params["account"]
        if account not in state.engine.balances:
            raise KeyError(f"no account {account!r}")
        body = msgspec.json.decode(await request.body())
        for cur, value in body.items():
            amount = Decimal(str(value))
            if amount < state.engine.blocked[account].get(cur, Decimal(0)):
                raise ValueError(f"{cur}: {amount} is below what open orders block")
            state.engine.balances[account][cur] = amount
            state.engine.blocked[account].setdefault(cur, Decimal(0))
        return await balances(request)

    async def set_token(request: Request) -> Response:
        # Like rotating the API token in Nobitex's panel: the old one is refused from now on
        # (401 "invalid token", as for any unknown token), the new one selects the account.
        account = request.path_params["account"]
        if account not in state.engine.balances:
            raise KeyError(f"no account {account!r}")
        token = str(msgspec.json.decode(await request.body())["token"])
        if not token or state.engine.tokens.get(token, account) != account:
            raise ValueError("token must be non-empty and not another account's")
        tokens = state.engine.tokens
        for old in [t for t, a in tokens.items() if a == account]:
            del tokens[old]
        tokens[token] = account
        return _json(200, {"account": account, "rotated": True})

    async def get_faults(request: Request) -> Response:
        cfg = to_builtins(state.faults.config)
        left = [{"endpoint": s.endpoint, "kind": s.kind, "count": s.count} for s in state.faults.scripted]
        return _json(200, {"faults": cfg, "scripted_left": left})

    async def put_faults(request: Request) -> Response:
        cfg = parse_config(msgspec.json.decode(await request.body()), FaultConfig)
        assert isinstance(cfg, FaultConfig)
        state.faults.configure(cfg)
        return await get_faults(request)

    async def script_fault(request: Request) -> Response:
        body = msgspec.json.decode(await request.body())
        state.faults.add_scripted(str(body["endpoint"]), str(body["kind"]), int(body.get("count", 1)))
        return await get_faults(request)

    async def market(request: Request) -> Response:
        symbol = request.path_params["symbol"].upper()
        if symbol not in state.engine.markets:
            raise KeyError(f"no market {symbol!r}")
        if request.method == "POST":
            body = msgspec.json.decode(await request.body())
            if "price" in body:
                state.engine.set_price(symbol, Decimal(str(body["price"])))
            if "steps" in body:
                for _ in range(int(body["steps"])):
                    state.engine._step_market(state.engine.markets[symbol])
            if "closed" in body:
                state.engine.markets[symbol].cfg.closed = bool(body["closed"])
            if "feed" in body:
                if body["feed"] not in ("live", "silent"):
                    raise ValueError(f"feed: expected 'live' or 'silent', found {body['feed']!r}")
                if body["feed"] == "silent":
                    state.silent_feeds.add(symbol)
                else:
                    state.silent_feeds.discard(symbol)
        m = state.engine.markets[symbol]
        return _json(200, {"symbol": symbol, "mid": plain(m.mid), "last": plain(m.last_price),
                           "steps": m.steps, "closed": m.cfg.closed,
                           "feed": "silent" if symbol in state.silent_feeds else "live"})

    async def reset(request: Request) -> Response:
        state.reset()
        return _json(200, {"status": "ok"})

    async def invariants(request: Request) -> Response:
        return _json(200, {"problems": state.engine.check_invariants()})

    return [
        Route("/_sim/requests", guarded(requests), methods=["GET"]),
        Route("/_sim/orders", guarded(orders), methods=["GET"]),
        Route("/_sim/trades", guarded(trades), methods=["GET"]),
        Route("/_sim/balances", guarded(balances), methods=["GET"]),
        Route("/_sim/balances/{account}", guarded(set_balances), methods=["PUT"]),
        Route("/_sim/accounts/{account}/token", guarded(set_token), methods=["PUT"]),
        Route("/_sim/faults", guarded(get_faults), methods=["GET"]),
        Route("/_sim/faults", guarded(put_faults), methods=["PUT"]),
        Route("/_sim/faults/script", guarded(script_fault), methods=["POST"]),
        Route("/_sim/markets/{symbol}", guarded(market), methods=["GET", "POST"]),
        Route("/_sim/reset", guarded(reset), methods=["POST"]),
        Route("/_sim/invariants", guarded(invariants), methods=["GET"]),
    ]
