"""What the order pipeline's three phases share: its state, its alerts and its lease view.

:class:`PipelineCore` declares the state :class:`~hrkernel.orders.pipeline.TransactionVerificationPipeline`
builds; the phases (:mod:`~hrkernel.orders.prepare`, :mod:`~hrkernel.orders.execute`,
:mod:`~hrkernel.orders.verify`) are written against it.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import anyio

from hrkernel.exchange import Exchange, Market
from hrkernel.exchange import errors as ex
from hrkernel.ledger import Ledger, LedgerWriter
from hrkernel.logging import get_logger
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.errors import NotLeaderError, OrdersError
from hrkernel.orders.gate import OpenOrdersGate
from hrkernel.orders.journal import OrderJournal, OrderRecord

__all__ = ["ON_ACKED", "AlertHook", "AlwaysLeader", "LeaseView", "PipelineCore", "RateLimitBudget", "log_prepared"]

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


ON_ACKED: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("on_acked", default=None)
"""The running execution's ``on_acked`` (each order executes in a task of its own)."""

class AlwaysLeader:
    """A single instance: always the leader, fencing token 1."""

    token: int | None = 1

    def holds_with_margin(self) -> bool:
        return True


class RateLimitBudget:
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




def log_prepared(rec: OrderRecord) -> None:
    """The ``order_prepared`` line (for an order sent at once, written after its request left)."""
    log.info("order_prepared", client_order_id=rec.client_order_id, signal_id=rec.signal_id, symbol=rec.symbol,
             side=rec.side, amount=str(rec.amount), price=str(rec.price), state=rec.state.value)


class PipelineCore:
    """The pipeline's state (built by ``TransactionVerificationPipeline.__init__``) and the helpers
    every phase uses."""

    exchanges: dict[str, Exchange]
    journal: OrderJournal
    ledger: Ledger
    writer: LedgerWriter | None
    on_accepted: Callable[[], None] | None
    config: OrdersSection
    lease: LeaseView
    gate: OpenOrdersGate
    halts: dict[str, str]
    stats: dict[str, int]
    _alert: AlertHook | None
    _clock: Callable[[], float]
    _now: Callable[[], datetime]
    _sleep: Callable[[float], Awaitable[None]]
    _markets: dict[tuple[str, str], Market]
    _locks: dict[str, anyio.Lock]
    _unsent: dict[str, tuple[float, int]]
    _prepared_here: dict[str, int | None]
    _recovering: dict[str, anyio.Event]
    _verifying: anyio.CapacityLimiter
    _pending: dict[str, OrderRecord]
    _send_waits: dict[str, RateLimitBudget]

    def order_lock(self, coid: str) -> anyio.Lock:
        """The lock held while one order is executed (reconciliation skips orders being worked on)."""
        lock = self._locks.get(coid)
        if lock is None:
            lock = self._locks[coid] = anyio.Lock()
        return lock

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

    def _exchange(self, name: str) -> Exchange:
        try:
            return self.exchanges[name]
        except KeyError:
            raise OrdersError(f"no exchange named {name!r} (configured: {sorted(self.exchanges)})") from None

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

