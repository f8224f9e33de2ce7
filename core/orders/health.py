"""The ``orders_execution`` health check: are orders being placed and verified as they should?

- **Acknowledgement**: an order still SUBMITTING or UNKNOWN ``[orders] ack_bound`` after it was
  created → *unhealthy*: the exchange is not taking orders, or their outcome is in doubt.
- **Verification backlog**: orders done on the exchange (FILLED, CANCELED, PARTIALLY_FILLED
  past their verify deadline) whose fills are not all posted yet, beyond
  ``verify_backlog_max`` → *degraded*; any order marked unresolved → *degraded* (an operator
  must look: ``hrkernel orders show``).

It reads the journal's open orders only (kept in memory by the writing journal): cheap enough to
run on every health interval. On a standby (no pipeline writes) it reports what the replicated
journal shows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hrkernel.orders.journal import OrderState
from hrkernel.types import HealthResult, HealthStatus

_PLACING = frozenset({OrderState.SUBMITTING, OrderState.UNKNOWN})
_VERIFYING = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.PARTIALLY_FILLED})


class OrderExecutionCheck:
    """Health check over an orders component's pipeline (None until it started)."""

    halts_orders = False

    def __init__(self, pipeline_of: Any, *, ack_bound: float, verify_deadline: float, backlog_max: int) -> None:
        self._pipeline_of = pipeline_of
        self.ack_bound = ack_bound
        self.verify_deadline = verify_deadline
        self.backlog_max = backlog_max

    async def check(self) -> HealthResult:
        pipeline = self._pipeline_of()
        if pipeline is None:
            return HealthResult(status=HealthStatus.HEALTHY, detail="the order pipeline has not started")
        now = datetime.now(UTC)

        def age(rec: Any) -> float:
            at = rec.updated_at or rec.created_at
            if at is None:
                return 0.0
            return (now - (at if at.tzinfo else at.replace(tzinfo=UTC))).total_seconds()

        def since_created(rec: Any) -> float:
            # From the order's creation, not its last entry: a placement cycling between
            # SUBMITTING and UNKNOWN (timeouts, look-ups, resubmission) is still not acknowledged.
            at = rec.created_at
            if at is None:
                return 0.0
            return (now - (at if at.tzinfo else at.replace(tzinfo=UTC))).total_seconds()

        open_orders = pipeline.journal.open_orders()
        stuck = [r for r in open_orders if r.state in _PLACING and since_created(r) > self.ack_bound]
        unresolved = [r for r in open_orders if r.unresolved]
        backlog = [r for r in open_orders if r.state in _VERIFYING and age(r) > self.verify_deadline
                   and (r.state is not OrderState.PARTIALLY_FILLED or r.unresolved)]
        counts = f"{len(open_orders)} open, {len(backlog)} awaiting verification, {len(unresolved)} unresolved"
        if stuck:
            oldest = max(since_created(r) for r in stuck)
            return HealthResult(status=HealthStatus.UNHEALTHY, detail=(
                f"{len(stuck)} placement(s) not acknowledged within {self.ack_bound:g}s (oldest {oldest:.0f}s: "
                f"{stuck[0].client_order_id}); {counts}"))
        if unresolved or len(backlog) > self.backlog_max:
            return HealthResult(status=HealthStatus.DEGRADED, detail=f"verification backlog: {counts}")
        return HealthResult(status=HealthStatus.HEALTHY, detail=counts)
