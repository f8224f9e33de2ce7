"""The Starlette app: Nobitex's paths, auth, faults, rate limits and the request log.

Per request, in this order: the fault injector's delay and fault (downtime, 5xx, 429, hang:
answered at once, the log still naming the account and client order id); authentication (401
``{"detail":...}``); Nobitex's rate limits (429 with ``backOff``); the handler; and after it,
for ``drop_after_accept`` the connection is aborted, so the client sees a connection error
although the order exists, and for ``ok_without_data`` / ``malformed_200`` the handler's answer
is replaced by a 200 that is not the documented shape (what a gateway or proxy in front of the
exchange can send after the request was executed).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from hrkernel_sim import api, candles
from hrkernel_sim.admin import admin_routes
from hrkernel_sim.faults import EARLY_FAULTS, MALFORMED_VARIANTS
from hrkernel_sim.state import SimState

INVALID_TOKEN = "توکن غیر مجاز"  # "invalid token", the Postman sample's 401 detail

Handler = Callable[[SimState, str, dict[str, Any], dict[str, Any]], api.Result]


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, headers=headers,
                    media_type="application/json")


class _Dropped(Response):
    """Sends nothing: the connection was aborted, uvicorn sees a disconnected client."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0)  # let connection_lost run so uvicorn does not try a 500
        await asyncio.sleep(0)


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        raw = await request.body()
        if raw:
            ctype = request.headers.get("content-type", "")
            if "application/x-www-form-urlencoded" in ctype:
                params.update(dict(parse_qsl(raw.decode("utf-8", "replace"))))
            else:
                try:
                    body = msgspec.json.decode(raw)
                except msgspec.DecodeError:
                    raise api.BadInput("JSON parse error") from None
                if not isinstance(body, dict):
                    raise api.BadInput("expected a JSON object")
                params.update(body)
    return params


def _record(state: SimState, request: Request, endpoint: str) -> dict[str, Any]:
    state.seq += 1
    rec: dict[str, Any] = {
        "seq": state.seq,
        "time": state.clock(),
        "method": request.method,
        "path": request.url.path,
        "endpoint": endpoint,
        "account": None,
        "instance": request.headers.get("x-hr-instance"),
        "fencing_token": request.headers.get("x-hr-fencing-token"),
        "status": None,
        "fault": None,
        "code": None,
        "order_id": None,
        "client_order_id": None,
        "finished": False,
    }
    state.requests.append(rec)
    return rec


def nobitex_endpoint(state: SimState, endpoint: str, handler: Handler | None,
                     public: Callable[[Request, dict[str, Any]], api.Result] | None = None,
                     encode: Callable[[Any], bytes] = msgspec.json.encode,
                     ) -> Callable[[Request], Awaitable[Response]]:
    """``encode``: how the handler's body is serialised (Decimals as strings by default, as
    Nobitex prints them almost everywhere)."""
    async def route(request: Request) -> Response:
        rec = _record(state, request, endpoint)
        response = await _serve(state, request, endpoint, handler, public, rec, encode)
        # Before answering: an order the client was told about must survive a crash.
        state.persist()
        rec["status"] = response.status_code if not isinstance(response, _Dropped) else None
        rec["finished"] = True
        return response
    return route


async def _serve(state: SimState, request: Request, endpoint: str, handler: Handler | None,
                 public: Callable[[Request, dict[str, Any]], api.Result] | None,
                 rec: dict[str, Any], encode: Callable[[Any], bytes]) -> Response:
    if public is not None and state.silent_feeds:
        market = state.market_of_request(endpoint, dict(request.path_params), dict(request.query_params))
        if market in state.silent_feeds:
            rec["fault"] = "feed_silent"
            await _hold(state, request, float(state.faults.config.hang_for))
            state.abort_connection(request.scope.get("client"))
            return _Dropped()
    decision = state.faults.decide(endpoint)
    if decision.delay > 0:
        await _sleep_or_stop(state, decision.delay)
    kind = decision.kind
    rec["fault"] = kind
    if kind in EARLY_FAULTS:
        # The handler never runs, but the log still says whose request the fault hit: a test
        # asks "which of my placements got the 503?" by account and client order id.
        await _identify(state, request, handler, rec)
    if kind == "downtime" or kind == "error_503":
        return json_response(503, {"status": "failed", "code": "ServiceUnavailable",
                                   "message": "Service temporarily unavailable"})
    if kind == "error_500":
        return json_response(500, {"status": "failed", "code": "ServerError", "message": "Internal server error"})
    if kind == "error_502":
        return Response(b"<html><body>502 Bad Gateway</body></html>", status_code=502,
                        media_type="text/html")
    if kind == "error_429":
        back = state.faults.config.back_off
        return _too_many(back, 0, headers={"Retry-After": str(back)})
    if kind == "hang":
        await _hold(state, request, float(state.faults.config.hang_for))
        state.abort_connection(request.scope.get("client"))
        return _Dropped()
    client = request.scope.get("client") or ("?", 0)
    identity = f"ip:{client[0]}"
    account = ""
    if handler is not None:
        auth = request.headers.get("authorization", "")
        token = auth[6:].strip() if auth.startswith("Token ") else ""
        account = state.engine.tokens.get(token, "")
        if not account:
            if state.limiter.bad_token(client[0]):
                return _too_many(math.ceil(float(state.config.rate_limits.bad_token_window)), 0)
            rec["code"] = "Unauthorized"
            detail = INVALID_TOKEN if token else "اطلاعات برای اعتبارسنجی ارسال نشده است."
            return json_response(401, {"detail": detail})
        rec["account"] = account
        identity = f"token:{account}"
    limited = state.limiter.check(identity, endpoint)
    if limited is None and identity.startswith("token:"):
        # An IP blocked for bad tokens is blocked for everyone behind it.
        limited = state.limiter.check(f"ip:{client[0]}", "")
    if limited is not None:
        rec["code"] = "TooManyRequests"
        return _too_many(limited.back_off, limited.limit)
    params: dict[str, Any] = {}
    try:
        params = await _params(request)
        meta: dict[str, Any] = {"instance": rec["instance"], "fencing_token": rec["fencing_token"],
                                "seq": rec["seq"]}
        if handler is not None:
            status, body = handler(state, account, params, meta)
        else:
            assert public is not None
            status, body = public(request, params)
    except api.BadInput as exc:
        status, body = 400, {"status": "failed", "code": "ParseError", "message": str(exc)}
        meta = {}
    rec["code"] = body.get("code") or body.get("error")
    rec["order_id"] = meta.get("order_id")
    cid = params.get("clientOrderId")
    if isinstance(cid, str):
        rec["client_order_id"] = cid
    if kind == "drop_after_accept" and state.abort_connection(request.scope.get("client")):
        return _Dropped()
    if kind == "ok_without_data":
        # Executed, then answered as a gateway or proxy might: the envelope without its data.
        return json_response(200, {"status": "ok"})
    if kind == "malformed_200":
        return _malformed(state, body)
    return Response(encode(body), status_code=status, media_type="application/json")


async def _identify(state: SimState, request: Request, handler: Handler | None,
                    rec: dict[str, Any]) -> None:
    """Record the account and client order id of a request answered by a fault. Best effort:
    a body that does not parse simply leaves them unset (and counts no bad token)."""
    if handler is not None:
        auth = request.headers.get("authorization", "")
        token = auth[6:].strip() if auth.startswith("Token ") else ""
        rec["account"] = state.engine.tokens.get(token) or None
    try:
        params = await _params(request)
    except api.BadInput:
        return
    cid = params.get("clientOrderId")
    if isinstance(cid, str):
        rec["client_order_id"] = cid


def _malformed(state: SimState, body: dict[str, Any]) -> Response:
    """A 200 whose body is not the documented shape, one of :data:`MALFORMED_VARIANTS`."""
    variant = state.faults.rng.choice(MALFORMED_VARIANTS)
    if variant == "html_page":
        return Response(b"<html><body>Please wait...</body></html>", status_code=200, media_type="text/html")
    if variant == "truncated_json":
        raw = msgspec.json.encode(body)
        return Response(raw[: max(1, len(raw) // 2)], status_code=200, media_type="application/json")
    if variant == "null_data":
        return json_response(200, {k: (v if k in ("status", "s") else None) for k, v in body.items()})
    return Response(b"", status_code=200, media_type="application/json")


def _too_many(back_off: int, limit: int, headers: dict[str, str] | None = None) -> Response:
    body = {"status": "failed", "code": "TooManyRequests",
            "message": f"تعداد درخواست‌ها بیش از حد مجاز است. لطفا {back_off} ثانیه صبر نمایید.",
            "backOff": back_off, "limit": limit}
    return json_response(429, body, headers=headers)


async def _sleep_or_stop(state: SimState, seconds: float) -> None:
    try:
        await asyncio.wait_for(state.stopping.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def _hold(state: SimState, request: Request, seconds: float) -> None:
    """Hang: until ``seconds`` pass, the server stops, or the client goes away."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not state.stopping.is_set():
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return
        await _sleep_or_stop(state, min(0.1, left))
        if await request.is_disconnected():
            return


def build_app(state: SimState) -> Starlette:
    """The simulator's ASGI app over ``state``."""
    def private(path: str, endpoint: str, handler: Handler, methods: list[str]) -> Route:
        return Route(path, nobitex_endpoint(state, endpoint, handler), methods=methods)

    def public(path: str, endpoint: str, fn: Callable[[Request, dict[str, Any]], api.Result],
               encode: Callable[[Any], bytes] = msgspec.json.encode) -> Route:
        return Route(path, nobitex_endpoint(state, endpoint, None, fn, encode), methods=["GET", "POST"])

    routes = [
        private("/market/orders/add", "orders_add", api.orders_add, ["POST"]),
        private("/market/orders/status", "orders_status", api.orders_status, ["POST", "GET"]),
        private("/market/orders/list", "orders_list", api.orders_list, ["GET", "POST"]),
        private("/market/orders/update-status", "orders_cancel", api.orders_cancel, ["POST"]),
        private("/market/orders/cancel-old", "orders_cancel_old", api.orders_cancel_old, ["POST"]),
        private("/market/trades/list", "trades_list", api.trades_list, ["GET", "POST"]),
        private("/users/wallets/list", "wallets_list", api.wallets_list, ["GET", "POST"]),
        private("/v2/wallets", "wallets_v2", api.wallets_v2, ["GET", "POST"]),
        private("/users/wallets/balance", "wallets_balance", api.wallets_balance, ["POST"]),
        public("/v3/orderbook/{symbol}", "orderbook",
               lambda r, p: api.orderbook(state, r.path_params["symbol"])),
        public("/v2/trades/{symbol}", "public_trades",
               lambda r, p: api.public_trades(state, r.path_params["symbol"])),
        public("/market/stats", "stats", lambda r, p: api.stats(state, p)),
        public("/v2/options", "options", lambda r, p: api.options(state)),
        public("/market/udf/history", "udf_history", lambda r, p: candles.udf_history(state, p),
               candles.NUMBERS.encode),
        *admin_routes(state),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        # Nobitex answers an unknown path with an HTML "Not Found" page (docs-api issue #286).
        return Response(b"<h1>Not Found</h1>", status_code=404, media_type="text/html")

    async def bad_method(request: Request, exc: Exception) -> Response:
        return json_response(405, {"detail": f'Method "{request.method}" not allowed.'})

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: bad_method})
