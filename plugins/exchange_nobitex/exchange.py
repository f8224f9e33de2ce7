"""NobitexExchange: the kernel's exchange contract over Nobitex's REST API.

Operations map onto Nobitex's documented endpoints; every request goes through
:class:`~hrkernel_nobitex.transport.Transport` (limits, bulkhead, breaker, retry of reads,
connection pool, error mapping). Markets and market data are cached with the kernel's
``TTLCache`` (cache-aside, single flight, a stale value served during an outage). Placement and
cancellation are never retried: a placement whose outcome is unknown raises
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
from hrkernel.resilience import TTLCache
from hrkernel_nobitex import wire
from hrkernel_nobitex.budget import Budget
from hrkernel_nobitex.config import NobitexConfig
from hrkernel_nobitex.fills import FillFeed
from hrkernel_nobitex.shared_reads import SharedReads
from hrkernel_nobitex.transport import Clock, Sleep, Transport

T = TypeVar("T")

CLIENT_ORDER_ID_MAX = 32
MAX_FILL_LOOKUPS = 20
"""Orders behind recent fills that ``find_order_by_client_id`` looks up by id, at most."""


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
    """See the module docstring. Built without I/O; ``start()`` opens the connection pool."""

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
        budget: Budget | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.instance_id = instance_id
        self.clock = clock
        self.log = (log or structlog.get_logger("hrkernel_nobitex")).bind(exchange=name)
        self.transport = Transport(config, name=name, instance_id=instance_id, log=self.log, clock=clock,
                                   sleep=sleep, rng=rng or random.Random(), budget=budget)
        self._call = self.transport.call
        self.limits = self.transport.limits
        self.breaker = self.transport.breaker
        self.bulkhead = self.transport.bulkhead
        self.retry = self.transport.retry
        self.fills = FillFeed(self.transport, config, log=self.log)
        self.shared_reads = SharedReads(clock)
        stale = float(config.stale_for)
        self.markets_cache: TTLCache[list[Market]] = TTLCache(
            f"exchange:{name}:markets", float(config.markets_ttl), max_stale=stale, clock=clock)
        self.market_data_cache: TTLCache[Any] = TTLCache(
            f"exchange:{name}:market-data", float(config.market_data_ttl), max_stale=stale, max_size=1024,
            clock=clock)

    # ------------------------------------------------------------------ lifecycle

    @property
    def started(self) -> bool:
        return self.transport.pool is not None

    @property
    def pool(self) -> Any:
        """The kernel ``ConnectionPool`` in use (None before ``start``)."""
        return self.transport.pool

    async def start(self, tg: Any = None) -> None:
        """Open the connection pool; ``tg`` (the kernel's task group) runs its idle pruning."""
        if self.started:
            return
        await self.transport.start(tg)
        self.log.info("exchange_started", base_url=self.config.base_url, authenticated=bool(self.config.token))

    async def aclose(self) -> None:
        await self.transport.aclose()
        if self.limits.budget is not None:
            await self.limits.budget.aclose()

    async def __aenter__(self) -> NobitexExchange:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def describe(self) -> dict[str, Any]:
        pool = self.transport.pool
        return {
            "name": self.name,
            "kind": "exchange",
            "base_url": self.config.base_url,
            "breaker": self.breaker.state.value,
            "bulkhead_in_flight": self.bulkhead.in_flight,
            "connections": pool.metrics().size if pool is not None else 0,
            "rate_limits": self.limits.snapshot(),
            "fills": self.fills.snapshot(),
        }

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
        reply = await self._call("place", "POST", "/market/orders/add", wire.OrderReply, json=body,
                                 idempotent=False, headers=self._fence(fencing_token),
                                 client_order_id=request.client_order_id)
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

    def _fence(self, fencing_token: int | None) -> dict[str, str]:
        if fencing_token is None or not self.config.send_instance_headers:
            return {}
        return {"X-HR-Fencing-Token": str(fencing_token)}

    async def cancel_order(self, *, exchange_id: str | None = None, client_order_id: str | None = None,
                           fencing_token: int | None = None) -> Order:
        body = self._which(exchange_id, client_order_id, "order") | {"status": "canceled"}
        reply = await self._call("cancel", "POST", "/market/orders/update-status", wire.CancelReply, json=body,
                                 idempotent=False, client_order_id=client_order_id,
                                 headers=self._fence(fencing_token))
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

    async def cancel_all(self, symbol: str | None = None, *, fencing_token: int | None = None) -> None:
        """Kill switch: ``/market/orders/cancel-old`` for every active order (of ``symbol``).
        Nobitex leaves untriggered non-OCO stop orders alone (docs-api ``_market_trade.md``)."""
        body: dict[str, Any] = {}
        if symbol is not None:
            body["srcCurrency"], body["dstCurrency"] = wire.request_codes(symbol)
        await self._call("cancel_old", "POST", "/market/orders/cancel-old", wire.Envelope, json=body,
                         idempotent=False, headers=self._fence(fencing_token))

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
        (trades/list, looked up by id): a Done or Canceled order is invisible to the first.

        The lists (the scarce 30-a-minute endpoints) are shared by concurrent look-ups, never with
        an answer older than the call (:mod:`hrkernel_nobitex.shared_reads`): after a takeover,
        twenty look-ups cost two reads of each instead of twenty."""
        try:
            return await self.get_order(client_order_id=client_order_id)
        except ex.OrderNotFoundError:
            pass
        except ex.InvalidOrderError:
            pass
        listed = await self.shared_reads.get(("listed", symbol, pages), lambda: self._listed_orders(symbol, pages))
        for order in listed:
            if order.client_order_id == client_order_id:
                return order
        behind = await self.shared_reads.get(("behind_fills", symbol, pages),
                                             lambda: self._orders_behind_fills(symbol, {o.exchange_id for o in listed}))
        for order in behind:
            if order.client_order_id == client_order_id:
                return order
        return None

    async def _listed_orders(self, symbol: str | None, pages: int) -> list[Order]:
        out: list[Order] = []
        for page in range(1, pages + 1):
            orders = await self.list_orders(symbol, status="all", page=page)
            out.extend(orders)
            if len(orders) < 100:
                break
        return out

    async def _orders_behind_fills(self, symbol: str | None, seen: set[str]) -> list[Order]:
        out: list[Order] = []
        seen = set(seen)
        for fill in await self.recent_fills(symbol):  # newest first
            if fill.order_id in seen:
                continue
            seen.add(fill.order_id)
            if len(out) >= MAX_FILL_LOOKUPS:
                # Past this the status budget (300/min) matters more; the caller may retry later.
                self.log.warning("client_id_resolution_truncated", looked_up=MAX_FILL_LOOKUPS)
                break
            out.append(await self.get_order(exchange_id=fill.order_id))
        return out

    # ------------------------------------------------------------------ fills and balances

    async def recent_fills(self, symbol: str | None = None) -> list[Fill]:
        params: dict[str, Any] = {}
        if symbol is not None:
            params["srcCurrency"], params["dstCurrency"] = wire.request_codes(symbol)
        reply = await self._call("list_trades", "GET", "/market/trades/list", wire.TradesReply, params=params)
        fills = [wire.fill_from_wire(t) for t in reply.trades]
        self.fills.ingest(fills)
        return fills

    async def order_fills(self, order: Order) -> list[Fill]:
        """The fills of ``order``, from the shared trades poll (:mod:`hrkernel_nobitex.fills`):
        no request when its status says nothing is filled or the trades already read add up to
        its filled amount; concurrent calls share one poll; waits for a slot under the limit."""
        return await self.fills.order_fills(order)

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
