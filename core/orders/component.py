"""The ``orders`` kernel component: journal + ledger + pipeline + reconciliation, wired to the
kernel's exchanges, the HA lease and the alert system (handed to it by the composition root).

Start-up: the DuckDB file under ``[kernel] data_dir`` is opened, new orders are halted
(``startup``), and a background task reconciles every exchange, resumes the journal's
non-terminal orders, then lifts the halt — trading starts only after start-up reconciliation.
While leader it reconciles again every ``[orders] reconcile_interval``; on every leadership gain
the HA takeover step runs a reconciliation before the HA gate opens.

Hot standby (``[ha] backend = "redis"``, ``replication = true``): a
:class:`hrkernel.ha.replication.Replicator` on the same database streams the leader's journal and
ledger rows to the standbys, which apply them. On a standby the pipeline sees the replicated rows
through read-only views (a write raises :class:`NotLeaderError`: only the leader writes). On every
gain the takeover step first lets the replicator apply what the stream holds and mark the new
tenure, then builds a fresh journal and ledger over the database (their caches — next seq and
tx_id, open orders, running totals, opening time — must come from the replicated rows), and only
then reconciles.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import anyio
import duckdb
from anyio.abc import TaskGroup

from hrkernel.alerts.types import AlertSource
from hrkernel.duckdb_conn import open_database
from hrkernel.exchange.errors import ExchangeError
from hrkernel.ledger import Ledger, LedgerWriter
from hrkernel.lifecycle import Component, ShutdownStage
from hrkernel.logging import get_logger
from hrkernel.orders import exposure
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.errors import JournalWriteError, NotLeaderError
from hrkernel.orders.exposure import SHUTDOWN_HALT, ExposureReport
from hrkernel.orders.journal import OrderJournal, OrderRecord, OrderState
from hrkernel.orders.pipeline import AlwaysLeader, LeaseView, TransactionVerificationPipeline
from hrkernel.orders.reconcile import StateReconciliation
from hrkernel.orders.recovery import InFlightRecovery
from hrkernel.orders.standby import StandbyJournal, StandbyLedger
from hrkernel.orders.watch import OrdersHealth, ReconciliationAlerts

__all__ = ["ACK_FILE", "OrdersComponent"]

ACK_FILE = "orders.drift-ack"
"""Left in the data dir by ``hrkernel reconcile --ack``; consumed by the running component."""

log = get_logger("hrkernel.orders")

ADOPT_RETRY_FOR = 60.0
"""Seconds a takeover keeps retrying the look-up of a predecessor's unpublished orders through
rate limits and outages before it fails (and the lease is tried again)."""

_OUR_CLIENT_ID = re.compile(r"hr[0-9a-f]{30}")
"""The client order ids the pipeline makes (``client_order_id_for``): placed by one of our kernels."""

class OrdersComponent(Component):
    name = "orders"
    shutdown_stage = ShutdownStage.FLUSH

    def __init__(self, config: OrdersSection, *, db_path: Path, exchanges: dict[str, Any],
                 lease: LeaseView | None, alerts: Any = None, replication: dict[str, Any] | None = None,
                 on_accepted: Callable[[], None] | None = None, journal_path: Path | None = None) -> None:
        self.config = config
        self.db_path = db_path
        self.journal_path = journal_path or db_path.parent / config.journal_file
        self._exchanges = exchanges
        """name → the exchange (the kernel's guarded exchange; any :class:`hrkernel.exchange.Exchange`)."""
        self._lease = lease
        self._on_accepted = on_accepted
        self._alerts = alerts
        self.pipeline: TransactionVerificationPipeline | None = None
        self.reconciliation: StateReconciliation | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._stopping = False
        self._recovered_token: int | None = None
        """The lease token of the tenure whose unfinished orders were last resumed."""
        self._scope: anyio.CancelScope | None = None
        self._replication = replication
        """Replicator options (``redis_url``, ``key_prefix``, ``instance_id``, ...) or None."""
        self.replicator: Any = None
        self._writer: LedgerWriter | None = None
        self._done = anyio.Event()

    async def _alert(self, level: str, message: str, details: dict[str, Any]) -> None:
        """The alert hook of the pipeline, reconciliation and replication. The source is the one the
        caller names (``details["source"]``), ``orders`` when it names none."""
        if self._alerts is None:
            return
        details = dict(details)
        source = str(details.pop("source", AlertSource.ORDERS))
        if source == AlertSource.EXCHANGE:
            # AUTH_REFUSED, CONTRACT_BROKEN: raised the way reconciliation raises them, since it
            # resolves them too (fingerprinted by exchange).
            await self._alerts.send_alert(source=source, level=level, title=message,
                                          message=f"{details.get('exchange')}: order {details.get('order')}: "
                                                  f"{details.get('error')}",
                                          context={"exchange": str(details.get("exchange"))}, fingerprint_keys=["exchange"])
            return
        await self._alerts.send_alert(source=source, level=level, title=message,
                                      context={k: str(v) for k, v in details.items()})

    async def start(self, tg: TaskGroup) -> None:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._con = open_database(str(self.db_path))
        exchanges = dict(self._exchanges)
        ledger = Ledger(self._con)
        writer = LedgerWriter(ledger)
        self.pipeline = TransactionVerificationPipeline(
            exchanges=exchanges, journal=self._open_journal(), ledger=ledger, config=self.config,
            lease=self._lease or AlwaysLeader(), alert=self._alert, writer=writer, on_accepted=self._on_accepted,
        )
        self.pipeline.halt("startup", "start-up reconciliation has not finished")
        self.reconciliation = StateReconciliation(self.pipeline)
        self.reconciliation.on_outcome = ReconciliationAlerts(self._alerts)
        self._writer = writer
        if self._replication is not None:
            from hrkernel.ha.replication import Replicator

            self.replicator = Replicator(self._con, self.journal_path, alert=self._alert, **self._replication)
            self.replicator.on_demoted = self._as_standby
            attach = getattr(self._lease, "attach_replication", None)
            if attach is not None:
                attach(self.replicator)
            self._as_standby()  # until this instance is elected, only replication writes here
        self._scope = scope = anyio.CancelScope()
        tg.start_soon(self._background, writer, scope, name="orders:background")

    def _open_journal(self) -> OrderJournal:
        journal = OrderJournal(self.journal_path)
        journal.on_failure = self._journal_failed
        journal.on_recovered = self._journal_recovered
        return journal

    async def _journal_failed(self, exc: JournalWriteError) -> None:
        """A write could not be made durable: no new order may start until the journal writes again
        (orders in flight stop at their next journal write; recovery resolves them later)."""
        if self.pipeline is not None:
            self.pipeline.halt("journal", str(exc))
        await self._alert("critical", "order journal cannot write: new orders halted", {"error": str(exc)})

    async def _journal_recovered(self) -> None:
        if self.pipeline is not None and "journal" in self.pipeline.halts:
            self.pipeline.resume("journal")
            await self._alert("info", "order journal writes again: new orders resumed", {"path": self.journal_path})

    def _close_journal(self) -> None:
        journal = self.pipeline.journal if self.pipeline is not None else None
        if isinstance(journal, OrderJournal):
            journal.close()

    def _as_standby(self) -> None:
        """Give the pipeline read-only views: another instance writes this history now."""
        assert self.pipeline is not None and self._con is not None and self.replicator is not None
        con, rep, path = self._con, self.replicator, self.journal_path
        self._close_journal()  # replication writes the journal file now
        # Each view reads through connections of its own: dashboard reads run in worker threads.
        journal = StandbyJournal(lambda: OrderJournal.reader(path), lambda: rep.version)
        ledger = StandbyLedger(lambda: Ledger(con.cursor()), lambda: rep.version)
        self.pipeline.journal = journal  # type: ignore[assignment]
        self.pipeline.ledger = ledger  # type: ignore[assignment]
        if self._writer is not None:
            self._writer.ledger = ledger  # type: ignore[assignment]
        log.info("orders_standby", reason="journal and ledger follow the leader through replication")

    def _as_leader(self) -> None:
        """Fresh journal and ledger over the (replicated) database: their caches are read now."""
        assert self.pipeline is not None and self._con is not None
        ledger = Ledger(self._con)
        self._close_journal()
        self.pipeline.journal = self._open_journal()
        self.pipeline.ledger = ledger
        if self._writer is not None:
            self._writer.ledger = ledger

    async def _background(self, writer: LedgerWriter, scope: anyio.CancelScope) -> None:
        try:
            with scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(writer.run, name="orders:ledger-writer")
                    if self.replicator is not None:
                        await self.replicator.start(tg)
                    await self._run(tg)
                    tg.cancel_scope.cancel()
        finally:
            self._done.set()

    def _leader(self) -> bool:
        return self.pipeline is not None and self.pipeline.lease.holds_with_margin()

    def is_leader(self) -> bool:
        """This instance holds the lease with margin (it reconciles, trades and writes the journal
        and ledger)."""
        return self._leader()

    async def _run(self, tg: TaskGroup) -> None:
        assert self.reconciliation is not None
        recon = self.reconciliation
        next_at = 0.0
        retry = 1.0
        while not self._stopping:
            await self._check_ack()
            await self._check_journal()
            now = anyio.current_time()
            try:
                if self._leader() and now >= next_at:
                    delay = float(self.config.reconcile_interval)
                    if not recon.startup_done:
                        # Trading resumes once the exchange's open orders are known; the journal's
                        # unfinished orders are recovered beside new ones (reserved meanwhile).
                        await recon.reconcile_on_startup(recover_in=tg)
                        if recon.startup_done:
                            self._recovered_token = recon.pipeline.lease.token
                            log.info("orders_trading_enabled")
                            retry = 1.0
                        else:
                            # Already logged (reconcile_failed) and alerted per exchange. Tried
                            # again after a growing delay: an exchange blocks an IP that keeps
                            # sending a refused token.
                            log.warning("orders_trading_still_halted", reason=recon.pipeline.halts.get("startup", ""),
                                        retry_in_s=retry)
                            delay, retry = retry, min(retry * 2, float(self.config.reconcile_interval))
                    else:
                        await recon.reconcile_all()
                    next_at = anyio.current_time() + delay
                if self._leader() and recon.startup_done and recon.pipeline.lease.token != self._recovered_token:
                    # A new tenure trades: resume what the journal left unfinished. Not inside the
                    # takeover step: orders can only be sent once trading is enabled, and a step
                    # that tried would fail every takeover (NotLeaderError) forever.
                    token = recon.pipeline.lease.token
                    recovery = InFlightRecovery(recon.pipeline)
                    tg.start_soon(recon.run_recovery, recovery, recovery.claim(), name="orders:recovery")
                    self._recovered_token = token
            except Exception as exc:
                log.error("orders_reconcile_failed", error=f"{type(exc).__name__}: {exc}")
                next_at = anyio.current_time() + 1.0
            # Until this instance trades, leadership is looked at often (an in-memory check): a
            # takeover's start-up reconciliation begins within 50 ms of the lease, not 500.
            await anyio.sleep(0.5 if recon.startup_done else 0.05)

    async def _check_journal(self) -> None:
        """While halted for the journal, an empty write tells when the data dir takes writes again."""
        journal = self.pipeline.journal if self.pipeline is not None else None
        if isinstance(journal, OrderJournal) and self.pipeline is not None and "journal" in self.pipeline.halts:
            try:
                await journal.ping()
            except JournalWriteError:
                pass  # still failing: reported once when it started

    async def _check_ack(self) -> None:
        """``hrkernel reconcile --ack`` leaves a file: an operator acknowledged the drift."""
        ack = self.db_path.parent / ACK_FILE
        if ack.exists() and self.reconciliation is not None:
            from hrkernel.orders.operator import acknowledge_drift

            ack.unlink(missing_ok=True)
            await acknowledge_drift(self.reconciliation, "hrkernel reconcile --ack")

    async def on_takeover(self, token: int) -> None:
        """HA takeover step: catch up with the replication stream and mark the new tenure (with
        replication), then reconcile before this tenure may trade (no-op before start).

        Unfinished journaled orders are resumed by the run loop once this tenure trades."""
        if self.replicator is not None and self.pipeline is not None:
            await self.replicator.take_over(token)
            self._as_leader()
            await self._adopt_unreplicated_orders()
        if self.reconciliation is not None and self.reconciliation.startup_done:
            await self.reconciliation.reconcile_all()

    async def _adopt_unreplicated_orders(self) -> None:
        """Journal the orders a predecessor placed after its last replicated row.

        The replicated ledger has the predecessor's opening balance, so the fills of such orders
        are in no balance here, and the journal does not know them: reconciliation would report
        the fills as strangers and the balance as drift (or cancel the order as an orphan while
        it rests). An order whose client order id is one our pipeline makes — open now, or
        filled after the opening balance — is adopted as ACKED; reconciliation and recovery then
        post its fills and verify it, like any order left in flight."""
        p = self.pipeline
        assert p is not None
        for name, exchange in sorted(p.exchanges.items()):
            deadline = anyio.current_time() + ADOPT_RETRY_FOR
            while True:
                try:
                    await self._adopt_from(name, exchange)
                    break
                except ExchangeError as exc:
                    left = deadline - anyio.current_time()
                    if not exc.retryable or left <= 0:
                        if exc.retryable:
                            # Trading on would count the predecessor's unpublished fills as drift:
                            # the takeover fails instead, the lease is released and tried again.
                            raise
                        log.error("orders_unreplicated_orders_not_checked", exchange=name,
                                  error=f"{type(exc).__name__}: {exc}")
                        break
                    if not p.lease.holds_with_margin():
                        raise NotLeaderError(f"takeover: lease lost while looking up {name}'s unpublished orders") from exc
                    retry_after = getattr(exc, "retry_after", None)
                    wait = min(left, max(float(retry_after), 0.1) if retry_after is not None else 1.0)
                    log.warning("orders_unreplicated_orders_retry", exchange=name, retry_in_s=round(wait, 2),
                                error=f"{type(exc).__name__}: {exc}")
                    await anyio.sleep(wait)
                except Exception as exc:  # reconciliation still reports what is left as drift
                    log.error("orders_unreplicated_orders_not_checked", exchange=name,
                              error=f"{type(exc).__name__}: {exc}")
                    break

    async def _adopt_from(self, name: str, exchange: Any) -> None:
        """:meth:`_adopt_unreplicated_orders` for one exchange (raises what the exchange raised)."""
        p = self.pipeline
        assert p is not None
        opened = p.ledger.opened_at(name)
        # Without replicated history (a rebuilt replica) the opening balance, read from
        # the exchange by the coming reconciliation, holds every fill made so far.
        fills = await exchange.recent_fills() if opened is not None else []
        strangers: dict[str, Any] = {}
        for fill in fills:
            assert opened is not None
            at = fill.time if fill.time.tzinfo else fill.time.replace(tzinfo=UTC)
            if at <= opened or fill.order_id in strangers or p.ledger.has_fill(name, fill.trade_id):
                continue
            if p.journal.by_exchange_id(name, fill.order_id) is None:
                strangers[fill.order_id] = fill
        orders = {o.exchange_id: o for o in await exchange.list_open_orders()
                  if p.journal.by_exchange_id(name, o.exchange_id) is None}
        for exchange_id in strangers:
            orders[exchange_id] = await exchange.get_order(exchange_id=exchange_id)
        for exchange_id, order in orders.items():
            coid = order.client_order_id
            if not coid or not _OUR_CLIENT_ID.fullmatch(coid) or p.journal.get(coid) is not None:
                continue  # not placed by our pipeline, or journaled (reconciliation follows it up)
            market = await p.market(name, order.symbol)
            await p.journal.create(OrderRecord(
                client_order_id=coid, signal_id=f"adopted:{name}:{exchange_id}", exchange=name,
                symbol=order.symbol, base=market.base, quote=market.quote, side=order.side.value,
                type=order.type.value, amount=order.amount, price=order.price, state=OrderState.ACKED,
                exchange_order_id=exchange_id, attempts=1,
                reason="placed and filled by the previous leader after its last replicated row (adopted at takeover)",
            ))
            log.warning("orders_unreplicated_order_adopted", exchange=name, client_order_id=coid,
                        exchange_id=exchange_id, status=order.status.value)

    # -- exposure at shutdown and on demand (see hrkernel.kernel.shutdown) ------------------------

    async def stop_new_orders(self, reason: str) -> int:
        """Halt new orders, then wait for the placements under way; returns how many there were."""
        if self.pipeline is None:
            return 0
        self.pipeline.halt(SHUTDOWN_HALT, reason)
        return await exposure.wait_for_placements(self.pipeline)

    async def cancel_open_orders(self, reason: str) -> ExposureReport:
        """Cancel every open order this kernel placed (shutdown stage 2, ``orders cancel-all``)."""
        if self.pipeline is None:
            return ExposureReport(action="cancel_open_orders", problems=["the orders component is not running"])
        if not self._leader():
            # Only the leader may touch the account: a standby's cancel would be fenced anyway.
            raise NotLeaderError("cancel-all: this instance is not the leader (the leader's orders are its own to manage)")
        return await exposure.cancel_open_orders(self.pipeline, reason=reason)

    async def close_positions(self, reason: str) -> ExposureReport:
        """Flatten this kernel's net position per market (shutdown stage 3, off by default)."""
        if self.pipeline is None:
            return ExposureReport(action="close_positions", problems=["the orders component is not running"])
        return await exposure.close_positions(self.pipeline, reason=reason)

    async def stop(self) -> None:
        self._stopping = True
        if self._scope is not None:
            self._scope.cancel()  # the loop and the writer (which flushes) stop before the file closes
        if self.pipeline is not None:
            self.pipeline.halt(SHUTDOWN_HALT, "the kernel is shutting down")
        if self._scope is not None:
            with anyio.move_on_after(5):  # a replication apply in a worker thread finishes first
                await self._done.wait()
        if self.replicator is not None:
            await self.replicator.aclose()
        self._close_journal()
        if self._con is not None:
            self._con.close()
            self._con = None

    def reader(self) -> Any:
        """A fresh cursor on the orders database (for observers such as the event feed), or None
        before start / after stop. Each caller uses its own: DuckDB cursors are per thread."""
        return self._con.cursor() if self._con is not None else None

    def health_checks(self) -> dict[str, Any]:
        """Checks the health monitor runs for this component: ``orders`` (reconciliation and halts,
        see :class:`OrdersHealth`) and ``orders_execution`` (placements acknowledged within
        ``ack_bound``; verification backlog)."""
        from hrkernel.orders.health import OrderExecutionCheck

        return {self.name: OrdersHealth(self), "orders_execution": OrderExecutionCheck(
            lambda: self.pipeline, ack_bound=float(self.config.ack_bound),
            verify_deadline=float(self.config.verify_deadline), backlog_max=self.config.verify_backlog_max)}

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": "orders", "db": str(self.db_path),
                               "journal": str(self.journal_path), "exchanges": sorted(self._exchanges)}
        if self.pipeline is not None:
            out["halts"] = dict(self.pipeline.halts)
            out["stats"] = dict(self.pipeline.stats)
        if self.replicator is not None:
            out["replication"] = self.replicator.lag()
        return out
