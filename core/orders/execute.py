"""Execute: a journaled order is sent, and any uncertain outcome resolved, as a state machine.

Each step does one thing and names the next (:class:`Submit`, :class:`SendPrepared`,
:class:`Place`, :class:`NotSent`, :class:`OutcomeUnknown`, :class:`Resolve`,
:class:`Acknowledged`); :meth:`ExecuteSteps.run` loops until one gives :class:`Done`. The order
is sent only while the lease is held with margin, SUBMITTING is journaled before the request
leaves, and an uncertain outcome (timeout, 5xx, a duplicate answer) is journaled UNKNOWN and
looked up by client order id before anything else: a resubmission happens only once the exchange
has said, after its visibility window, that it has no such order. An acknowledged order goes on to
verification (:mod:`hrkernel.orders.verify`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hrkernel.exchange import Order, OrderRequest, OrderStatus, OrderType, Side
from hrkernel.exchange import errors as ex
from hrkernel.orders.base import RateLimitBudget, log, log_prepared
from hrkernel.orders.errors import ExchangeContractError, NotLeaderError, OrdersError
from hrkernel.orders.faults import fault_point
from hrkernel.orders.journal import OrderRecord, OrderState
from hrkernel.orders.verify import VerifySteps
from hrkernel.orders.watch import AUTH_REFUSED, CONTRACT_BROKEN

__all__ = ["SEND_AT_ONCE", "ExecuteSteps"]

SEND_AT_ONCE = 0.05
"""Seconds within which an order journaled PREPARED+SUBMITTING in one commit is sent as it stands;
later, SUBMITTING is journaled again (after a fresh lease check) just before the request leaves."""


# -- the steps ----------------------------------------------------------------------------------
# ``unsent_attempts`` is set while nothing of this order can have left yet since it was journaled
# PREPARED+SUBMITTING at prepare: losing the lease before the request leaves then puts it back to
# PREPARED with that many attempts (recovery fails it as stale rather than placing it late).


@dataclass(frozen=True, slots=True)
class Submit:
    """Journal SUBMITTING (through the ``max_open_orders`` gate, lease proven), then place."""

    rec: OrderRecord
    reason: str | None = None
    attempt: int | None = None
    unsent_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class SendPrepared:
    """An order journaled PREPARED+SUBMITTING in one commit in this process, not sent yet."""

    rec: OrderRecord
    committed_at: float
    token: int


@dataclass(frozen=True, slots=True)
class Place:
    """Send the placement of an order journaled SUBMITTING."""

    rec: OrderRecord
    token: int | None
    announce: bool = False
    unsent_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class NotSent:
    """The adapter's own rate limit refused the placement before it left."""

    rec: OrderRecord
    exc: ex.RateLimitedError
    unsent_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class OutcomeUnknown:
    """The placement may or may not have landed: journal UNKNOWN, then resolve."""

    rec: OrderRecord
    exc: Exception


@dataclass(frozen=True, slots=True)
class Resolve:
    """Find out by client order id whether an uncertain placement landed."""

    rec: OrderRecord


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """The exchange has the order: journal ACKED (or REJECTED), then verify."""

    rec: OrderRecord
    order: Order


@dataclass(frozen=True, slots=True)
class Done:
    rec: OrderRecord


Step = Submit | SendPrepared | Place | NotSent | OutcomeUnknown | Resolve | Acknowledged | Done


class ExecuteSteps(VerifySteps):
    """The execute phase of :class:`~hrkernel.orders.pipeline.TransactionVerificationPipeline`."""

    async def execute_claimed(self, order: OrderRecord) -> OrderRecord:
        """Execute and verify ``order`` from wherever the journal says it stands, without waiting
        for a recovery claim (recovery's own entry; see ``execute_order``)."""
        async with self.order_lock(order.client_order_id):
            rec = self.journal.get(order.client_order_id)
            if rec is None:
                raise OrdersError(f"order {order.client_order_id} is not in the journal")
            unsent = self._unsent.pop(rec.client_order_id, None)
            if rec.is_terminal:
                return rec
            return await self.run(await self._first_step(rec, unsent))

    async def _first_step(self, rec: OrderRecord, unsent: tuple[float, int] | None) -> Step:
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
                return Resolve(rec)
            return Submit(rec)
        if rec.state is OrderState.SUBMITTING and unsent is not None:
            return SendPrepared(rec, *unsent)
        if rec.state in (OrderState.SUBMITTING, OrderState.UNKNOWN):
            return Resolve(rec)
        return Done(await self._verify(rec))

    async def run(self, step: Step) -> OrderRecord:
        """Take steps until the order's execution is done (no recursion: each step names the next)."""
        while True:
            match step:
                case Done(rec):
                    return rec
                case Submit():
                    step = await self._submit(step)
                case SendPrepared():
                    step = self._send_prepared(step)
                case Place():
                    step = await self._place(step)
                case NotSent():
                    step = await self._not_sent(step)
                case OutcomeUnknown():
                    step = await self._outcome_unknown(step)
                case Resolve(rec):
                    step = await self._resolve_unknown(rec)
                case Acknowledged(rec, order):
                    step = await self._acknowledged(rec, order)

    def _request(self, rec: OrderRecord) -> OrderRequest:
        return OrderRequest(symbol=rec.symbol, side=Side(rec.side), type=OrderType(rec.type), amount=rec.amount,
                            price=rec.price, client_order_id=rec.client_order_id)

    def _send_prepared(self, step: SendPrepared) -> Step:
        """Send an order journaled PREPARED+SUBMITTING in one commit by ``create_order`` in
        this process (so certainly not sent yet). Sent as it stands when it follows that commit at
        once under the same lease tenure; one that waited (for an execution slot, say) is journaled
        SUBMITTING again after a fresh lease check, so the journal's SUBMITTING time — which the
        visibility window counts from — stays the time the request left."""
        rec = step.rec
        if (self._clock() - step.committed_at <= SEND_AT_ONCE and self.lease.token == step.token
                and self.lease.holds_with_margin()):
            self.stats["submitted"] += 1
            return Place(rec, step.token, announce=True)
        log_prepared(rec)  # not sent at once: its order_prepared line is due now, not after a later send
        return Submit(rec, attempt=rec.attempts, reason="waited after prepare; journaled again before sending",
                      unsent_attempts=rec.attempts - 1)

    async def _lost_lease_unsent(self, rec: OrderRecord, unsent_attempts: int | None) -> None:
        """The lease was lost before the request left: an order nothing of which was sent is back to
        what it is, PREPARED (recovery fails it as stale after prepared_max_age rather than placing
        it late)."""
        if unsent_attempts is not None:
            await self.journal.record(rec.client_order_id, OrderState.PREPARED, attempts=unsent_attempts,
                                      reason="not sent: this instance lost the lease before the request left")

    async def _submit(self, step: Submit) -> Step:
        rec = step.rec
        problem = await self.gate.enter(rec.exchange, rec.client_order_id)
        if problem is not None:
            log.warning("order_refused", client_order_id=rec.client_order_id, signal_id=rec.signal_id, reason=problem)
            return Done(await self.journal.record(rec.client_order_id, OrderState.FAILED, reason=f"never sent: {problem}"))
        try:
            try:
                if not self.lease.holds_with_margin():
                    raise NotLeaderError(f"order {rec.client_order_id}: this instance does not hold the lease with margin")
                fence_check = getattr(self.lease, "fence_check", None)
                if fence_check is not None and not await fence_check():
                    # The last hop before the order leaves: one round trip proving the token is current.
                    raise NotLeaderError(f"order {rec.client_order_id}: fencing token is no longer current")
            except NotLeaderError:
                await self._lost_lease_unsent(rec, step.unsent_attempts)
                raise
            token = self.lease.token
            rec = await self.journal.record(rec.client_order_id, OrderState.SUBMITTING,
                                            attempts=rec.attempts + 1 if step.attempt is None else step.attempt,
                                            fencing_token=token, reason=step.reason)
        finally:
            self.gate.leave(rec.client_order_id)  # counted by the journal from its SUBMITTING on
        fault_point("after_submitting")
        self.stats["submitted"] += 1
        return Place(rec, token, unsent_attempts=step.unsent_attempts)

    async def _place(self, step: Place) -> Step:
        """Send the placement of ``rec`` (journaled SUBMITTING) and say what came of it."""
        rec = step.rec
        exchange = self._exchange(rec.exchange)
        if not self.lease.holds_with_margin():
            # Checked again after the journal write, the last await before the request: a process
            # frozen since its fence check (SIGSTOP, a long GC pause) sees its margin gone here
            # and sends nothing; the order stays SUBMITTING and is looked up by whoever leads.
            await self._lost_lease_unsent(rec, step.unsent_attempts)
            raise NotLeaderError(f"order {rec.client_order_id}: the lease margin ran out before the send")
        try:
            try:
                order = await exchange.place_order(self._request(rec), fencing_token=step.token)
            finally:
                if step.announce:  # prepared and sent in one go: its order_prepared line follows the request
                    log_prepared(rec)
        except (ex.DuplicateClientOrderIdError, ex.DuplicateOrderError) as exc:
            # The exchange holds an order with this id, or ignored this as a repeat of an identical
            # recent one: an earlier placement (ours, perhaps by a predecessor) may have landed.
            rec = await self.journal.record(rec.client_order_id, OrderState.UNKNOWN, reason=f"{type(exc).__name__}: {exc}")
            return Resolve(rec)
        except ex.AuthenticationError as exc:
            # Not this order's fault: every order will be refused until the token is fixed.
            rec = await self.journal.record(rec.client_order_id, OrderState.REJECTED, reason=f"{type(exc).__name__}: {exc}")
            await self.alert("critical", AUTH_REFUSED, exchange=rec.exchange, order=rec.client_order_id,
                             error=f"{type(exc).__name__}: {exc}", source="exchange")
            return Done(rec)
        except (ex.InvalidOrderError, ex.InsufficientBalanceError) as exc:
            return Done(await self.journal.record(rec.client_order_id, OrderState.REJECTED,
                                                  reason=f"{type(exc).__name__}: {exc}"))
        except ex.RateLimitedError as exc:
            if not exc.sent:
                return NotSent(rec, exc, step.unsent_attempts)
            return OutcomeUnknown(rec, exc)
        except Exception as exc:
            return OutcomeUnknown(rec, exc)
        if not isinstance(order, Order):
            # A plugin bug: the order may well be on the exchange, so it is looked up like any
            # placement whose answer was lost, and the operator hears of the bug at once.
            bug = ExchangeContractError(rec.exchange, "place_order", "an Order", order)
            await self.alert("critical", CONTRACT_BROKEN, exchange=rec.exchange, order=rec.client_order_id, error=str(bug),
                             source="exchange")
            return OutcomeUnknown(rec, bug)
        self._send_waits.pop(rec.client_order_id, None)
        if self.on_accepted is not None:
            try:
                self.on_accepted()
            except Exception as exc:  # a metric must never break the order path
                log.error("order_accepted_hook_failed", error=f"{type(exc).__name__}: {exc}")
        fault_point("after_accept")
        return Acknowledged(rec, order)

    async def _outcome_unknown(self, step: OutcomeUnknown) -> Step:
        # Timeout, dropped connection, 5xx, the exchange's 429...: whether it landed is not known.
        rec, exc = step.rec, step.exc
        self._send_waits.pop(rec.client_order_id, None)
        self.stats["unknown"] += 1
        log.warning("order_outcome_unknown", client_order_id=rec.client_order_id, error=f"{type(exc).__name__}: {exc}")
        return Resolve(await self.journal.record(rec.client_order_id, OrderState.UNKNOWN,
                                                 reason=f"{type(exc).__name__}: {exc}"))

    async def _not_sent(self, step: NotSent) -> Step:
        """The adapter's own rate limit refused the placement before it left: it certainly did not
        land, so there is nothing to look up. Wait for the slot (within ``rate_limit_wait`` for
        this order in all) and send it then, as the same attempt; past that budget the order is
        FAILED (never sent) rather than placed minutes after its signal. Meanwhile the journal
        says SUBMITTING, so a crash while waiting is resolved by look-up like any other."""
        rec, exc = step.rec, step.exc
        budget = self._send_waits.setdefault(rec.client_order_id, RateLimitBudget(float(self.config.rate_limit_wait)))
        wait = budget.wait_for(exc)
        if wait is None:
            self._send_waits.pop(rec.client_order_id, None)
            rec = await self.journal.record(
                rec.client_order_id, OrderState.FAILED,
                reason=f"never sent: the exchange's rate limit left no slot within rate_limit_wait ({exc})")
            await self.alert("warning", f"order {rec.client_order_id} not placed: rate limited for too long",
                             client_order_id=rec.client_order_id, exchange=rec.exchange, symbol=rec.symbol)
            return Done(rec)
        log.info("order_send_rate_limited", client_order_id=rec.client_order_id, wait=round(wait, 3))
        await self._sleep(wait)
        return Submit(rec, reason="waited for the exchange's rate limit; nothing was sent before",
                      attempt=rec.attempts, unsent_attempts=step.unsent_attempts)

    async def _acknowledged(self, rec: OrderRecord, order: Order) -> Step:
        if order.status is OrderStatus.REJECTED and order.filled_amount == 0:
            return Done(await self.journal.record(rec.client_order_id, OrderState.REJECTED,
                                                  exchange_order_id=order.exchange_id,
                                                  reason="rejected by the exchange after acceptance"))
        rec = await self.journal.record(rec.client_order_id, OrderState.ACKED, exchange_order_id=order.exchange_id)
        fault_point("after_acked")
        return Done(await self._verify(rec))

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

    async def _resolve_unknown(self, rec: OrderRecord) -> Step:
        """Find out whether an uncertain placement landed, by client order id, before anything else."""
        exchange = self._exchange(rec.exchange)
        cfg = self.config
        delay = float(cfg.lookup_backoff)
        failures = 0
        limited = RateLimitBudget(float(cfg.rate_limit_wait))
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
                    return Done(await self._unresolved(rec, f"look-up by client order id failed {failures} times: {exc}"))
                await self._sleep(delay)
                delay = min(delay * 2, float(cfg.poll_max))
                continue
            if found is not None:
                return Acknowledged(rec, found)
            waited = (self._now() - self._submitted_at(rec)).total_seconds()
            if waited < cfg.visibility_window:
                # Too early to believe "not found": the exchange may not show it yet.
                await self._sleep(max(float(cfg.visibility_window) - waited, 0.001))
                continue
            if rec.attempts >= cfg.submit_attempts:
                return Done(await self.journal.record(
                    rec.client_order_id, OrderState.FAILED,
                    reason=f"not on the exchange after {rec.attempts} placement attempts",
                ))
            self.stats["resubmitted"] += 1
            log.info("order_resubmitting", client_order_id=rec.client_order_id, attempt=rec.attempts + 1)
            return Submit(rec, reason="exchange has no order with this client order id; resubmitting")
