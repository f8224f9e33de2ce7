"""The three-phase order pipeline: prepare → execute → verify.

``create_transaction(signal)`` is Prepare: it validates the signal against the exchange's market
and the risk limits, derives the client order id from the signal id and journals PREPARED.
``execute_transaction(tx)`` is Execute and Verify: it submits only while the lease is held with
margin, journals SUBMITTING before the request leaves, turns any uncertain outcome into UNKNOWN
and resolves it by client order id before anything else (a resubmission happens only once the
exchange has said, after its visibility window, that it has no such order), then polls the order
until it is terminal and posts every fill to the ledger exactly once.

``submit(signal)`` (and the kernel's signal router, when an execution slot is free) prepares and
sends at once: the lease is proven first, then PREPARED and SUBMITTING are journaled in ONE commit
and the request follows with nothing awaited in between — one durable write before the order
leaves instead of two. A crash after that commit leaves SUBMITTING, which recovery looks up by
client order id like any other. An order that waited after that commit is journaled SUBMITTING
again before it leaves (see ``SEND_AT_ONCE``).

An order whose state the exchange's answers cannot settle is marked *unresolved* and alerted,
never guessed. :meth:`TransactionVerificationPipeline.recover` resumes every non-terminal order
from the journal after a restart.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import anyio
import msgspec

from hrkernel.exchange import (
    Exchange,
    Fill,
    Market,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    canonical_symbol,
)
from hrkernel.exchange import errors as ex
from hrkernel.ledger import Ledger, LedgerWriter, Transaction, fill_transaction
from hrkernel.logging import get_logger
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.errors import (
    ExchangeContractError,
    JournalError,
    JournalWriteError,
    NotLeaderError,
    OrderRejectedError,
    OrdersError,
    TradingHaltedError,
)
from hrkernel.orders.faults import fault_point
from hrkernel.orders.gate import OpenOrdersGate
from hrkernel.orders.journal import OrderJournal, OrderRecord, OrderState
from hrkernel.orders.watch import AUTH_REFUSED, CONTRACT_BROKEN

__all__ = [
    "AlertHook",
    "SEND_AT_ONCE",
    "AlwaysLeader",
    "LeaseView",
    "Signal",
    "TransactionVerificationPipeline",
    "client_order_id_for",
]

log = get_logger("hrkernel.orders")

AlertHook = Callable[[str, str, dict[str, Any]], Awaitable[None] | None]
"""``alert(level, message, details)``: level is ``"warning"`` or ``"critical"``; ``details["source"]``,
when present, names the alert source (``exchange``, ``reconciliation``; ``orders`` otherwise)."""


@runtime_checkable
class LeaseView(Protocol):
    """What the pipeline needs from the HA lease (``hrkernel.ha.lease.Lease`` satisfies it)."""

    def holds_with_margin(self) -> bool: ...

    @property
    def token(self) -> int | None: ...


_ON_ACKED: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("on_acked", default=None)
"""The running execution's ``on_acked`` (each order executes in a task of its own)."""

SEND_AT_ONCE = 0.05
"""Seconds within which an order journaled PREPARED+SUBMITTING in one commit is sent as it stands;
later, SUBMITTING is journaled again (after a fresh lease check) just before the request leaves."""


class AlwaysLeader:
    """A single instance: always the leader, fencing token 1."""

    token: int | None = 1

    def holds_with_margin(self) -> bool:
        return True


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


_STATUS_STATE = {
    OrderStatus.FILLED: OrderState.FILLED,
    OrderStatus.CANCELED: OrderState.CANCELED,
    OrderStatus.REJECTED: OrderState.REJECTED,
}


class _RateLimitBudget:
    """One order's allowance for waiting out the exchange's rate limits."""

    __slots__ = ("left",)

    def __init__(self, total: float) -> None:
        self.left = total

    def wait_for(self, exc: BaseException) -> float | None:
        """How long to wait before trying again if ``exc`` is a rate limit that fits the budget
        (its retry-after, or a second when it gave none); ``None`` otherwise."""
        if not isinstance(exc, ex.RateLimitedError):
            return None
        wait = max(float(exc.retry_after), 0.05) if exc.retry_after is not None else 1.0
        if wait > self.left:
            return None
        self.left -= wait
        return wait


class TransactionVerificationPipeline:
    """Prepare, execute and verify orders against one or more exchanges (by name)."""

    def __init__(
        self,
        *,
        exchanges: Mapping[str, Exchange],
        journal: OrderJournal,
        ledger: Ledger,
        config: OrdersSection | None = None,
        lease: LeaseView | None = None,
        alert: AlertHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        writer: LedgerWriter | None = None,
        on_accepted: Callable[[], None] | None = None,
    ) -> None:
        self.exchanges = dict(exchanges)
        self.journal = journal
        self.ledger = ledger
        self.writer = writer
        """Group commit for fills when given (its ``run`` task must be running)."""
        self.on_accepted = on_accepted
        """Told each time the exchange accepts a placement of ours (HA: failover ends when orders flow)."""
        self.config = config or OrdersSection()
        self.lease: LeaseView = lease or AlwaysLeader()
        self._alert = alert
        self._clock = clock
        self._now = now or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._markets: dict[tuple[str, str], Market] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._unsent: dict[str, tuple[float, int]] = {}
        """Orders journaled PREPARED+SUBMITTING in one commit and not handed to execution yet
        (client order id → (clock at the commit, fencing token))."""
        self._prepared_here: dict[str, int | None] = {}
        """Orders this process journaled PREPARED (alone), with the lease token then: only those may
        be sent without a look-up first."""
        self._recovering: dict[str, anyio.Event] = {}
        self.gate = OpenOrdersGate(lambda: self.journal, limit=self.config.max_open_orders,
                                   wait=float(self.config.open_orders_wait), clock=clock, sleep=sleep)
        self._verifying = anyio.CapacityLimiter(self.config.verify_concurrency)
        self._pending: dict[str, OrderRecord] = {}
        """Orders checked and being journaled (not in the journal's open orders yet)."""
        """Orders being verified at once (their own pool: verification holds no execution slot)."""
        """Orders claimed by in-flight recovery and not resolved yet (see ``hrkernel.orders.recovery``):
        anything else that would execute one of them waits for recovery to resolve it first."""
        self._send_waits: dict[str, _RateLimitBudget] = {}
        """Per order being sent: what is left of its budget for waiting out client-side rate limits."""
        self.halts: dict[str, str] = {}
        """Why new orders are refused right now (key → reason); empty means trading is allowed."""
        self.stats: dict[str, int] = {"prepared": 0, "submitted": 0, "unknown": 0, "resubmitted": 0,
                                      "verified": 0, "unresolved": 0, "fills_posted": 0}

    # -- halts ----------------------------------------------------------------------------------

    def halt(self, key: str, reason: str) -> None:
        self.halts[key] = reason
        log.warning("orders_halted", key=key, reason=reason)

    def resume(self, key: str) -> None:
        if self.halts.pop(key, None) is not None:
            log.info("orders_resumed", key=key)

    async def alert(self, level: str, message: str, **details: Any) -> None:
        log.error("orders_alert", level=level, message=message, **details) if level == "critical" else \
            log.warning("orders_alert", level=level, message=message, **details)
        if self._alert is not None:
            try:
                result = self._alert(level, message, details)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # an alert hook must never break the order path
                log.error("orders_alert_hook_failed", error=f"{type(exc).__name__}: {exc}")

    # -- prepare --------------------------------------------------------------------------------

    async def market(self, exchange: str, symbol: str) -> Market:
        key = (exchange, symbol)
        if key not in self._markets:
            self._markets[key] = await self._exchange(exchange).market(symbol)
        return self._markets[key]

    def _exchange(self, name: str) -> Exchange:
        try:
            return self.exchanges[name]
        except KeyError:
            raise OrdersError(f"no exchange named {name!r} (configured: {sorted(self.exchanges)})") from None

    async def create_transaction(self, signal: Signal, *, submit: bool = False) -> OrderRecord:
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
                               submit: bool) -> OrderRecord:
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
            # The signal is journaled already (a repeat, or prepared concurrently): that order it is.
            existing = self.journal.by_signal(signal.signal_id)
            if existing is None:
                raise
            return existing
        finally:
            self._pending.pop(coid, None)
        self.stats["prepared"] += 1
        if token is not None:
            fault_point("after_submitting")
            # Logged once the request has left (see _send_prepared): nothing slower than the
            # journal write stands between it and the send.
        else:
            fault_point("after_prepared")
            self._log_prepared(rec)
        return rec

    @staticmethod
    def _log_prepared(rec: OrderRecord) -> None:
        log.info("order_prepared", client_order_id=rec.client_order_id, signal_id=rec.signal_id, symbol=rec.symbol,
                 side=rec.side, amount=str(rec.amount), price=str(rec.price), state=rec.state.value)

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

    async def _refuse(self, signal: Signal, coid: str, market: Market | None, reason: str) -> OrderRecord:
        try:
            await self.journal.create(self._record(signal, coid, market, OrderState.FAILED, reason))
        except JournalWriteError:
            raise
        except JournalError:
            existing = self.journal.by_signal(signal.signal_id)
            if existing is None:
                raise
            return existing  # a repeat of a signal journaled already: that order it is
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

    # -- execute --------------------------------------------------------------------------------

    def order_lock(self, coid: str) -> anyio.Lock:
        """The lock held while one order is executed (reconciliation skips orders being worked on)."""
        lock = self._locks.get(coid)
        if lock is None:
            lock = self._locks[coid] = anyio.Lock()
        return lock

    def busy(self, coid: str) -> bool:
        """The order is being worked on (executed now, or claimed by recovery): hands off."""
        return coid in self._recovering or self.order_lock(coid).locked()

    def claim_for_recovery(self, coid: str) -> bool:
        """Reserve an unfinished order for in-flight recovery; False if it is claimed already."""
        if coid in self._recovering:
            return False
        self._recovering[coid] = anyio.Event()
        return True

    def release_recovery(self, coid: str) -> None:
        """Recovery is done with the order (resolved, or given up): whoever waits for it goes on."""
        claim = self._recovering.pop(coid, None)
        if claim is not None:
            claim.set()

    def now(self) -> datetime:
        return self._now()

    async def submit(self, signal: Signal) -> OrderRecord:
        """Prepare then execute one signal (PREPARED and SUBMITTING in one commit, see
        :meth:`create_transaction`)."""
        return await self.execute_transaction(await self.create_transaction(signal, submit=True))

    async def execute_transaction(self, tx: OrderRecord, *, on_acked: Callable[[], None] | None = None) -> OrderRecord:
        """Execute and verify an order from wherever the journal says it stands. Returns the
        order's record afterwards: terminal, or still open on the exchange after the verify
        deadline (reconciliation follows it up), or UNKNOWN and ``unresolved``.

        ``on_acked`` is called once the exchange has the order, before verification starts (the
        signal router frees the order's execution slot there); not at all if it never gets there.
        An order claimed by in-flight recovery is resolved by recovery first: this waits for it."""
        claim = self._recovering.get(tx.client_order_id)
        if claim is not None:
            await claim.wait()
        token = _ON_ACKED.set(on_acked)
        try:
            return await self.execute_claimed(tx)
        finally:
            _ON_ACKED.reset(token)

    async def execute_claimed(self, tx: OrderRecord) -> OrderRecord:
        """:meth:`execute_transaction` without waiting for a recovery claim (recovery's own entry)."""
        async with self.order_lock(tx.client_order_id):
            rec = self.journal.get(tx.client_order_id)
            if rec is None:
                raise OrdersError(f"order {tx.client_order_id} is not in the journal")
            unsent = self._unsent.pop(rec.client_order_id, None)
            if rec.is_terminal:
                return rec
            if rec.state is OrderState.PREPARED:
                if not self.lease.holds_with_margin():
                    raise NotLeaderError(f"order {rec.client_order_id}: this instance does not hold the lease with margin")
                here = rec.client_order_id in self._prepared_here
                token = self._prepared_here.pop(rec.client_order_id, None)
                if not here or token != self.lease.token:
                    # Prepared by another process or in an earlier tenure (a replica's copy, a
                    # restart): whoever led then may have sent it, and its SUBMITTING may never
                    # have reached this journal. Nobitex keeps client order ids unique only among
                    # OPEN orders, so a blind send could place a filled order twice: look it up.
                    rec = await self.journal.record(rec.client_order_id, OrderState.UNKNOWN, reason=(
                        "prepared before this trading tenure or by another instance; looking it up before placing"))
                    return await self._resolve_unknown(rec)
                return await self._submit(rec)
            if rec.state is OrderState.SUBMITTING and unsent is not None:
                return await self._send_prepared(rec, *unsent)
            if rec.state in (OrderState.SUBMITTING, OrderState.UNKNOWN):
                return await self._resolve_unknown(rec)
            return await self._verify(rec)

    def _request(self, rec: OrderRecord) -> OrderRequest:
        return OrderRequest(symbol=rec.symbol, side=Side(rec.side), type=OrderType(rec.type), amount=rec.amount,
                            price=rec.price, client_order_id=rec.client_order_id)

    async def _send_prepared(self, rec: OrderRecord, committed_at: float, token: int) -> OrderRecord:
        """Send an order journaled PREPARED+SUBMITTING in one commit by :meth:`create_transaction`
        in this process (so certainly not sent yet). Sent as it stands when it follows that commit
        at once under the same lease tenure; one that waited (for an execution slot, say) is
        journaled SUBMITTING again after a fresh lease check, so the journal's SUBMITTING time —
        which the visibility window counts from — stays the time the request left."""
        if self._clock() - committed_at <= SEND_AT_ONCE and self.lease.token == token and self.lease.holds_with_margin():
            self.stats["submitted"] += 1
            return await self._place(rec, token, announce=True)
        try:
            return await self._submit(rec, attempt=rec.attempts, reason="waited after prepare; journaled again before sending")
        except NotLeaderError:
            # Nothing left: the order is back to what it is, PREPARED (recovery fails it as stale
            # after prepared_max_age rather than placing it late).
            await self.journal.record(rec.client_order_id, OrderState.PREPARED, attempts=rec.attempts - 1,
                                reason="not sent: this instance lost the lease before the request left")
            raise

    async def _submit(self, rec: OrderRecord, *, reason: str | None = None, attempt: int | None = None) -> OrderRecord:
        problem = await self.gate.enter(rec.exchange, rec.client_order_id)
        if problem is not None:
            log.warning("order_refused", client_order_id=rec.client_order_id, signal_id=rec.signal_id, reason=problem)
            return await self.journal.record(rec.client_order_id, OrderState.FAILED, reason=f"never sent: {problem}")
        try:
            return await self._submit_now(rec, reason=reason, attempt=attempt)
        finally:
            self.gate.leave(rec.client_order_id)

    async def _submit_now(self, rec: OrderRecord, *, reason: str | None, attempt: int | None) -> OrderRecord:
        if not self.lease.holds_with_margin():
            raise NotLeaderError(f"order {rec.client_order_id}: this instance does not hold the lease with margin")
        fence_check = getattr(self.lease, "fence_check", None)
        if fence_check is not None and not await fence_check():
            # The last hop before the order leaves: one round trip proving the token is current.
            raise NotLeaderError(f"order {rec.client_order_id}: fencing token is no longer current")
        token = self.lease.token
        rec = await self.journal.record(rec.client_order_id, OrderState.SUBMITTING,
                                  attempts=rec.attempts + 1 if attempt is None else attempt,
                                  fencing_token=token, reason=reason)
        fault_point("after_submitting")
        self.stats["submitted"] += 1
        return await self._place(rec, token)

    async def _place(self, rec: OrderRecord, token: int | None, *, announce: bool = False) -> OrderRecord:
        """Send the placement of ``rec`` (journaled SUBMITTING) and journal what came of it."""
        exchange = self._exchange(rec.exchange)
        if not self.lease.holds_with_margin():
            # Checked again after the journal write, the last await before the request: a process
            # frozen since its fence check (SIGSTOP, a long GC pause) sees its margin gone here
            # and sends nothing; the order stays SUBMITTING and is looked up by whoever leads.
            raise NotLeaderError(f"order {rec.client_order_id}: the lease margin ran out before the send")
        try:
            try:
                order = await exchange.place_order(self._request(rec), fencing_token=token)
            finally:
                if announce:  # prepared and sent in one go: its order_prepared line follows the request
                    self._log_prepared(rec)
        except (ex.DuplicateClientOrderIdError, ex.DuplicateOrderError) as exc:
            # The exchange holds an order with this id, or ignored this as a repeat of an identical
            # recent one: an earlier placement (ours, perhaps by a predecessor) may have landed.
            rec = await self.journal.record(rec.client_order_id, OrderState.UNKNOWN, reason=f"{type(exc).__name__}: {exc}")
            return await self._resolve_unknown(rec)
        except ex.AuthenticationError as exc:
            # Not this order's fault: every order will be refused until the token is fixed.
            rec = await self.journal.record(rec.client_order_id, OrderState.REJECTED, reason=f"{type(exc).__name__}: {exc}")
            await self.alert("critical", AUTH_REFUSED, exchange=rec.exchange, order=rec.client_order_id,
                             error=f"{type(exc).__name__}: {exc}", source="exchange")
            return rec
        except (ex.InvalidOrderError, ex.InsufficientBalanceError) as exc:
            return await self.journal.record(rec.client_order_id, OrderState.REJECTED, reason=f"{type(exc).__name__}: {exc}")
        except ex.RateLimitedError as exc:
            if not exc.sent:
                return await self._not_sent(rec, exc)
            return await self._outcome_unknown(rec, exc)
        except Exception as exc:
            return await self._outcome_unknown(rec, exc)
        if not isinstance(order, Order):
            # A plugin bug: the order may well be on the exchange, so it is looked up like any
            # placement whose answer was lost, and the operator hears of the bug at once.
            bug = ExchangeContractError(rec.exchange, "place_order", "an Order", order)
            await self.alert("critical", CONTRACT_BROKEN, exchange=rec.exchange, order=rec.client_order_id, error=str(bug),
                             source="exchange")
            return await self._outcome_unknown(rec, bug)
        self._send_waits.pop(rec.client_order_id, None)
        if self.on_accepted is not None:
            try:
                self.on_accepted()
            except Exception as exc:  # a metric must never break the order path
                log.error("order_accepted_hook_failed", error=f"{type(exc).__name__}: {exc}")
        fault_point("after_accept")
        return await self._acknowledged(rec, order)

    async def _outcome_unknown(self, rec: OrderRecord, exc: Exception) -> OrderRecord:
        # Timeout, dropped connection, 5xx, the exchange's 429...: whether it landed is not known.
        self._send_waits.pop(rec.client_order_id, None)
        self.stats["unknown"] += 1
        log.warning("order_outcome_unknown", client_order_id=rec.client_order_id, error=f"{type(exc).__name__}: {exc}")
        rec = await self.journal.record(rec.client_order_id, OrderState.UNKNOWN, reason=f"{type(exc).__name__}: {exc}")
        return await self._resolve_unknown(rec)

    async def _not_sent(self, rec: OrderRecord, exc: ex.RateLimitedError) -> OrderRecord:
        """The adapter's own rate limit refused the placement before it left: it certainly did not
        land, so there is nothing to look up. Wait for the slot (within ``rate_limit_wait`` for
        this order in all) and send it then, as the same attempt; past that budget the order is
        FAILED (never sent) rather than placed minutes after its signal. Meanwhile the journal
        says SUBMITTING, so a crash while waiting is resolved by look-up like any other."""
        budget = self._send_waits.setdefault(rec.client_order_id, _RateLimitBudget(float(self.config.rate_limit_wait)))
        wait = budget.wait_for(exc)
        if wait is None:
            self._send_waits.pop(rec.client_order_id, None)
            rec = await self.journal.record(
                rec.client_order_id, OrderState.FAILED,
                reason=f"never sent: the exchange's rate limit left no slot within rate_limit_wait ({exc})")
            await self.alert("warning", f"order {rec.client_order_id} not placed: rate limited for too long",
                             client_order_id=rec.client_order_id, exchange=rec.exchange, symbol=rec.symbol)
            return rec
        log.info("order_send_rate_limited", client_order_id=rec.client_order_id, wait=round(wait, 3))
        await self._sleep(wait)
        return await self._submit(rec, reason="waited for the exchange's rate limit; nothing was sent before",
                                  attempt=rec.attempts)

    async def _acknowledged(self, rec: OrderRecord, order: Order) -> OrderRecord:
        if order.status is OrderStatus.REJECTED and order.filled_amount == 0:
            return await self.journal.record(rec.client_order_id, OrderState.REJECTED, exchange_order_id=order.exchange_id,
                                       reason="rejected by the exchange after acceptance")
        rec = await self.journal.record(rec.client_order_id, OrderState.ACKED, exchange_order_id=order.exchange_id)
        fault_point("after_acked")
        return await self._verify(rec)

    def _submitted_at(self, rec: OrderRecord) -> datetime:
        """When the order's last placement can have left, which the visibility window counts from."""
        for event in reversed(self.journal.history(rec.client_order_id)):
            if event.state is OrderState.SUBMITTING:
                return event.at
        at = rec.updated_at or self._now()
        # Never journaled SUBMITTING here: only another instance (a predecessor whose last rows
        # did not replicate, or one that got the same signal) can have sent it, and none can
        # have sent anything since this tenure's lease says so. Without this a signal accepted
        # just before a takeover waited the whole window from its journaling after the takeover.
        silent_since = getattr(self.lease, "others_silent_since", None)
        bound = silent_since() if silent_since is not None else None
        return min(at, bound) if bound is not None else at

    async def _resolve_unknown(self, rec: OrderRecord) -> OrderRecord:
        """Find out whether an uncertain placement landed, by client order id, before anything else."""
        exchange = self._exchange(rec.exchange)
        cfg = self.config
        delay = float(cfg.lookup_backoff)
        failures = 0
        limited = _RateLimitBudget(float(cfg.rate_limit_wait))
        while True:
            self._still_leading(rec, "look-up")
            try:
                found = await exchange.find_order_by_client_id(rec.client_order_id, symbol=rec.symbol)
            except NotLeaderError:
                raise
            except Exception as exc:
                wait = limited.wait_for(exc)
                if wait is not None:
                    log.info("order_lookup_rate_limited", client_order_id=rec.client_order_id, wait=round(wait, 3))
                    await self._sleep(wait)
                    continue
                failures += 1
                log.warning("order_lookup_failed", client_order_id=rec.client_order_id, attempt=failures,
                            error=f"{type(exc).__name__}: {exc}")
                if failures >= cfg.lookup_attempts:
                    return await self._unresolved(rec, f"look-up by client order id failed {failures} times: {exc}")
                await self._sleep(delay)
                delay = min(delay * 2, float(cfg.poll_max))
                continue
            if found is not None:
                return await self._acknowledged(rec, found)
            waited = (self._now() - self._submitted_at(rec)).total_seconds()
            if waited < cfg.visibility_window:
                # Too early to believe "not found": the exchange may not show it yet.
                await self._sleep(max(float(cfg.visibility_window) - waited, 0.001))
                continue
            if rec.attempts >= cfg.submit_attempts:
                return await self.journal.record(
                    rec.client_order_id, OrderState.FAILED,
                    reason=f"not on the exchange after {rec.attempts} placement attempts",
                )
            self.stats["resubmitted"] += 1
            log.info("order_resubmitting", client_order_id=rec.client_order_id, attempt=rec.attempts + 1)
            return await self._submit(rec, reason="exchange has no order with this client order id; resubmitting")

    def _still_leading(self, rec: OrderRecord, what: str) -> None:
        """Before each call a look-up or verification makes: a deposed leader stops at once. The
        new leader owns the order (it recovers it from the replicated journal, or reconciliation
        finds it); polls from here would only spend the exchange budget the two share."""
        if not self.lease.holds_with_margin():
            raise NotLeaderError(f"order {rec.client_order_id}: {what} stopped: this instance lost the lease")

    async def _unresolved(self, rec: OrderRecord, why: str) -> OrderRecord:
        self.stats["unresolved"] += 1
        rec = await self.journal.record(rec.client_order_id, rec.state, reason=why, unresolved=True)
        await self.alert("critical", f"order {rec.client_order_id} unresolved: {why}",
                         client_order_id=rec.client_order_id, exchange=rec.exchange, symbol=rec.symbol)
        return rec

    # -- verify ---------------------------------------------------------------------------------

    def fill_transactions(self, rec: OrderRecord, fills: list[Fill]) -> list[Transaction]:
        """The ledger transactions for ``fills`` of ``rec``, less those the opening balance holds.

        The opening balance is read from the exchange, so it already contains every fill made
        before it. An order this journal submitted after the opening cannot have such fills; an
        order placed elsewhere (by a predecessor whose journal this instance could not see, then
        adopted) can, and its fills dated at or before the opening are left out."""
        txs = [fill_transaction(rec.exchange, rec.base, rec.quote, f, order_ref=rec.client_order_id) for f in fills]
        opened = self.ledger.opened_at(rec.exchange)
        if opened is None or not txs:
            return txs
        if any(e.state is OrderState.SUBMITTING and e.at > opened for e in self.journal.history(rec.client_order_id)):
            return txs
        txs, before = self.ledger.after_opening(rec.exchange, txs)
        if before:
            log.info("fills_before_opening_balance", client_order_id=rec.client_order_id, skipped=len(before),
                     reason="the ledger's opening balance, read from the exchange later, already holds them")
        return txs

    async def post_fills(self, rec: OrderRecord, order: Order) -> Decimal:
        """Post every fill of ``order`` to the ledger (once each); returns the filled total seen."""
        exchange = self._exchange(rec.exchange)
        fills = await exchange.order_fills(order)
        txs = self.fill_transactions(rec, fills)
        if txs:
            ids = await self.writer.post(txs) if self.writer is not None else self.ledger.post_many(txs)
            posted = sum(1 for i in ids if i is not None)
            self.stats["fills_posted"] += posted
        return sum((f.amount for f in fills), Decimal(0))

    async def _verify(self, rec: OrderRecord) -> OrderRecord:
        """The exchange has the order: the caller's execution slot is handed back (``on_acked``
        of :meth:`execute_transaction`) and the order is verified in the verification pool."""
        released = _ON_ACKED.get()
        if released is not None:
            _ON_ACKED.set(None)
            released()
        async with self._verifying:
            return await self._poll_until_verified(rec)

    async def _poll_until_verified(self, rec: OrderRecord) -> OrderRecord:
        exchange = self._exchange(rec.exchange)
        cfg = self.config
        deadline = self._clock() + cfg.verify_deadline
        limited = _RateLimitBudget(float(cfg.rate_limit_wait))
        delay = float(cfg.poll_initial)
        last_error: str | None = None
        order: Order | None = None
        mismatch = False
        filled = Decimal(-1)
        while True:
            self._still_leading(rec, "verification")
            try:
                order = await exchange.get_order(exchange_id=rec.exchange_order_id)
                if order.filled_amount != filled or (order.status.is_terminal and mismatch):
                    # Fills are read only when the filled amount moved (they are the costly call).
                    filled = await self.post_fills(rec, order)
                last_error = None
            except NotLeaderError:
                raise
            except Exception as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                wait = limited.wait_for(exc)
                if wait is not None:
                    # Waiting out the exchange's rate limit is not the order's fault: the verify
                    # deadline moves by the wait.
                    log.info("order_verify_rate_limited", client_order_id=rec.client_order_id, wait=round(wait, 3))
                    deadline += wait
                    await self._sleep(wait)
                    continue
                log.warning("order_verify_poll_failed", client_order_id=rec.client_order_id, error=last_error)
            else:
                fault_point("mid_verify")
                if order.status.is_terminal:
                    state = _STATUS_STATE[order.status]
                    mismatch = filled != order.filled_amount
                    if not mismatch:
                        if rec.state is not state:
                            rec = await self.journal.record(rec.client_order_id, state, filled_amount=order.filled_amount)
                        if state is OrderState.REJECTED:
                            return rec
                        self.stats["verified"] += 1
                        return await self.journal.record(rec.client_order_id, OrderState.VERIFIED)
                elif order.filled_amount != rec.filled_amount:
                    rec = await self.journal.record(rec.client_order_id, OrderState.PARTIALLY_FILLED,
                                              filled_amount=order.filled_amount)
            if self._clock() >= deadline:
                break
            await self._sleep(delay)
            delay = min(delay * 2, float(cfg.poll_max))
        if last_error is not None:
            return await self._unresolved(rec, f"order status could not be read before the verify deadline: {last_error}")
        if mismatch and order is not None:
            return await self._unresolved(
                rec, f"exchange reports {order.filled_amount} filled but its fills add up to a different amount")
        # Still open on the exchange (a resting limit order): reconciliation follows it up.
        return rec

    # -- recovery -------------------------------------------------------------------------------

    async def recover(self) -> list[OrderRecord]:
        """Resume every non-terminal journaled order, concurrently up to ``recovery_concurrency``
        (call at start-up, as leader); see :class:`hrkernel.orders.recovery.InFlightRecovery` for
        running it in the background while trading goes on."""
        from hrkernel.orders.recovery import InFlightRecovery  # it builds on this module

        return await InFlightRecovery(self).recover()
