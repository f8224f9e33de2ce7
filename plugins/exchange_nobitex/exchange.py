"""NobitexExchange: the kernel's exchange contract over Nobitex's REST API.

Connections: the kernel's ``ConnectionPool`` holds up to ``max_connections`` httpx clients, each
limited to one TCP connection (so a pooled "connection" is one keep-alive socket). The pool picks
the least-loaded one, bounds the wait for a free one, and replaces a client whose requests fail
at the transport level (reset, timeout, protocol error): a wedged socket is thrown away instead of
being reused. Idle ones are pruned by the pool's maintenance task when the kernel hands
``start`` its task group.

Every request goes through, in this order (all but the endpoint limits are the kernel's
``hrkernel.resilience`` primitives): market data and markets first ask a ``TTLCache``
(cache-aside, single flight, stale value served during an outage); reads are wrapped in a
``RetryPolicy`` (idempotent reads only; honours ``retry_after``); each attempt then passes the
per-endpoint limits (:class:`~hrkernel_nobitex.guards.EndpointLimits`: local counting plus the
server's 429 ``backOff``), the ``Bulkhead`` (a bound on requests in flight), the
``CircuitBreaker`` (only timeouts, 5xx, dropped connections and garbage count; refusals such as
``SmallOrder`` or ``OverValueOrder`` do not), then httpx.
Placement and cancellation are never retried: a placement whose answer was lost raises
:class:`~hrkernel.exchange.errors.UnknownOutcomeError`, resolved by
:meth:`NobitexExchange.find_order_by_client_id`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, TypeVar

import anyio
import httpx
import structlog

from hrkernel.exchange import (
    Balance,
    Fill,
    Market,
    MarketStats,
    MarketTrade,
    Order,
    OrderBook,
    OrderRequest,
    OrderType,
    Side,
)
from hrkernel.exchange import errors as ex
from hrkernel.resilience import (
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    ConnectionPool,
    PoolClosedError,
    PoolConfig,
    PoolError,
    RetryPolicy,
    TTLCache,
)
from hrkernel_nobitex import wire
from hrkernel_nobitex.config import DEFAULT_LIMITS, NobitexConfig
from hrkernel_nobitex.guards import EndpointLimits

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

CLIENT_ORDER_ID_MAX = 32
# 429 without a usable backOff: Nobitex's limits are per minute or per 10 minutes; a minute is
# the shortest window, and ignoring a 429 costs a 2-minute block of the token.
DEFAULT_BACKOFF = 60.0


def _is_breaker_failure(exc: BaseException) -> bool:
    return not isinstance(exc, ex.ExchangeError) or exc.counts_as_failure


def round_amount(amount: Decimal, step: Decimal) -> Decimal:
    """Down to a multiple of ``step`` (Nobitex would do the same silently)."""
    return ((amount / step).to_integral_value(rounding=ROUND_FLOOR) * step).quantize(step)


def round_price(price: Decimal, step: Decimal, side: Side) -> Decimal:
    """To a multiple of ``step``, never worse for us: a buy down, a sell up."""
    mode = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
    return ((price / step).to_integral_value(rounding=mode) * step).quantize(step)


def _plain(value: Decimal) -> str:
    """A decimal string without exponent (``"0.000100"``, never ``"1E-4"``)."""
    text = format(value, "f")
    return text


class NobitexExchange:
    """See the module docstring. Built without I/O; ``start()`` opens the HTTP client."""

    def __init__(
        self,
        config: NobitexConfig,
        *,
        name: str = "nobitex",
        instance_id: str = "",
        log: Any = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.instance_id = instance_id
        self.clock = clock
        self.sleep = sleep
        self._rng = rng or random.Random()
        self.log = (log or structlog.get_logger("hrkernel_nobitex")).bind(exchange=name)
        limits = dict(DEFAULT_LIMITS)
        for key, override in config.rate_limits.items():
            limits[key] = (override.requests, float(override.per))
        self.limits = EndpointLimits(limits, enabled=config.rate_limit, clock=clock)
        stale = float(config.stale_for)
        self.markets_cache: TTLCache[list[Market]] = TTLCache(
            f"exchange:{name}:markets", float(config.markets_ttl), max_stale=stale, clock=clock)
        self.market_data_cache: TTLCache[Any] = TTLCache(
            f"exchange:{name}:market-data", float(config.market_data_ttl), max_stale=stale, max_size=1024,
            clock=clock)
        self.retry = RetryPolicy(
            f"exchange:{name}:reads",
            max_attempts=max(1, config.retry_attempts),
            initial_delay=float(config.retry_base_delay),
            max_delay=float(config.retry_max_delay),
            retryable=self._read_is_retryable,
            sleep=sleep,
            clock=clock,
            random=self._rng.random,
        )
        self.breaker = CircuitBreaker(
            f"exchange:{name}",
            failure_threshold=config.breaker_failure_threshold,
            reset_timeout=float(config.breaker_reset_timeout),
            is_failure=_is_breaker_failure,
            clock=clock,
        )
        self.bulkhead = Bulkhead(f"exchange:{name}", max(1, config.max_concurrent),
                                 max_queue=config.bulkhead_queue, queue_timeout=float(config.bulkhead_wait))
        self.pool: ConnectionPool[httpx.AsyncClient] | None = None
        self._maintenance: anyio.CancelScope | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def started(self) -> bool:
        return self.pool is not None

    def _new_client(self) -> httpx.AsyncClient:
        cfg = self.config
        headers = {"User-Agent": f"TraderBot/{cfg.bot_name}", "Accept": "application/json"}
        if cfg.send_instance_headers and self.instance_id:
            headers["X-HR-Instance"] = self.instance_id
        return httpx.AsyncClient(
            base_url=cfg.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(float(cfg.timeout), connect=float(cfg.connect_timeout)),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            follow_redirects=False,
        )

    async def start(self, tg: Any = None) -> None:
        """Open the connection pool. ``tg`` (the kernel's task group, optional) runs the pool's
        idle pruning until :meth:`aclose`."""
        if self.pool is not None:
            return
        cfg = self.config
        self.pool = ConnectionPool(
            f"exchange:{self.name}",
            self._new_client,
            PoolConfig(min_connections=0, max_connections=max(1, cfg.max_connections),
                       connection_timeout=cfg.bulkhead_wait, idle_timeout=cfg.idle_timeout,
                       max_queue=cfg.bulkhead_queue, max_in_flight_per_connection=1),
            is_broken=lambda exc: isinstance(exc, httpx.TransportError),
            clock=self.clock,
        )
        if tg is not None:
            tg.start_soon(self._maintain)
        self.log.info("exchange_started", base_url=cfg.base_url, authenticated=bool(cfg.token))

    async def _maintain(self) -> None:
        pool = self.pool
        if pool is None:
            return
        with anyio.CancelScope() as scope:
            self._maintenance = scope
            await pool.run()

    async def aclose(self) -> None:
        pool, self.pool = self.pool, None
        if self._maintenance is not None:
            self._maintenance.cancel()
            self._maintenance = None
        if pool is not None:
            await pool.aclose()

    async def __aenter__(self) -> NobitexExchange:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "exchange",
            "base_url": self.config.base_url,
            "breaker": self.breaker.state.value,
            "bulkhead_in_flight": self.bulkhead.in_flight,
            "connections": self.pool.metrics().size if self.pool is not None else 0,
            "rate_limits": self.limits.snapshot(),
        }

    # ------------------------------------------------------------------ transport

    async def _send(
        self, endpoint: str, method: str, path: str, *, params: dict[str, Any] | None,
        json: dict[str, Any] | None, auth: bool, idempotent: bool, headers: dict[str, str] | None,
        client_order_id: str | None,
    ) -> tuple[int, bytes]:
        pool = self.pool
        if pool is None:
            raise ex.ExchangeError("exchange not started (call start() first)", exchange=wire.EXCHANGE, endpoint=endpoint)
        hdrs = dict(headers or {})
        if auth:
            if not self.config.token:
                raise ex.AuthenticationError(
                    "no token configured (set token = \"${NOBITEX_TOKEN}\")", exchange=wire.EXCHANGE, endpoint=endpoint
                )
            hdrs["Authorization"] = f"Token {self.config.token}"
        try:
            async with pool.acquire() as client:
                response = await client.request(method, path, params=params, json=json, headers=hdrs)
        except PoolClosedError:
            raise ex.ExchangeError("exchange closed", exchange=wire.EXCHANGE, endpoint=endpoint) from None
        except PoolError as exc:
            # No free connection in time: nothing was sent; local congestion, not an outage.
            raise ex.RateLimitedError(f"no free connection ({exc})", retry_after=None,
                                      exchange=wire.EXCHANGE, endpoint=endpoint) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached the exchange: safe to report as plain unavailability.
            kind = ex.ExchangeTimeoutError if isinstance(exc, httpx.TimeoutException) else ex.ExchangeUnavailableError
            raise kind(f"could not connect ({type(exc).__name__})", exchange=wire.EXCHANGE, endpoint=endpoint) from exc
        except httpx.HTTPError as exc:
            # The request was (maybe) sent and the answer lost: a read can be repeated, a
            # state change cannot.
            if not idempotent:
                raise ex.UnknownOutcomeError(
                    f"request sent but no answer ({type(exc).__name__}); the outcome is unknown",
                    exchange=wire.EXCHANGE, endpoint=endpoint, client_order_id=client_order_id,
                ) from exc
            kind = ex.ExchangeTimeoutError if isinstance(exc, httpx.TimeoutException) else ex.ExchangeUnavailableError
            raise kind(f"no answer ({type(exc).__name__})", exchange=wire.EXCHANGE, endpoint=endpoint) from exc
        body = response.content
        error = wire.error_for(response.status_code, body, endpoint, response.headers.get("retry-after"))
        if error is not None:
            if isinstance(error, ex.RateLimitedError):
                self.limits.back_off(endpoint, error.retry_after if error.retry_after is not None else DEFAULT_BACKOFF)
            if not idempotent and isinstance(error, ex.ExchangeUnavailableError):
                # A 5xx or garbage answer to a state change proves nothing: a gateway (Cloudflare
                # in front of Nobitex) can fail after the origin executed the request.
                raise self._unknown(error, client_order_id) from error
            raise error
        return response.status_code, body

    @staticmethod
    def _unknown(error: ex.ExchangeError, client_order_id: str | None) -> ex.UnknownOutcomeError:
        return ex.UnknownOutcomeError(
            f"{type(error).__name__} answering a state change; it may or may not have been executed",
            exchange=wire.EXCHANGE, endpoint=error.endpoint, code=error.code,
            exchange_message=error.exchange_message, status=error.status, raw=error.raw,
            client_order_id=client_order_id,
        )

    async def _attempt(self, endpoint: str, method: str, path: str, **kw: Any) -> tuple[int, bytes]:
        wait = self.limits.delay(endpoint)
        if wait > 0:
            if wait > float(self.config.rate_limit_max_wait):
                raise ex.RateLimitedError(
                    f"local rate limit for {endpoint!r} (Nobitex's documented limit); next slot in {wait:.1f}s",
                    retry_after=wait, exchange=wire.EXCHANGE, endpoint=endpoint,
                )
            await self.sleep(wait)
        try:
            await self.bulkhead.acquire()
        except BulkheadFullError as exc:
            raise ex.RateLimitedError(
                f"too many requests in flight ({exc})", retry_after=None, exchange=wire.EXCHANGE, endpoint=endpoint,
            ) from exc
        try:
            self.limits.record(endpoint)
            return await self.breaker.call(self._send, endpoint, method, path, **kw)
        except CircuitOpenError as exc:
            err = ex.ExchangeUnavailableError(
                f"circuit breaker {exc.name!r} open (next trial in {exc.retry_after:.1f}s)",
                exchange=wire.EXCHANGE, endpoint=endpoint,
            )
            err.retryable = False
            raise err from exc
        finally:
            self.bulkhead.release()

    def _read_is_retryable(self, exc: BaseException) -> bool:
        """Reads only (placement/cancel never reach the policy). A 429 is waited out only when
        its ``backOff`` is short; a refusal is an answer, never retried."""
        if not isinstance(exc, ex.ExchangeError) or not exc.retryable:
            return False
        if isinstance(exc, ex.RateLimitedError):
            return exc.retry_after is not None and exc.retry_after <= float(self.config.rate_limit_max_wait)
        return True

    async def _call(
        self, endpoint: str, method: str, path: str, kind: type[T], *, params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None, auth: bool = True, idempotent: bool = True,
        headers: dict[str, str] | None = None, client_order_id: str | None = None,
    ) -> T:
        async def once() -> T:
            status, body = await self._attempt(
                endpoint, method, path, params=params, json=json, auth=auth, idempotent=idempotent,
                headers=headers, client_order_id=client_order_id,
            )
            try:
                return wire.decode(body, kind, endpoint, status)
            except ex.MalformedResponseError as exc:
                if idempotent:
                    raise
                raise self._unknown(exc, client_order_id) from exc

        if not idempotent:
            return await once()  # never retried: see UnknownOutcomeError
        return await self.retry.call(once)

    # ------------------------------------------------------------------ markets

    async def markets(self) -> list[Market]:
        return list(await self.markets_cache.get("markets", self._load_markets))

    async def _load_markets(self) -> list[Market]:
        reply = await self._call("options", "GET", "/v2/options", wire.OptionsReply, auth=False)
        opts = reply.nobitex
        out: list[Market] = []
        for symbol, amount_step in sorted(opts.amountPrecisions.items()):
            price_step = opts.pricePrecisions.get(symbol)
            if price_step is None:
                continue
            try:
                base, quote = wire.split_symbol(symbol)
            except ex.ExchangeError:
                continue
            min_notional = opts.minOrders.get(quote.lower(), Decimal(0))
            out.append(Market(symbol=symbol, base=base, quote=quote, amount_step=amount_step,
                              price_step=price_step, min_notional=min_notional))
        return out

    async def market(self, symbol: str) -> Market:
        wanted = symbol.upper()
        for m in await self.markets():
            if m.symbol == wanted:
                return m
        raise ex.InvalidOrderError(f"no market {symbol!r} on Nobitex", exchange=wire.EXCHANGE, code="InvalidMarketPair")

    # ------------------------------------------------------------------ orders

    async def prepare(self, request: OrderRequest) -> dict[str, Any]:
        """The JSON body for ``/market/orders/add``, rounded and checked locally."""
        where = f"order {request.client_order_id or ''} {request.side} {request.amount} {request.symbol}".strip()
        market = await self.market(request.symbol)
        cid = request.client_order_id
        if cid is not None and not 0 < len(cid) <= CLIENT_ORDER_ID_MAX:
            raise ex.InvalidOrderError(f"{where}: client_order_id must be 1..32 characters, got {len(cid)}",
                                       exchange=wire.EXCHANGE)
        if not (request.amount.is_finite() and (request.price is None or request.price.is_finite())):
            raise ex.InvalidOrderError(f"{where}: amount and price must be finite numbers", exchange=wire.EXCHANGE)
        try:
            amount = round_amount(request.amount, market.amount_step)
            price = None if request.price is None else round_price(request.price, market.price_step, request.side)
        except ArithmeticError:
            raise ex.InvalidOrderError(f"{where}: amount or price out of range for {market.symbol}",
                                       exchange=wire.EXCHANGE) from None
        if amount <= 0:
            raise ex.InvalidOrderError(
                f"{where}: amount rounds down to 0 at {market.symbol}'s step {market.amount_step}",
                exchange=wire.EXCHANGE, code="SmallOrder")
        if request.price is not None and (price is None or price <= 0):
            raise ex.InvalidOrderError(f"{where}: price must be > 0 (after rounding to {market.price_step})",
                                       exchange=wire.EXCHANGE, code="InvalidOrderPrice")
        if request.type is OrderType.LIMIT and price is None:
            raise ex.InvalidOrderError(f"{where}: a limit order needs a price", exchange=wire.EXCHANGE,
                                       code="InvalidOrderPrice")
        reference = price if price is not None else await self._reference_price(market.symbol, request.side)
        if reference is not None and amount * reference < market.min_notional:
            raise ex.InvalidOrderError(
                f"{where}: notional {amount * reference} {market.quote} is below the minimum "
                f"{market.min_notional} {market.quote}", exchange=wire.EXCHANGE, code="SmallOrder")
        src, dst = wire.request_codes(market.symbol)
        body: dict[str, Any] = {
            "type": request.side.value,
            "execution": request.type.value,
            "srcCurrency": src,
            "dstCurrency": dst,
            "amount": _plain(amount),
        }
        if price is not None:
            body["price"] = _plain(price)
        if cid is not None:
            body["clientOrderId"] = cid
        if self.config.pro:
            body["pro"] = "yes"
        return body

    async def _reference_price(self, symbol: str, side: Side) -> Decimal | None:
        """The price a market order without a price guard would meet (best ask for a buy, best
        bid for a sell, from the cached book); None when the book is unavailable or empty, in
        which case Nobitex's own ``SmallOrder`` check decides."""
        try:
            book = await self.order_book(symbol)
        except ex.ExchangeError:
            return None
        levels = book.asks if side is Side.BUY else book.bids
        return levels[0].price if levels else None

    async def place_order(self, request: OrderRequest, *, fencing_token: int | None = None) -> Order:
        body = await self.prepare(request)
        headers: dict[str, str] = {}
        if fencing_token is not None and self.config.send_instance_headers:
            headers["X-HR-Fencing-Token"] = str(fencing_token)
        reply = await self._call("place", "POST", "/market/orders/add", wire.OrderReply, json=body,
                                 idempotent=False, headers=headers, client_order_id=request.client_order_id)
        order = wire.order_from_wire(reply.order, "place")
        self.log.info("order_placed", symbol=order.symbol, side=order.side.value, exchange_id=order.exchange_id,
                      client_order_id=order.client_order_id, status=order.status.value)
        return order

    @staticmethod
    def _which(exchange_id: str | None, client_order_id: str | None, id_key: str) -> dict[str, Any]:
        if exchange_id is not None:
            try:
                return {id_key: int(exchange_id)}
            except ValueError:
                raise ex.OrderNotFoundError(f"Nobitex order ids are integers, got {exchange_id!r}",
                                            exchange=wire.EXCHANGE) from None
        if client_order_id is not None:
            return {"clientOrderId": client_order_id}
        raise ValueError("give exchange_id or client_order_id")

    async def get_order(self, *, exchange_id: str | None = None, client_order_id: str | None = None) -> Order:
        body = self._which(exchange_id, client_order_id, "id")
        reply = await self._call("status", "POST", "/market/orders/status", wire.OrderReply, json=body)
        return wire.order_from_wire(reply.order, "status")

    async def cancel_order(self, *, exchange_id: str | None = None, client_order_id: str | None = None) -> Order:
        body = self._which(exchange_id, client_order_id, "order") | {"status": "canceled"}
        reply = await self._call("cancel", "POST", "/market/orders/update-status", wire.CancelReply, json=body,
                                 idempotent=False, client_order_id=client_order_id)
        if reply.order is not None:
            return wire.order_from_wire(reply.order, "cancel")
        if exchange_id is not None:
            return await self.get_order(exchange_id=exchange_id)
        # A canceled order is invisible to status-by-clientOrderId; look further.
        assert client_order_id is not None
        order = await self.find_order_by_client_id(client_order_id)
        if order is None:
            raise ex.OrderNotFoundError(f"order {client_order_id!r} vanished after its cancel",
                                        exchange=wire.EXCHANGE, endpoint="cancel")
        return order

    async def cancel_all(self, symbol: str | None = None) -> None:
        """Kill switch: ``/market/orders/cancel-old`` for every active order (of ``symbol``)."""
        body: dict[str, Any] = {}
        if symbol is not None:
            body["srcCurrency"], body["dstCurrency"] = wire.request_codes(symbol)
        await self._call("cancel_old", "POST", "/market/orders/cancel-old", wire.Envelope, json=body, idempotent=False)

    async def list_orders(self, symbol: str | None = None, *, status: str = "open", page: int = 1,
                          page_size: int = 100) -> list[Order]:
        params: dict[str, Any] = {"status": status, "details": 2, "order": "-id", "page": page, "pageSize": page_size}
        if symbol is not None:
            params["srcCurrency"], params["dstCurrency"] = wire.request_codes(symbol)
        reply = await self._call("list_orders", "GET", "/market/orders/list", wire.OrdersReply, params=params)
        return [wire.order_from_wire(w, "list_orders") for w in reply.orders]

    async def list_open_orders(self, symbol: str | None = None) -> list[Order]:
        return await self.list_orders(symbol, status="open")

    async def find_order_by_client_id(self, client_order_id: str, *, symbol: str | None = None,
                                      pages: int = 3) -> Order | None:
        """Open orders first (status by clientOrderId), then every state (orders/list status=all,
        newest first, up to ``pages`` pages), then the orders behind recent fills
        (trades/list, looked up by id): a Done or Canceled order is invisible to the first."""
        try:
            return await self.get_order(client_order_id=client_order_id)
        except ex.OrderNotFoundError:
            pass
        except ex.InvalidOrderError:
            pass
        seen: set[str] = set()
        for page in range(1, pages + 1):
            orders = await self.list_orders(symbol, status="all", page=page)
            for order in orders:
                if order.client_order_id == client_order_id:
                    return order
                seen.add(order.exchange_id)
            if len(orders) < 100:
                break
        for fill in await self.recent_fills(symbol):
            if fill.order_id in seen:
                continue
            seen.add(fill.order_id)
            order = await self.get_order(exchange_id=fill.order_id)
            if order.client_order_id == client_order_id:
                return order
        return None

    # ------------------------------------------------------------------ fills and balances

    async def recent_fills(self, symbol: str | None = None) -> list[Fill]:
        params: dict[str, Any] = {}
        if symbol is not None:
            params["srcCurrency"], params["dstCurrency"] = wire.request_codes(symbol)
        reply = await self._call("list_trades", "GET", "/market/trades/list", wire.TradesReply, params=params)
        return [wire.fill_from_wire(t) for t in reply.trades]

    async def order_fills(self, order: Order) -> list[Fill]:
        return [f for f in await self.recent_fills(order.symbol) if f.order_id == order.exchange_id]

    async def balances(self) -> list[Balance]:
        reply = await self._call("wallets", "GET", "/users/wallets/list", wire.WalletsReply)
        return [wire.balance_from_wire(w) for w in reply.wallets]

    # ------------------------------------------------------------------ market data

    async def _cached(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        return await self.market_data_cache.get(key, load)  # type: ignore[no-any-return]

    async def order_book(self, symbol: str) -> OrderBook:
        sym = symbol.upper()
        wire.split_symbol(sym)

        async def load() -> OrderBook:
            reply = await self._call("orderbook", "GET", f"/v3/orderbook/{sym}", wire.BookReply, auth=False)
            return wire.book_from_wire(sym, reply)

        return await self._cached(f"book:{sym}", load)

    async def recent_trades(self, symbol: str) -> list[MarketTrade]:
        sym = symbol.upper()
        wire.split_symbol(sym)

        async def load() -> list[MarketTrade]:
            reply = await self._call("trades", "GET", f"/v2/trades/{sym}", wire.PublicTradesReply, auth=False)
            return [wire.public_trade_from_wire(sym, t) for t in reply.trades]

        return await self._cached(f"trades:{sym}", load)

    async def market_stats(self, symbol: str) -> MarketStats:
        sym = symbol.upper()
        src, dst = wire.request_codes(sym)

        async def load() -> MarketStats:
            reply = await self._call("stats", "GET", "/market/stats", wire.StatsReply, auth=False,
                                     params={"srcCurrency": src, "dstCurrency": dst})
            stats = reply.stats.get(f"{src}-{dst}")
            if stats is None:
                raise ex.InvalidOrderError(f"no stats for {sym!r} (no such market?)", exchange=wire.EXCHANGE,
                                           endpoint="stats", code="InvalidMarketPair")
            return wire.stats_from_wire(sym, stats)

        return await self._cached(f"stats:{sym}", load)

    async def ping(self) -> float:
        """Latency of one uncached public order-book request (300/min budget)."""
        start = time.perf_counter()
        symbol = self.config.ping_symbol.upper()
        await self._call("orderbook", "GET", f"/v3/orderbook/{symbol}", wire.Envelope, auth=False)
        return time.perf_counter() - start
