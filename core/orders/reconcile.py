"""Reconciliation: the exchange is ground truth; journal and ledger are compared with it.

``StateReconciliation.reconcile_on_startup()`` (and :meth:`reconcile` on becoming leader and every
``[orders] reconcile_interval``) fetches open orders, the fills of journaled orders, recent fills
and balances, and:

- an open order the journal does not know (an *orphan*) is cancelled or adopted (``orphan_policy``);
- a journaled order is brought up to date; one left UNKNOWN/SUBMITTING that the exchange does not
  have past its visibility window becomes FAILED (never resubmitted from here);
- fills not yet in the ledger are posted (counted as *late*);
- balance drift within the per-asset tolerance is corrected by an adjusting transaction with its
  reason; beyond it a critical alert is raised and (``halt_on_drift``) new orders halt until
  :meth:`acknowledge`. The first reconciliation posts an opening balance (``deposit``): the exchange's
  balances minus what fills already posted.

Every report is stored in DuckDB (``reconcile_reports``). ``dry_run=True`` changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import anyio
import duckdb
import msgspec
from anyio.abc import TaskGroup

from hrkernel.exchange import Balance, Exchange, Fill, Order, OrderStatus
from hrkernel.ledger import fill_transaction
from hrkernel.logging import get_logger
from hrkernel.orders.errors import ExchangeContractError, NotLeaderError
from hrkernel.orders.journal import OrderRecord, OrderState
from hrkernel.orders.pipeline import TransactionVerificationPipeline
from hrkernel.orders.recovery import InFlightRecovery

__all__ = ["BalanceDrift", "OrderChange", "Orphan", "ReconciliationReport", "StateReconciliation"]

log = get_logger("hrkernel.orders.reconcile")

T = TypeVar("T")
Outcome = Callable[[str, "Exception | None"], None]
"""``(exchange, error)`` after each (non-dry-run) reconciliation; ``error`` None when it completed."""


def checked_list(value: object, item: type[T], exchange: str, method: str) -> list[T]:
    """``value`` if it is a list of ``item``; else :class:`ExchangeContractError` (a plugin bug)."""
    if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
        raise ExchangeContractError(exchange, method, f"a list of {item.__name__}", value)
    return value

SCHEMA = """
CREATE TABLE IF NOT EXISTS reconcile_reports (
    id BIGINT PRIMARY KEY,
    exchange VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    dry_run BOOLEAN NOT NULL,
    clean BOOLEAN NOT NULL,
    report VARCHAR NOT NULL
);
"""


class Orphan(msgspec.Struct, frozen=True, kw_only=True):
    exchange_id: str
    client_order_id: str | None
    symbol: str
    side: str
    amount: Decimal
    price: Decimal | None
    action: str
    """``cancel``, ``adopt``, ``would cancel``/``would adopt`` (dry run) or ``failed: ...``."""


class OrderChange(msgspec.Struct, frozen=True, kw_only=True):
    client_order_id: str
    before: str
    after: str
    note: str = ""


class BalanceDrift(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    exchange_total: Decimal
    ledger_total: Decimal
    drift: Decimal
    """``exchange_total - ledger_total``."""
    tolerance: Decimal
    action: str
    """``adjusted``, ``opening balance``, ``alerted``, ``deferred`` (orders were being worked on;
    looked at again next time), or ``would ...`` in a dry run."""


class ReconciliationReport(msgspec.Struct, kw_only=True):
    exchange: str
    started_at: datetime
    finished_at: datetime | None = None
    dry_run: bool = False
    open_orders: list[str] = msgspec.field(default_factory=list)
    """Exchange ids of the orders open on the exchange."""
    orphans: list[Orphan] = msgspec.field(default_factory=list)
    changed: list[OrderChange] = msgspec.field(default_factory=list)
    late_fills: int = 0
    drift: list[BalanceDrift] = msgspec.field(default_factory=list)
    discrepancies: list[str] = msgspec.field(default_factory=list)
    halted: bool = False

    @property
    def clean(self) -> bool:
        return not (self.orphans or self.discrepancies or any(d.action not in ("opening balance",) for d in self.drift))


class StateReconciliation:
    """Reconciles every exchange of a pipeline; reports are stored on the pipeline's DuckDB."""

    def __init__(self, pipeline: TransactionVerificationPipeline, db: duckdb.DuckDBPyConnection | None = None) -> None:
        self.pipeline = pipeline
        self._con = db if db is not None else pipeline.ledger.connection
        self._con.execute(SCHEMA)
        self._lock = threading.Lock()
        self.running = anyio.Lock()
        """Held by each reconciliation, and by an operator's drift acknowledgement while it books
        (``hrkernel.orders.operator``): a comparison that read the ledger before the booking would
        otherwise halt again on the difference just booked."""
        self.last: dict[str, ReconciliationReport] = {}
        self.startup_done = False
        self._to_send: list[str] = []
        """Orders proven never placed that the pipeline should send (collected under their locks)."""
        self._deferred: dict[str, int] = {}
        """Exchange → reconciliations in a row whose drift was set aside because orders were in flight."""
        self.failed: dict[str, Exception] = {}
        """Exchange → why its last reconciliation did not complete (absent once one completes)."""
        self.on_outcome: Outcome | None = None
        """Told every outcome (the orders component raises and resolves alerts with it)."""

    async def reconcile_on_startup(self, recover_in: TaskGroup | None = None) -> list[ReconciliationReport]:
        """Reconcile every exchange and resume the journal's unfinished orders; trading (the
        ``startup`` halt, if set) resumes once every exchange's reconciliation completed and so
        its open orders are known (``startup_done``). If one failed, the halt stays, with the
        reason, the reports say why, and the caller tries again.

        With ``recover_in`` (a task group) the unfinished orders are claimed first, reconciliation
        leaves them alone, and their recovery runs in that task group after trading resumed —
        new signals do not wait for it (an order it claimed is reserved, and its own signal waits
        for it). Without, recovery runs first and this returns when every order is resolved."""
        recovery = InFlightRecovery(self.pipeline)
        claimed: list[OrderRecord] = []
        if recover_in is None:
            # Orders the journal left mid-flight are resolved by the pipeline's own rules first
            # (look up by client order id; resubmit only what the exchange does not have), so
            # that the comparison below sees their fills in the ledger.
            await recovery.recover()
            reports = await self.reconcile_all()
        else:
            claimed = recovery.claim()
            try:
                reports = await self.reconcile_all()
            except BaseException:
                recovery.release(claimed)
                raise
        failed = {r.exchange: self.failed[r.exchange] for r in reports if r.exchange in self.failed}
        if failed:
            # Trading on a journal and ledger never compared with the exchange (a refused token,
            # an exchange down) is what start-up reconciliation exists to prevent: stay halted,
            # ``startup_done`` stays False and the caller tries again (claiming them again).
            recovery.release(claimed)
            why = "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in failed.items())
            self.pipeline.halt("startup", f"start-up reconciliation failed ({why})")
            return reports
        if recover_in is not None:
            recover_in.start_soon(self.run_recovery, recovery, claimed, name="orders:recovery")
        self.startup_done = True
        self.pipeline.resume("startup")
        return reports

    @staticmethod
    async def run_recovery(recovery: InFlightRecovery, claimed: list[OrderRecord]) -> None:
        """Recovery as a background task: a lost lease ends it quietly (it logged why)."""
        try:
            await recovery.run(claimed)
        except NotLeaderError:
            pass  # logged by the recovery; the new leader resumes these orders

    async def reconcile_all(self, *, dry_run: bool = False) -> list[ReconciliationReport]:
        return [await self.reconcile(name, dry_run=dry_run) for name in sorted(self.pipeline.exchanges)]

    def _tell(self, exchange: str, error: Exception | None) -> None:
        if self.on_outcome is None:
            return
        try:
            self.on_outcome(exchange, error)
        except Exception as exc:  # telling must never break reconciliation
            log.warning("reconcile_outcome_not_told", exchange=exchange, error=f"{type(exc).__name__}: {exc}")

    def acknowledge(self, who: str = "operator") -> None:
        """An operator looked at the drift: lift the drift halt."""
        log.warning("reconcile_drift_acknowledged", who=who)
        self.pipeline.resume("drift")

    async def reconcile(self, exchange_name: str, *, dry_run: bool = False) -> ReconciliationReport:
        async with self.running:
            return await self._reconcile(exchange_name, dry_run=dry_run)

    async def _reconcile(self, exchange_name: str, *, dry_run: bool = False) -> ReconciliationReport:
        p = self.pipeline
        exchange = p.exchanges[exchange_name]
        report = ReconciliationReport(exchange=exchange_name, started_at=datetime.now(UTC), dry_run=dry_run)
        try:
            await self._orders(exchange_name, exchange, report, dry_run)
            await self._recent_fills(exchange_name, exchange, report, dry_run)
            await self._balances(exchange_name, exchange, report, dry_run)
        except Exception as exc:
            report.discrepancies.append(f"reconciliation incomplete: {type(exc).__name__}: {exc}")
            log.error("reconcile_failed", exchange=exchange_name, error=f"{type(exc).__name__}: {exc}")
            if not dry_run:
                self.failed[exchange_name] = exc
                self._tell(exchange_name, exc)
        else:
            if not dry_run:
                self.failed.pop(exchange_name, None)
                self._tell(exchange_name, None)
        report.finished_at = datetime.now(UTC)
        report.halted = bool(p.halts)
        self._store(report)
        self.last[exchange_name] = report
        log.info("reconciled", exchange=exchange_name, dry_run=dry_run, open_orders=len(report.open_orders),
                 orphans=len(report.orphans), changed=len(report.changed), late_fills=report.late_fills,
                 drift=[f"{d.currency} {d.drift:+} {d.action}" for d in report.drift if d.drift],
                 discrepancies=report.discrepancies)
        return report

    # -- orders ---------------------------------------------------------------------------------

    async def _orders(self, name: str, exchange: Exchange, report: ReconciliationReport, dry_run: bool) -> None:
        p = self.pipeline
        open_orders = checked_list(await exchange.list_open_orders(), Order, name, "list_open_orders")
        report.open_orders = [o.exchange_id for o in open_orders]
        for order in open_orders:
            rec = p.journal.get(order.client_order_id) if order.client_order_id else None
            if rec is None:
                rec = p.journal.by_exchange_id(name, order.exchange_id)
            if rec is None:
                report.orphans.append(await self._orphan(name, exchange, order, dry_run))
        for rec in p.journal.open_orders(name):
            if rec.state is OrderState.PREPARED:
                continue  # never sent; recovery decides (send or fail as stale)
            if p.busy(rec.client_order_id):
                continue  # the pipeline (or in-flight recovery) is working on this order right now
            lock = p.order_lock(rec.client_order_id)
            try:
                async with lock:
                    fresh = p.journal.get(rec.client_order_id)
                    if fresh is not None and not fresh.is_terminal:
                        await self._refresh(name, exchange, fresh, report, dry_run)
            except Exception as exc:
                report.discrepancies.append(f"order {rec.client_order_id}: could not check: {type(exc).__name__}: {exc}")
        to_send, self._to_send = self._to_send, []
        for coid in to_send:  # outside its lock: the pipeline takes it
            fresh = p.journal.get(coid)
            if fresh is None or fresh.is_terminal:
                continue
            try:
                sent = await p.execute_transaction(fresh)
                log.info("reconcile_sent_unplaced_order", client_order_id=coid, state=sent.state.value)
            except Exception as exc:  # not leader any more, halted...: the next leader's look-up decides
                report.discrepancies.append(f"order {coid}: never placed, and sending it failed: {type(exc).__name__}: {exc}")

    async def _orphan(self, name: str, exchange: Exchange, order: Order, dry_run: bool) -> Orphan:
        policy = self.pipeline.config.orphan_policy
        action = f"would {policy}" if dry_run else policy
        if not dry_run:
            try:
                if policy == "cancel":
                    await exchange.cancel_order(exchange_id=order.exchange_id)
                else:
                    market = await self.pipeline.market(name, order.symbol)
                    coid = order.client_order_id or f"adopted-{order.exchange_id}"
                    await self.pipeline.journal.create(OrderRecord(
                        client_order_id=coid, signal_id=f"adopted:{name}:{order.exchange_id}", exchange=name,
                        symbol=order.symbol, base=market.base, quote=market.quote, side=order.side.value,
                        type=order.type.value, amount=order.amount, price=order.price, state=OrderState.ACKED,
                        exchange_order_id=order.exchange_id, reason="adopted orphan (reconciliation)", attempts=1,
                    ))
            except Exception as exc:
                action = f"failed: {policy}: {type(exc).__name__}: {exc}"
        await self.pipeline.alert("warning", f"orphan order {order.exchange_id} on {name}: {action}",
                                  exchange=name, exchange_id=order.exchange_id, symbol=order.symbol,
                                  source="reconciliation")
        return Orphan(exchange_id=order.exchange_id, client_order_id=order.client_order_id, symbol=order.symbol,
                      side=order.side.value, amount=order.amount, price=order.price, action=action)

    async def _refresh(self, name: str, exchange: Exchange, rec: OrderRecord, report: ReconciliationReport,
                       dry_run: bool) -> None:
        p = self.pipeline
        journal = p.journal
        before = rec.state
        if rec.state in (OrderState.SUBMITTING, OrderState.UNKNOWN):
            found = await exchange.find_order_by_client_id(rec.client_order_id, symbol=rec.symbol)
            if found is None:
                waited = (datetime.now(UTC) - (rec.updated_at or datetime.now(UTC))).total_seconds()
                if waited < p.config.visibility_window:
                    report.discrepancies.append(
                        f"order {rec.client_order_id}: {rec.state} and not visible yet ({waited:.1f}s)")
                    return
                age = (datetime.now(UTC) - (rec.created_at or datetime.now(UTC))).total_seconds()
                if rec.attempts < p.config.submit_attempts and age <= p.config.prepared_max_age:
                    # Proven never placed, and still young: the pipeline's own rule applies (it is
                    # sent, as a new attempt), not a silent FAILED that drops the signal. Seen
                    # after a Redis cut: a new leader's look-up proved an order absent, lost its
                    # lease margin before sending, and reconciliation then failed it.
                    report.changed.append(OrderChange(client_order_id=rec.client_order_id, before=before,
                                                      after=before, note="never placed; sent by the pipeline"))
                    if not dry_run:
                        self._to_send.append(rec.client_order_id)
                    return
                if not dry_run:
                    await journal.record(rec.client_order_id, OrderState.FAILED, unresolved=False,
                                   reason="not on the exchange past its visibility window (reconciliation)")
                    await p.alert("warning", f"order {rec.client_order_id} (signal {rec.signal_id}) failed by "
                                             "reconciliation: never placed, too old to send now",
                                  client_order_id=rec.client_order_id, exchange=name, symbol=rec.symbol)
                report.changed.append(OrderChange(client_order_id=rec.client_order_id, before=before,
                                                  after=OrderState.FAILED, note="never placed"))
                return
            if dry_run:
                report.changed.append(OrderChange(client_order_id=rec.client_order_id, before=before,
                                                  after=f"found {found.status}"))
                return
            rec = await journal.record(rec.client_order_id, OrderState.ACKED, exchange_order_id=found.exchange_id,
                                 unresolved=False, reason="found by client order id (reconciliation)")
            order = found
        else:
            order = await exchange.get_order(exchange_id=rec.exchange_order_id)
        after = await self._apply(rec, order, report, dry_run)
        if after != before:
            report.changed.append(OrderChange(client_order_id=rec.client_order_id, before=before, after=after))

    async def _apply(self, rec: OrderRecord, order: Order, report: ReconciliationReport, dry_run: bool) -> str:
        p = self.pipeline
        if dry_run:
            return f"exchange says {order.status} ({order.filled_amount} filled)"
        fills = await p.exchanges[rec.exchange].order_fills(order) if order.filled_amount else []
        txs = p.fill_transactions(rec, fills)
        if txs:
            ids = p.ledger.post_many(txs)
            report.late_fills += sum(1 for i in ids if i is not None)
        total = sum((f.amount for f in fills), Decimal(0))
        if not order.status.is_terminal:
            if order.filled_amount != rec.filled_amount:
                rec = await p.journal.record(rec.client_order_id, OrderState.PARTIALLY_FILLED, filled_amount=order.filled_amount)
            return rec.state
        if total != order.filled_amount:
            report.discrepancies.append(
                f"order {rec.client_order_id}: exchange reports {order.filled_amount} filled, fills add up to {total}")
            return rec.state
        terminal = {OrderStatus.FILLED: OrderState.FILLED, OrderStatus.CANCELED: OrderState.CANCELED,
                    OrderStatus.REJECTED: OrderState.REJECTED}[order.status]
        if rec.state is not terminal:
            rec = await p.journal.record(rec.client_order_id, terminal, filled_amount=order.filled_amount)
        if terminal is not OrderState.REJECTED:
            rec = await p.journal.record(rec.client_order_id, OrderState.VERIFIED, unresolved=False)
        return rec.state

    async def _recent_fills(self, name: str, exchange: Exchange, report: ReconciliationReport, dry_run: bool) -> None:
        """Fills the exchange lists for our journaled orders that the ledger lacks (e.g. after a crash)."""
        p = self.pipeline
        late = []
        opened = p.ledger.opened_at(name)
        for fill in checked_list(await exchange.recent_fills(), Fill, name, "recent_fills"):
            if p.ledger.has_fill(name, fill.trade_id):
                continue
            rec = p.journal.by_exchange_id(name, fill.order_id)
            if rec is None:
                at = fill.time if fill.time.tzinfo else fill.time.replace(tzinfo=UTC)
                if opened is None or at <= opened:
                    continue  # history from before this ledger's opening balance
                report.discrepancies.append(f"fill {fill.trade_id} of order {fill.order_id} not in the journal")
                continue
            late.append(fill_transaction(name, rec.base, rec.quote, fill, order_ref=rec.client_order_id))
        if late and not dry_run:
            report.late_fills += sum(1 for i in p.ledger.post_many(late) if i is not None)
        elif late:
            report.late_fills += len(late)

    # -- balances -------------------------------------------------------------------------------

    async def _balances(self, name: str, exchange: Exchange, report: ReconciliationReport, dry_run: bool) -> None:
        p = self.pipeline
        cfg = p.config
        read_at = datetime.now(UTC)  # the opening balance is as of this read, not of its posting
        balances = checked_list(await exchange.balances(), Balance, name, "balances")
        on_exchange = {b.currency: b.total for b in balances}
        opening = not p.ledger.has_kind(name, "deposit")
        ledger = p.ledger.venue_balances(name)
        # An order the pipeline is working on right now (placing, looking up, verifying) may have
        # fills the exchange's balance already holds and the ledger gets a moment later: a drift
        # seen then is not trusted (no adjustment, no alert, no halt) until it is seen with
        # nothing in flight, or `drift_defer_max` times in a row (continuous trading).
        busy = [r.client_order_id for r in p.journal.open_orders(name) if p.busy(r.client_order_id)]
        drifting = any(on_exchange.get(c, Decimal(0)) != ledger.get(c, Decimal(0)) for c in set(on_exchange) | set(ledger))
        defer = False
        if not opening and busy and drifting:
            count = self._deferred.get(name, 0) + 1
            defer = count <= cfg.drift_defer_max
            if not dry_run:
                self._deferred[name] = count
            if defer:
                log.info("reconcile_drift_deferred", exchange=name, orders_in_flight=len(busy), times=count)
        elif not dry_run:
            self._deferred.pop(name, None)
        beyond: list[str] = []
        for ccy in sorted(set(on_exchange) | set(ledger)):
            ex_total = on_exchange.get(ccy, Decimal(0))
            led_total = ledger.get(ccy, Decimal(0))
            drift = ex_total - led_total
            if drift == 0:
                continue
            tolerance = cfg.tolerance(ccy)
            if defer:
                action = "deferred"
            elif opening:
                action = "opening balance"
                if not dry_run:
                    p.ledger.deposit(name, ccy, drift, reason="opening balance (first reconciliation)", at=read_at)
            elif abs(drift) <= tolerance:
                action = "adjusted"
                if not dry_run:
                    p.ledger.adjust(name, ccy, drift, reason=(
                        f"reconciliation: exchange {ex_total} vs ledger {led_total}, within tolerance {tolerance}"))
            else:
                action = "alerted"
                beyond.append(f"{ccy} {drift:+} (tolerance {tolerance})")
            if dry_run:
                action = f"would {action}"
            report.drift.append(BalanceDrift(currency=ccy, exchange_total=ex_total, ledger_total=led_total,
                                             drift=drift, tolerance=tolerance, action=action))
        if beyond:
            report.discrepancies.append(f"balance drift beyond tolerance on {name}: " + ", ".join(beyond))
            if not dry_run:
                await p.alert("critical", f"balance drift beyond tolerance on {name}: " + ", ".join(beyond),
                              exchange=name, source="reconciliation")
                if cfg.halt_on_drift:
                    p.halt("drift", f"balance drift beyond tolerance on {name} ({', '.join(beyond)}); "
                                    "acknowledge with `hrkernel reconcile --ack`")

    # -- storage --------------------------------------------------------------------------------

    def _store(self, report: ReconciliationReport) -> None:
        with self._lock:
            row = self._con.execute("SELECT coalesce(max(id), 0) + 1 FROM reconcile_reports").fetchone()
            next_id = int(row[0]) if row else 1
            self._con.execute(
                "INSERT INTO reconcile_reports VALUES (?, ?, ?, ?, ?, ?)",
                [next_id, report.exchange, report.started_at.astimezone(UTC).replace(tzinfo=None), report.dry_run,
                 report.clean, msgspec.json.encode(report).decode()],
            )

    def reports(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._con.cursor().execute(
                "SELECT report FROM reconcile_reports ORDER BY id DESC LIMIT ?", [limit]).fetchall()
        return [msgspec.json.decode(r[0]) for r in rows]
