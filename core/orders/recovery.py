"""Recovery of in-flight orders: the journal's unfinished orders resumed concurrently, in the background.

After a restart or a takeover the journal holds orders whose outcome this tenure has not seen:
PREPARED, SUBMITTING/UNKNOWN (looked up by client order id, resubmitted only when proven absent),
ACKED/PARTIALLY_FILLED (verified until terminal or the verify deadline). Each takes seconds
(a look-up, the visibility window, a resubmission, polls), so they are not worked on one after
another in front of trading:

- :meth:`InFlightRecovery.claim` marks every unfinished order *claimed*, synchronously, before
  trading resumes. A claimed order is reserved like any open order (it is open in the journal, so
  the risk check counts it against balances and ``max_open_orders``), reconciliation leaves it to
  recovery, and anything else that would execute it (its signal delivered again) waits until
  recovery has resolved it — a conflict is only ever the same client order id.
- :meth:`InFlightRecovery.run` resolves the claimed orders, at most ``[orders]
  recovery_concurrency`` at a time, while new signals are prepared and sent beside them.
- Losing the lease stops it at once: the new leader owns those orders (see
  :class:`~hrkernel.orders.errors.NotLeaderError`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from hrkernel.logging import get_logger
from hrkernel.orders.errors import NotLeaderError
from hrkernel.orders.journal import OrderRecord, OrderState

if TYPE_CHECKING:
    from hrkernel.orders.pipeline import TransactionVerificationPipeline

__all__ = ["InFlightRecovery"]

log = get_logger("hrkernel.orders")


class InFlightRecovery:
    """Resumes a pipeline's unfinished journaled orders, a bounded number at a time."""

    def __init__(self, pipeline: TransactionVerificationPipeline, *, concurrency: int | None = None) -> None:
        self.pipeline = pipeline
        self.concurrency = max(1, concurrency or pipeline.config.recovery_concurrency)

    def claim(self) -> list[OrderRecord]:
        """Claim every unfinished journaled order not claimed already (no await: call it before
        trading resumes, so no signal can get to one of them first)."""
        p = self.pipeline
        return [rec for rec in p.journal.open_orders() if p.claim_for_recovery(rec.client_order_id)]

    def release(self, records: list[OrderRecord]) -> None:
        for rec in records:
            self.pipeline.release_recovery(rec.client_order_id)

    async def recover(self) -> list[OrderRecord]:
        """Claim and resolve every unfinished order; returns their records afterwards."""
        return await self.run(self.claim())

    async def run(self, claimed: list[OrderRecord]) -> list[OrderRecord]:
        """Resolve ``claimed`` (from :meth:`claim`) concurrently; every claim is released when its
        order is done, or when recovery stops (lease lost, cancelled). Raises
        :class:`NotLeaderError` if the lease was lost on the way."""
        out: list[OrderRecord] = []
        lost: list[NotLeaderError] = []
        limiter = anyio.CapacityLimiter(self.concurrency)
        started = anyio.current_time()
        if claimed:
            log.info("orders_recovery_started", orders=len(claimed), concurrency=self.concurrency)

        async def one(rec: OrderRecord) -> None:
            try:
                async with limiter:
                    if lost:
                        return
                    result = await self._resolve(rec)
                    if result is not None:
                        out.append(result)
            except NotLeaderError as exc:
                if not lost:
                    lost.append(exc)
                    # The lease is gone: every other order here is the new leader's now.
                    tg.cancel_scope.cancel()
            finally:
                self.pipeline.release_recovery(rec.client_order_id)

        try:
            async with anyio.create_task_group() as tg:
                for rec in claimed:
                    tg.start_soon(one, rec, name=f"recover:{rec.client_order_id}")
        finally:
            self.release(claimed)  # those never started (cancelled before their turn)
        if lost:
            log.warning("orders_recovery_stopped", reason=str(lost[0]), resolved=len(out), claimed=len(claimed))
            raise lost[0]
        if claimed:
            log.info("orders_recovery_finished", orders=len(claimed), resolved=len(out),
                     seconds=round(anyio.current_time() - started, 3))
        return out

    async def _resolve(self, rec: OrderRecord) -> OrderRecord | None:
        p = self.pipeline
        now = p.now()
        age = (now - (rec.created_at or now)).total_seconds()
        try:
            if rec.state is OrderState.PREPARED and age > p.config.prepared_max_age:
                return await p.journal.record(rec.client_order_id, OrderState.FAILED,
                                        reason=f"stale: PREPARED {age:.0f}s ago, never sent")
            return await p.execute_claimed(rec)
        except NotLeaderError:
            raise
        except Exception as exc:  # one order's failure must not stop the others; reconciliation follows it up
            log.error("order_recovery_failed", client_order_id=rec.client_order_id, error=f"{type(exc).__name__}: {exc}")
            return None
