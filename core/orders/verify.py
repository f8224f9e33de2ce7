"""Verify: an order the exchange has is polled until terminal, and every fill posted once.

Verification runs in the pipeline's own bounded pool (``[orders] verify_concurrency``): the
caller's execution slot is handed back first (``on_acked``), so a slow verification never holds
back the next order. Fills are posted to the ledger exactly once (keyed by exchange and trade id).
"""

from __future__ import annotations

from decimal import Decimal

from hrkernel.exchange import Fill, Order, OrderStatus
from hrkernel.ledger import Transaction, fill_transaction
from hrkernel.orders.base import ON_ACKED, PipelineCore, RateLimitBudget, log
from hrkernel.orders.errors import NotLeaderError
from hrkernel.orders.faults import fault_point
from hrkernel.orders.journal import OrderRecord, OrderState

__all__ = ["VerifySteps"]

_STATUS_STATE = {
    OrderStatus.FILLED: OrderState.FILLED,
    OrderStatus.CANCELED: OrderState.CANCELED,
    OrderStatus.REJECTED: OrderState.REJECTED,
}



class VerifySteps(PipelineCore):
    """The verify phase of :class:`~hrkernel.orders.pipeline.TransactionVerificationPipeline`."""

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
        released = ON_ACKED.get()
        if released is not None:
            ON_ACKED.set(None)
            released()
        async with self._verifying:
            return await self._poll_until_verified(rec)

    async def _poll_until_verified(self, rec: OrderRecord) -> OrderRecord:
        exchange = self._exchange(rec.exchange)
        cfg = self.config
        deadline = self._clock() + cfg.verify_deadline
        limited = RateLimitBudget(float(cfg.rate_limit_wait))
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

