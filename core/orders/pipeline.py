"""The three-phase order pipeline: prepare → execute → verify.

Each phase is a unit of its own, written against the state this class builds
(:class:`hrkernel.orders.base.PipelineCore`):

- **prepare** (:mod:`hrkernel.orders.prepare`): ``create_order(signal)`` validates the
  signal against the exchange's market and the risk limits, derives the client order id from the
  signal id and journals PREPARED;
- **execute** (:mod:`hrkernel.orders.execute`): ``execute_order(order)`` submits only while
  the lease is held with margin, journals SUBMITTING before the request leaves, turns any
  uncertain outcome into UNKNOWN and resolves it by client order id before anything else (a
  resubmission happens only once the exchange has said, after its visibility window, that it has
  no such order) — an explicit state machine, one step at a time;
- **verify** (:mod:`hrkernel.orders.verify`): polls the order until it is terminal and posts
  every fill to the ledger exactly once, in its own bounded pool.

``submit(signal)`` (and the signal router, when an execution slot is free) prepares and sends at
once: the lease is proven first, then PREPARED and SUBMITTING are journaled in ONE commit and the
request follows with nothing awaited in between — one durable write before the order leaves
instead of two. A crash after that commit leaves SUBMITTING, which recovery looks up by client
order id like any other. An order that waited after that commit is journaled SUBMITTING again
before it leaves (see ``SEND_AT_ONCE``).

An order whose state the exchange's answers cannot settle is marked *unresolved* and alerted,
never guessed. :meth:`TransactionVerificationPipeline.recover` resumes every non-terminal order
from the journal after a restart.

The class and its ``create_transaction`` / ``execute_transaction`` keep their historical names
(``hrkernel.compat`` and the design documents use them) as aliases of ``create_order`` /
``execute_order``: what the pipeline handles is orders; a *transaction* is a ledger entry.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

import anyio

from hrkernel.exchange import Exchange, Market
from hrkernel.ledger import Ledger, LedgerWriter
from hrkernel.orders.base import ON_ACKED, AlertHook, AlwaysLeader, LeaseView, RateLimitBudget, log
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.execute import SEND_AT_ONCE, ExecuteSteps
from hrkernel.orders.gate import OpenOrdersGate
from hrkernel.orders.journal import OrderJournal, OrderRecord
from hrkernel.orders.prepare import Prepared, PrepareSteps, Signal, client_order_id_for

__all__ = [
    "SEND_AT_ONCE",
    "AlertHook",
    "AlwaysLeader",
    "LeaseView",
    "Prepared",
    "Signal",
    "TransactionVerificationPipeline",
    "client_order_id_for",
]


class TransactionVerificationPipeline(PrepareSteps, ExecuteSteps):
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
        """Orders claimed by in-flight recovery and not resolved yet (see ``hrkernel.orders.recovery``):
        anything else that would execute one of them waits for recovery to resolve it first."""
        self.gate = OpenOrdersGate(lambda: self.journal, limit=self.config.max_open_orders,
                                   wait=float(self.config.open_orders_wait), clock=clock, sleep=sleep)
        self._verifying = anyio.CapacityLimiter(self.config.verify_concurrency)
        """Orders being verified at once (their own pool: verification holds no execution slot)."""
        self._pending: dict[str, OrderRecord] = {}
        """Orders checked and being journaled (not in the journal's open orders yet)."""
        self._send_waits: dict[str, RateLimitBudget] = {}
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

    # -- execute --------------------------------------------------------------------------------

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
        :meth:`create_order`)."""
        return await self.execute_order(await self.create_order(signal, submit=True))

    async def execute_order(self, order: OrderRecord, *, on_acked: Callable[[], None] | None = None) -> OrderRecord:
        """Execute and verify an order from wherever the journal says it stands. Returns the
        order's record afterwards: terminal, or still open on the exchange after the verify
        deadline (reconciliation follows it up), or UNKNOWN and ``unresolved``.

        ``on_acked`` is called once the exchange has the order, before verification starts (the
        signal router frees the order's execution slot there); not at all if it never gets there.
        An order claimed by in-flight recovery is resolved by recovery first: this waits for it."""
        claim = self._recovering.get(order.client_order_id)
        if claim is not None:
            await claim.wait()
        token = ON_ACKED.set(on_acked)
        try:
            return await self.execute_claimed(order)
        finally:
            ON_ACKED.reset(token)

    execute_transaction = execute_order
    """The design documents' name of :meth:`execute_order`."""

    # -- recovery -------------------------------------------------------------------------------

    async def recover(self) -> list[OrderRecord]:
        """Resume every non-terminal journaled order, concurrently up to ``recovery_concurrency``
        (call at start-up, as leader); see :class:`hrkernel.orders.recovery.InFlightRecovery` for
        running it in the background while trading goes on."""
        from hrkernel.orders.recovery import InFlightRecovery  # it builds on this module

        return await InFlightRecovery(self).recover()
