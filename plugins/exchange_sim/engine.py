"""The matching engine: accounts, a moving synthetic book per market, limit and market orders.

The book of each market is synthetic liquidity around a mid price that moves one step at a time
(a seeded random walk or a replayed price series), plus the accounts' resting limit orders.
Liquidity taken at a level stays taken until the next step. Balances never go negative: an open
order blocks what it may spend (the quote for buys at its limit price, the base for sells), a
fill spends from the blocked part, fees come out of what the fill pays (as on Nobitex: a buyer
pays in the coin, a seller in the quote).

The engine is synchronous and does no I/O; the HTTP layer calls it from one event loop, so each
call is atomic.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from hrkernel_sim.config import MarketConfig, SimConfig
from hrkernel_sim.markets import round_amount, round_price, split_symbol

OPEN_STATES = ("New", "Active", "Inactive")
TAPE_LENGTH = 100_000
"""Trades kept per market for ``/market/udf/history`` (older ones drop out of the candles)."""
_FEE_PLACES = Decimal("1E-10")


class OrderRejected(Exception):
    """A placement Nobitex would refuse with ``{"status":"failed","code":...}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Order:
    id: int
    account: str
    symbol: str
    src: str
    dst: str
    side: str  # "buy" | "sell"
    execution: str  # "Limit" | "Market"
    amount: Decimal
    price: Decimal | None
    created_at: float
    client_order_id: str | None = None
    status: str = "Active"
    matched: Decimal = Decimal(0)
    total: Decimal = Decimal(0)
    """Quote value of the fills (sum of price × amount)."""
    fee: Decimal = Decimal(0)
    blocked: Decimal = Decimal(0)
    block_price: Decimal = Decimal(0)
    ref_price: Decimal = Decimal(0)
    """The price the order was valued at when placed (its limit, or the best price)."""
    instance: str | None = None
    fencing_token: str | None = None
    request_seq: int | None = None

    @property
    def unmatched(self) -> Decimal:
        return self.amount - self.matched

    @property
    def average_price(self) -> Decimal:
        return self.total / self.matched if self.matched else Decimal(0)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES


@dataclass
class Trade:
    id: int
    order_id: int
    account: str
    symbol: str
    src: str
    dst: str
    side: str
    price: Decimal
    amount: Decimal
    total: Decimal
    fee: Decimal
    timestamp: float


@dataclass
class PublicTrade:
    time: float
    price: Decimal
    volume: Decimal
    side: str


@dataclass
class Market:
    cfg: MarketConfig
    src: str
    dst: str
    mid: Decimal
    last_price: Decimal
    steps: int = 0
    taken: dict[tuple[str, int], Decimal] = field(default_factory=dict)
    public_trades: deque[PublicTrade] = field(default_factory=lambda: deque(maxlen=100))
    tape: deque[tuple[float, Decimal, Decimal]] = field(default_factory=lambda: deque(maxlen=TAPE_LENGTH))
    """Every price the market traded at: ``(time, price, volume)``, oldest first (OHLC candles)."""
    day_open: Decimal = Decimal(0)
    day_high: Decimal = Decimal(0)
    day_low: Decimal = Decimal(0)
    volume_src: Decimal = Decimal(0)
    volume_dst: Decimal = Decimal(0)
    updated_at: float = 0.0

    @property
    def symbol(self) -> str:
        return self.cfg.symbol

    def level_price(self, side: str, index: int) -> Decimal:
        """Price of synthetic level ``index`` on ``side`` ("ask" or "bid")."""
        offset = Decimal(repr(self.cfg.spread + index * self.cfg.step))
        raw = self.mid * (1 + offset) if side == "ask" else self.mid * (1 - offset)
        return round_price(raw, self.cfg.price_precision)

    def level_size(self, side: str, index: int) -> Decimal:
        return max(Decimal(0), self.cfg.level_size - self.taken.get((side, index), Decimal(0)))


class Engine:
    """Accounts, markets, orders and trades of one simulated exchange."""

    def __init__(self, config: SimConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.rng = random.Random(config.seed)
        self.markets: dict[str, Market] = {}
        for mc in config.markets:
            src, dst = split_symbol(mc.symbol)
            price = round_price(Decimal(mc.price), mc.price_precision)
            self.markets[mc.symbol.upper()] = Market(
                cfg=mc, src=src, dst=dst, mid=price, last_price=price, day_open=price,
                day_high=price, day_low=price, updated_at=clock(),
            )
            # The opening price is the first point of the tape, so a quiet market still has a candle.
            self.markets[mc.symbol.upper()].tape.append((clock(), price, Decimal(0)))
        self.tokens = {acc.token: name for name, acc in config.accounts.items()}
        self.balances: dict[str, dict[str, Decimal]] = {}
        self.blocked: dict[str, dict[str, Decimal]] = {}
        for name, acc in config.accounts.items():
            self.balances[name] = {cur: Decimal(v) for cur, v in acc.balances.items()}
            self.blocked[name] = {cur: Decimal(0) for cur in acc.balances}
        self.orders: dict[int, Order] = {}
        self.active: dict[int, Order] = {}
        """Open orders by id, in placement order (what matching and clientOrderId look at)."""
        self.trades: list[Trade] = []
        self._recent: dict[tuple[object, ...], float] = {}
        self._next_order = 1000
        self._next_trade = 5000
        self.version = 0
        """Bumped by every change to accounts, orders or trades (what a snapshot must catch)."""

    # -- lookups -------------------------------------------------------------------------------

    def market(self, src: str, dst: str) -> Market | None:
        for m in self.markets.values():
            if m.src == src and m.dst == dst:
                return m
        return None

    def best(self, market: Market, side: str) -> Decimal:
        """Best price a taker sees on ``side`` ("ask" or "bid"), resting orders included."""
        return self._levels(market, side, exclude=None)[0][0]

    def find_open_by_client_id(self, account: str, client_order_id: str) -> Order | None:
        for order in self.active.values():
            if order.account == account and order.client_order_id == client_order_id:
                return order
        return None

    def wallet(self, account: str, currency: str) -> tuple[Decimal, Decimal]:
        """(balance, blocked) of one currency."""
        return (self.balances[account].get(currency, Decimal(0)),
                self.blocked[account].get(currency, Decimal(0)))

    # -- placement -----------------------------------------------------------------------------

    def place(self, account: str, *, side: str, execution: str, src: str, dst: str,
              amount: Decimal, price: Decimal | None, client_order_id: str | None,
              pro: bool = False, instance: str | None = None, fencing_token: str | None = None,
              request_seq: int | None = None) -> Order:
        market = self.market(src, dst)
        if market is None:
            raise OrderRejected("InvalidMarketPair", "Market Validation Failed")
        if market.cfg.closed:
            raise OrderRejected("MarketClosed", "Market is temporarily closed")
        amount = round_amount(amount, market.cfg.amount_precision)
        if price is not None:
            price = round_price(price, market.cfg.price_precision)
        if execution == "Limit" and (price is None or price <= 0):
            raise OrderRejected("InvalidOrderPrice", "Order price is missing or invalid")
        if amount <= 0:
            raise OrderRejected("SmallOrder", "Order Validation Failed")
        ref = price if price is not None else self.best(market, "ask" if side == "buy" else "bid")
        minimum = self.config.min_order_rls if dst == "rls" else self.config.min_order_usdt
        if amount * ref < minimum:
            raise OrderRejected("SmallOrder", "Order Validation Failed")
        if execution == "Limit":
            assert price is not None
            if abs(price - market.mid) > market.mid * self.config.bad_price_band:
                raise OrderRejected("BadPrice", "Order Validation Failed")
        if client_order_id is not None and self.find_open_by_client_id(account, client_order_id):
            raise OrderRejected("DuplicateClientOrderId", "Duplicate client order id")
        now = self.clock()
        key = (account, side, execution, src, dst, amount, price, client_order_id)
        if not pro and now - self._recent.get(key, -math.inf) < self.config.duplicate_window:
            raise OrderRejected("DuplicateOrder", "Duplicate orders are ignored for 10 seconds")
        # What the order may spend, blocked until it is done or canceled.
        if side == "buy":
            block_price = price if execution == "Limit" else ref
            if execution == "Market":
                block_price = ref * (1 + self.config.market_band)
            assert block_price is not None
            need, cur = amount * block_price, dst
        else:
            block_price, need, cur = Decimal(0), amount, src
        balance, blocked = self.wallet(account, cur)
        if balance - blocked < need:
            raise OrderRejected("OverValueOrder", "Order Validation Failed")
        if len(self._recent) > 10_000:  # forget what can no longer be a duplicate
            window = self.config.duplicate_window
            self._recent = {k: t for k, t in self._recent.items() if now - t < window}
        self._recent[key] = now
        self._next_order += 1
        order = Order(id=self._next_order, account=account, symbol=market.symbol, src=src, dst=dst,
                      side=side, execution=execution, amount=amount, price=price, created_at=now,
                      client_order_id=client_order_id, blocked=need, block_price=block_price,
                      ref_price=ref,
                      instance=instance, fencing_token=fencing_token, request_seq=request_seq)
        self.version += 1
        self.blocked[account][cur] = blocked + need
        self.balances[account].setdefault(cur, Decimal(0))
        self.orders[order.id] = order
        self.active[order.id] = order
        self._take(market, order, maker=False)
        if execution == "Market" and order.status == "Active":
            # Nothing more within the band: the system cancels the rest (matchedAmount may be > 0).
            self._finish(order, "Canceled")
        return order

    def cancel(self, order: Order) -> None:
        if order.is_open:
            self._finish(order, "Canceled")

    # -- the moving book -----------------------------------------------------------------------

    def step(self, count: int = 1) -> None:
        """Move every market's mid price ``count`` steps and fill resting orders it crosses."""
        for _ in range(count):
            for market in self.markets.values():
                self._step_market(market)

    def set_price(self, symbol: str, price: Decimal) -> None:
        market = self.markets[symbol.upper()]
        market.mid = round_price(price, market.cfg.price_precision)
        market.taken.clear()
        self._cross_resting(market)

    def _step_market(self, market: Market) -> None:
        cfg = market.cfg
        if cfg.price_series:
            mid = Decimal(cfg.price_series[market.steps % len(cfg.price_series)])
        else:
            factor = Decimal(repr(round(math.exp(self.rng.gauss(0.0, cfg.volatility)), 12)))
            mid = market.mid * factor
        market.steps += 1
        market.mid = max(round_price(mid, cfg.price_precision), cfg.price_precision)
        market.taken.clear()
        market.updated_at = self.clock()
        # Someone else traded at the new price: the public tape and the day's stats move.
        volume = round_amount(cfg.level_size * Decimal(repr(round(self.rng.random(), 6))),
                              cfg.amount_precision)
        self._record_public(market, market.mid, volume, self.rng.choice(("buy", "sell")))
        self._cross_resting(market)

    def _cross_resting(self, market: Market) -> None:
        for order in list(self.active.values()):
            if order.symbol == market.symbol and order.status == "Active":
                self._take(market, order, maker=True, synthetic_only=True)

    def _levels(self, market: Market, side: str, exclude: str | None,
                synthetic_only: bool = False) -> list[tuple[Decimal, Decimal, object]]:
        """Liquidity on ``side`` best-first: (price, size, source) with source a level index
        or a resting :class:`Order`."""
        levels: list[tuple[Decimal, Decimal, object]] = [
            (market.level_price(side, i), market.level_size(side, i), i)
            for i in range(market.cfg.levels)
        ]
        if not synthetic_only:
            resting_side = "sell" if side == "ask" else "buy"
            for o in self.active.values():
                if (o.symbol == market.symbol and o.status == "Active" and o.side == resting_side
                        and o.execution == "Limit" and o.account != exclude):
                    assert o.price is not None
                    levels.append((o.price, o.unmatched, o))
        if side == "ask":
            levels.sort(key=lambda lv: (lv[0], _order_key(lv[2])))
        else:
            levels.sort(key=lambda lv: (-lv[0], _order_key(lv[2])))
        return levels

    def _take(self, market: Market, order: Order, *, maker: bool,
              synthetic_only: bool = False) -> None:
        """Fill ``order`` against the opposite side as far as its price (or band) allows."""
        side = "ask" if order.side == "buy" else "bid"
        levels = self._levels(market, side, exclude=order.account, synthetic_only=synthetic_only)
        if order.price is not None:
            limit = order.price
            if order.execution == "Market":
                band = 1 + self.config.market_band if order.side == "buy" else 1 - self.config.market_band
                limit = order.price * band
        else:
            band = 1 + self.config.market_band if order.side == "buy" else 1 - self.config.market_band
            limit = levels[0][0] * band
        for price, size, source in levels:
            if order.unmatched <= 0:
                break
            if (order.side == "buy" and price > limit) or (order.side == "sell" and price < limit):
                break
            qty = min(order.unmatched, size)
            if qty <= 0:
                continue
            if isinstance(source, Order):
                # Two accounts trade: the resting order is the maker and sets the price.
                self._fill(source, price, qty, maker=True)
                self._fill(order, price, qty, maker=False)
            else:
                assert isinstance(source, int)
                side_key = (side, source)
                market.taken[side_key] = market.taken.get(side_key, Decimal(0)) + qty
                fill_price = order.price if maker and order.price is not None else price
                self._fill(order, fill_price, qty, maker=maker)
            self._record_public(market, price, qty, order.side)

    def _fill(self, order: Order, price: Decimal, qty: Decimal, *, maker: bool) -> None:
        rate = self.config.maker_fee if maker else self.config.taker_fee
        self.version += 1
        acct, bal, blk = order.account, self.balances[order.account], self.blocked[order.account]
        value = price * qty
        if order.side == "buy":
            fee = (qty * rate).quantize(_FEE_PLACES, rounding=ROUND_DOWN)
            release = min(order.blocked, qty * order.block_price)
            bal[order.dst] -= value
            blk[order.dst] -= release
            order.blocked -= release
            bal[order.src] = bal.get(order.src, Decimal(0)) + qty - fee
            self.blocked[acct].setdefault(order.src, Decimal(0))
        else:
            fee = (value * rate).quantize(_FEE_PLACES, rounding=ROUND_DOWN)
            bal[order.src] -= qty
            blk[order.src] -= qty
            order.blocked -= qty
            bal[order.dst] = bal.get(order.dst, Decimal(0)) + value - fee
            self.blocked[acct].setdefault(order.dst, Decimal(0))
        order.matched += qty
        order.total += value
        order.fee += fee
        self._next_trade += 1
        self.trades.append(Trade(id=self._next_trade, order_id=order.id, account=acct,
                                 symbol=order.symbol, src=order.src, dst=order.dst,
                                 side=order.side, price=price, amount=qty, total=value, fee=fee,
                                 timestamp=self.clock()))
        if order.unmatched <= 0:
            self._finish(order, "Done")

    def _finish(self, order: Order, status: str) -> None:
        cur = order.dst if order.side == "buy" else order.src
        self.version += 1
        self.blocked[order.account][cur] -= order.blocked
        order.blocked = Decimal(0)
        order.status = status
        self.active.pop(order.id, None)

    def _record_public(self, market: Market, price: Decimal, volume: Decimal, side: str) -> None:
        market.last_price = price
        market.day_high = max(market.day_high, price)
        market.day_low = min(market.day_low, price)
        market.volume_src += volume
        market.volume_dst += volume * price
        market.public_trades.appendleft(PublicTrade(self.clock(), price, volume, side))
        market.tape.append((self.clock(), price, volume))

    # -- checks --------------------------------------------------------------------------------

    def check_invariants(self) -> list[str]:
        """Broken invariants, as sentences (empty when the books are sound)."""
        problems = []
        for acct, wallets in self.balances.items():
            for cur, bal in wallets.items():
                blk = self.blocked[acct].get(cur, Decimal(0))
                if bal < 0 or blk < 0 or blk > bal:
                    problems.append(f"{acct} {cur}: balance {bal}, blocked {blk}")
        return problems


def _order_key(source: object) -> int:
    return source.id if isinstance(source, Order) else -1
