"""Prepare: a signal becomes a journaled order, or a refusal with its reason.

``create_order(signal)`` validates the signal against the exchange's market and the risk
limits, derives the client order id from the signal id and journals PREPARED. With ``submit=True``
(the caller sends it at once) the lease is proven first and PREPARED and SUBMITTING are journaled
in ONE commit — one durable write before the order leaves instead of two. No look-up of the signal
id first: the journal's UNIQUE constraint refuses a second order for the same signal at the write,
and the order journaled first is returned then.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

import msgspec

from hrkernel.exchange import Exchange, Market, OrderBook, OrderType, Side, canonical_symbol
from hrkernel.exchange import errors as ex
from hrkernel.orders.base import PipelineCore, log, log_prepared
from hrkernel.orders.errors import (
    JournalError,
    JournalWriteError,
    OrderRejectedError,
    TradingHaltedError,
)
from hrkernel.orders.faults import fault_point
from hrkernel.orders.journal import OrderRecord, OrderState

__all__ = ["PrepareSteps", "Prepared", "Signal", "client_order_id_for"]


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """A request to trade, from anywhere (API, CLI, webhook, a plugin). ``signal_id`` is its
    idempotency key: the same signal id never yields two orders."""

    signal_id: str
    exchange: str
    symbol: str
    side: Side
    amount: Decimal
    type: OrderType = OrderType.LIMIT
    price: Decimal | None = None


def client_order_id_for(exchange: str, signal_id: str) -> str:
    """The client order id of a signal: deterministic, 32 characters, ``[0-9a-z]``."""
    return "hr" + hashlib.sha256(f"{exchange}\x1f{signal_id}".encode()).hexdigest()[:30]



class Prepared(msgspec.Struct, frozen=True):
    """What preparing a signal gave: its order, and whether this call journaled it (``fresh``) or
    it was journaled for the signal already."""

    record: OrderRecord
    fresh: bool


class PrepareSteps(PipelineCore):
    """The prepare phase of :class:`~hrkernel.orders.pipeline.TransactionVerificationPipeline`."""

    async def market(self, exchange: str, symbol: str) -> Market:
        key = (exchange, symbol)
        if key not in self._markets:
            self._markets[key] = await self._exchange(exchange).market(symbol)
        return self._markets[key]

    async def order_book(self, exchange: str, symbol: str) -> OrderBook:
        """The current order book of ``symbol`` on the named exchange."""
        return await self._exchange(exchange).order_book(symbol)

    def order_for_signal(self, signal_id: str) -> OrderRecord | None:
        """The order journaled for ``signal_id``, if any."""
        return self.journal.by_signal(signal_id)

    async def prepare(self, signal: Signal, *, submit: bool = False, placed_elsewhere: bool = False) -> Prepared:
        """Prepare the order for ``signal`` (see :meth:`create_order`) and say whether it is
        new (``fresh``) or the order journaled for the signal already.

        ``placed_elsewhere`` says another instance may have led when the signal arrived (every
        kernel of a pair gets the webhook; journals are per instance) and placed its order: a new
        order then starts UNKNOWN, so it is looked up on the exchange before any placement."""
        prepared = await self._prepare(signal, submit=submit and not placed_elsewhere)
        rec = prepared.record
        if prepared.fresh and placed_elsewhere and rec.state is OrderState.PREPARED:
            rec = await self.journal.record(
                rec.client_order_id, OrderState.UNKNOWN,
                reason="signal accepted before this trading tenure began; looking it up before placing",
            )
            return Prepared(record=rec, fresh=True)
        return prepared

    async def create_order(self, signal: Signal, *, submit: bool = False) -> OrderRecord:
        """Prepare: validate, risk-check and journal PREPARED. The same signal id returns the
        order already journaled for it. A refused signal is journaled FAILED with the reason and
        :class:`OrderRejectedError` is raised; a halt raises :class:`TradingHaltedError` and
        journals nothing (the signal may be sent again later).

        ``submit=True`` says the caller hands the order to :meth:`execute_transaction` at once.
        While the lease is held with margin (and its fence check passes), the order is then
        journaled PREPARED *and* SUBMITTING in one commit — one durable write before the request
        leaves instead of two — and the returned record is SUBMITTING. Otherwise (no margin, or a
        fence check that fails) it is journaled PREPARED alone, exactly as without ``submit``.
        """
        return (await self._prepare(signal, submit=submit)).record

    create_transaction = create_order
    """The design documents' name of :meth:`create_order`."""

    async def _prepare(self, signal: Signal, *, submit: bool) -> Prepared:
        # No look-up of the signal id first: the journal's UNIQUE constraint refuses a second order
        # for the same signal at the write, and the order journaled first is returned then.
        if signal.symbol != canonical_symbol(signal.symbol):  # "BTC/USDT" is journaled as BTCUSDT
            signal = msgspec.structs.replace(signal, symbol=canonical_symbol(signal.symbol))
        if self.config.kill_switch:
            raise TradingHaltedError(f"signal {signal.signal_id}: the kill switch is on ([orders] kill_switch)")
        if self.halts:
            raise TradingHaltedError(f"signal {signal.signal_id}: new orders halted: " + "; ".join(self.halts.values()))
        exchange = self._exchange(signal.exchange)
        coid = client_order_id_for(signal.exchange, signal.signal_id)
        try:
            market = await self.market(signal.exchange, signal.symbol)
        except ex.InvalidOrderError as exc:
            return await self._refuse(signal, coid, None, f"unknown symbol {signal.symbol!r} on {signal.exchange}: {exc}")
        problem = self._check_signal(signal, market)
        if problem is not None:
            return await self._refuse(signal, coid, market, problem)
        if submit:
            # Sent at once: it needs room under max_open_orders now, waiting for it if need be.
            problem = await self.gate.enter(signal.exchange, coid)
            if problem is not None:
                return await self._refuse(signal, coid, market, problem)
        try:
            return await self._prepare_checked(signal, coid, market, exchange, submit=submit)
        finally:
            self.gate.leave(coid)  # counted by the journal from its SUBMITTING on

    async def _prepare_checked(self, signal: Signal, coid: str, market: Market, exchange: Exchange, *,
                               submit: bool) -> Prepared:
        book = await exchange.order_book(signal.symbol)
        # The lease is proven before the risk check: from the check to the commit (and, when
        # fused, on to the request) nothing awaits, so no other order interleaves.
        token = self.lease.token if submit and await self._lease_current() else None
        problem = self._check_risk(signal, market, book)
        if problem is not None:
            return await self._refuse(signal, coid, market, problem)
        record = self._record(signal, coid, market, OrderState.PREPARED)
        # The journal write is awaited (other orders run meanwhile): until it is in the journal's
        # open orders, this order is counted by the others' risk checks from here, taken with no
        # await after its own check, so two orders can never both spend the same balance.
        self._pending[coid] = record
        try:
            if token is not None:
                rec = await self.journal.create(record, then=OrderState.SUBMITTING, attempts=1, fencing_token=token)
                self._unsent[coid] = (self._clock(), token)
            else:
                rec = await self.journal.create(record)
                self._prepared_here[coid] = self.lease.token
        except JournalWriteError:
            raise
        except JournalError:
            # The signal is journaled already (a repeat, or prepared concurrently), or its client
            # order id is, under another signal id: the order was adopted from the exchange (an
            # orphan, or placed by a predecessor after its last replicated row) before this signal
            # came again. That order it is; nothing is placed twice.
            existing = self._journaled_already(signal, coid)
            if existing is None:
                raise
            return Prepared(record=existing, fresh=False)
        finally:
            self._pending.pop(coid, None)
        self.stats["prepared"] += 1
        if token is not None:
            fault_point("after_submitting")
            # Logged once the request has left (see _send_prepared): nothing slower than the
            # journal write stands between it and the send.
        else:
            fault_point("after_prepared")
            log_prepared(rec)
        return Prepared(record=rec, fresh=True)

    def _journaled_already(self, signal: Signal, coid: str) -> OrderRecord | None:
        """The order the journal holds for ``signal`` (a repeat, or prepared concurrently), or under
        its client order id with another signal id: adopted from the exchange (an orphan, or placed
        by a predecessor after its last replicated row) before this signal came again."""
        existing = self.journal.by_signal(signal.signal_id)
        if existing is None:
            existing = self.journal.get(coid)
            if existing is not None:
                log.info("signal_order_adopted_earlier", signal_id=signal.signal_id, client_order_id=coid)
        return existing

    async def _lease_current(self) -> bool:
        """The lease is held with margin and (if it has one) its fence check proves the token current."""
        if not self.lease.holds_with_margin():
            return False
        fence_check = getattr(self.lease, "fence_check", None)
        return fence_check is None or bool(await fence_check())

    @staticmethod
    def _record(signal: Signal, coid: str, market: Market | None, state: OrderState, reason: str | None = None) -> OrderRecord:
        return OrderRecord(
            client_order_id=coid, signal_id=signal.signal_id, exchange=signal.exchange, symbol=signal.symbol,
            base=market.base if market else "", quote=market.quote if market else "", side=signal.side.value,
            type=signal.type.value, amount=signal.amount, price=signal.price, state=state, reason=reason,
        )

    async def _refuse(self, signal: Signal, coid: str, market: Market | None, reason: str) -> Prepared:
        try:
            await self.journal.create(self._record(signal, coid, market, OrderState.FAILED, reason))
        except JournalWriteError:
            raise
        except JournalError:
            existing = self._journaled_already(signal, coid)
            if existing is None:
                raise
            return Prepared(record=existing, fresh=False)  # a repeat of a signal journaled already
        log.warning("order_refused", client_order_id=coid, signal_id=signal.signal_id, reason=reason)
        raise OrderRejectedError(f"signal {signal.signal_id}: {reason}", client_order_id=coid)

    @staticmethod
    def _check_signal(signal: Signal, market: Market) -> str | None:
        """What the signal alone and the market's rules refuse."""
        amount, price = signal.amount, signal.price
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
            return f"amount must be a positive Decimal, got {amount!r}"
        if amount % market.amount_step != 0:
            return f"amount {amount} is not a multiple of the market's amount step {market.amount_step}"
        if signal.type is OrderType.LIMIT and price is None:
            return "a limit order needs a price"
        if price is not None:
            if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
                return f"price must be a positive Decimal, got {price!r}"
            if price % market.price_step != 0:
                return f"price {price} is not a multiple of the market's price step {market.price_step}"
        return None

    def _check_risk(self, signal: Signal, market: Market, book: OrderBook) -> str | None:
        """The risk limits against the book, the open orders and the ledger (no I/O: nothing can
        change them between this check and the journal write that follows it)."""
        cfg = self.config
        amount, price = signal.amount, signal.price
        best_bid = book.bids[0].price if book.bids else None
        best_ask = book.asks[0].price if book.asks else None
        if best_bid is None or best_ask is None:
            if price is None:
                return "no reference price: the order book is empty on one side"
            mid = price
        else:
            mid = (best_bid + best_ask) / 2
        ref = price if price is not None else (best_ask if signal.side is Side.BUY else best_bid)
        assert ref is not None
        if abs(ref - mid) / mid > cfg.max_price_deviation:
            return f"price {ref} is more than {cfg.max_price_deviation:%} away from the book's mid {mid}"
        notional = amount * ref
        if notional < market.min_notional:
            return f"notional {notional} {market.quote} is below the market minimum {market.min_notional}"
        limit = cfg.max_notional.get(market.quote)
        if limit is not None and notional > limit:
            return f"notional {notional} {market.quote} exceeds [orders] max_notional.{market.quote} = {limit}"
        # max_open_orders: see self.gate. Orders being journaled count as open (see _pending).
        open_orders = self.journal.open_orders(signal.exchange)
        known = {o.client_order_id for o in open_orders}
        open_orders += [o for c, o in self._pending.items() if o.exchange == signal.exchange and c not in known]
        held = self.ledger.venue_balances(signal.exchange)
        reserved: dict[str, Decimal] = {}
        pending_buys = Decimal(0)
        for o in open_orders:
            remaining = o.amount - o.filled_amount
            if o.side == Side.BUY.value:
                pending_buys += remaining if o.base == market.base else 0
                reserved[o.quote] = reserved.get(o.quote, Decimal(0)) + remaining * (o.price or ref)
            else:
                reserved[o.base] = reserved.get(o.base, Decimal(0)) + remaining
        if signal.side is Side.BUY:
            max_pos = cfg.max_position.get(market.base)
            position = held.get(market.base, Decimal(0)) + pending_buys + amount
            if max_pos is not None and position > max_pos:
                return f"position in {market.base} would reach {position} > [orders] max_position.{market.base} = {max_pos}"
        if cfg.check_balance:
            need_ccy, need = (market.quote, notional) if signal.side is Side.BUY else (market.base, amount)
            available = held.get(need_ccy, Decimal(0)) - reserved.get(need_ccy, Decimal(0))
            if need > available:
                return f"insufficient {need_ccy} in the ledger: need {need}, available {available}"
        return None

