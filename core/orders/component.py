"""The ``orders`` kernel component: journal + ledger + pipeline + reconciliation, wired to the
kernel's exchanges, the HA lease (``kernel.get("ha")``) and the alert system.

Start-up: the DuckDB file under ``[kernel] data_dir`` is opened, new orders are halted
(``startup``), and a background task reconciles every exchange, resumes the journal's
non-terminal orders, then lifts the halt — trading starts only after start-up reconciliation.
While leader it reconciles again every ``[orders] reconcile_interval``; on every leadership gain
the HA takeover step runs a reconciliation before the HA gate opens.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import duckdb
from anyio.abc import TaskGroup

from hrkernel.kernel.component import Component
from hrkernel.ledger import Ledger, LedgerWriter
from hrkernel.logging import get_logger
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.journal import OrderJournal
from hrkernel.orders.pipeline import AlwaysLeader, LeaseView, TransactionVerificationPipeline
from hrkernel.orders.reconcile import StateReconciliation

if TYPE_CHECKING:
    from hrkernel.kernel.kernel import Kernel

__all__ = ["ACK_FILE", "OrdersComponent", "build_orders"]

ACK_FILE = "orders.drift-ack"
"""Left in the data dir by ``hrkernel reconcile --ack``; consumed by the running component."""

log = get_logger("hrkernel.orders")


class OrdersComponent(Component):
    name = "orders"

    def __init__(self, config: OrdersSection, *, db_path: Path, exchanges: dict[str, Any],
                 lease: LeaseView | None, alerts: Any = None) -> None:
        self.config = config
        self.db_path = db_path
        self._exchanges = exchanges
        """name → object whose ``obj`` attribute is the Exchange (a PluginComponent), or the Exchange."""
        self._lease = lease
        self._alerts = alerts
        self.pipeline: TransactionVerificationPipeline | None = None
        self.reconciliation: StateReconciliation | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._stopping = False
        self._recovered_token: int | None = None
        """The lease token of the tenure whose unfinished orders were last resumed."""
        self._scope: anyio.CancelScope | None = None

    async def _alert(self, level: str, message: str, details: dict[str, Any]) -> None:
        if self._alerts is None:
            return
        await self._alerts.send_alert(source="reconciliation" if "drift" in message or "orphan" in message else "orders",
                                      level=level, title=message, context={k: str(v) for k, v in details.items()})

    async def start(self, tg: TaskGroup) -> None:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(str(self.db_path))
        exchanges = {name: getattr(obj, "obj", obj) for name, obj in self._exchanges.items()}
        ledger = Ledger(self._con)
        writer = LedgerWriter(ledger)
        self.pipeline = TransactionVerificationPipeline(
            exchanges=exchanges, journal=OrderJournal(self._con), ledger=ledger, config=self.config,
            lease=self._lease or AlwaysLeader(), alert=self._alert, writer=writer,
        )
        self.pipeline.halt("startup", "start-up reconciliation has not finished")
        self.reconciliation = StateReconciliation(self.pipeline)
        self._scope = scope = anyio.CancelScope()
        tg.start_soon(self._background, writer, scope, name="orders:background")

    async def _background(self, writer: LedgerWriter, scope: anyio.CancelScope) -> None:
        with scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer.run, name="orders:ledger-writer")
                await self._run()
                tg.cancel_scope.cancel()

    def _leader(self) -> bool:
        return self.pipeline is not None and self.pipeline.lease.holds_with_margin()

    async def _run(self) -> None:
        assert self.reconciliation is not None
        recon = self.reconciliation
        next_at = 0.0
        while not self._stopping:
            self._check_ack()
            now = anyio.current_time()
            try:
                if self._leader() and now >= next_at:
                    if not recon.startup_done:
                        await recon.reconcile_on_startup()
                        self._recovered_token = recon.pipeline.lease.token
                        log.info("orders_trading_enabled")
                    else:
                        await recon.reconcile_all()
                    next_at = anyio.current_time() + float(self.config.reconcile_interval)
                if self._leader() and recon.startup_done and recon.pipeline.lease.token != self._recovered_token:
                    # A new tenure trades: resume what the journal left unfinished. Not inside the
                    # takeover step: orders can only be sent once trading is enabled, and a step
                    # that tried would fail every takeover (NotLeaderError) forever.
                    token = recon.pipeline.lease.token
                    await recon.pipeline.recover()
                    self._recovered_token = token
            except Exception as exc:
                log.error("orders_reconcile_failed", error=f"{type(exc).__name__}: {exc}")
                next_at = anyio.current_time() + 1.0
            await anyio.sleep(0.5)

    def _check_ack(self) -> None:
        """``hrkernel reconcile --ack`` leaves a file: an operator acknowledged the drift."""
        ack = self.db_path.parent / ACK_FILE
        if ack.exists() and self.reconciliation is not None:
            ack.unlink(missing_ok=True)
            self.reconciliation.acknowledge("hrkernel reconcile --ack")

    async def on_takeover(self, token: int) -> None:
        """HA takeover step: reconcile before this tenure may trade (no-op before start).

        Unfinished journaled orders are resumed by the run loop once this tenure trades."""
        if self.reconciliation is not None and self.reconciliation.startup_done:
            await self.reconciliation.reconcile_all()

    async def stop(self) -> None:
        self._stopping = True
        if self._scope is not None:
            self._scope.cancel()  # the loop and the writer (which flushes) stop before the file closes
        if self.pipeline is not None:
            self.pipeline.halt("shutdown", "the kernel is shutting down")
        if self._con is not None:
            self._con.close()
            self._con = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": "orders", "db": str(self.db_path),
                               "exchanges": sorted(self._exchanges)}
        if self.pipeline is not None:
            out["halts"] = dict(self.pipeline.halts)
            out["stats"] = dict(self.pipeline.stats)
        return out


def build_orders(kernel: Kernel) -> None:
    """Kernel builder (after the exchanges): the ``orders`` component, when exchanges exist."""
    config: OrdersSection = getattr(kernel.config, "orders", None) or OrdersSection()
    exchanges = {item.id: kernel.get(f"exchange:{item.id}") for item in kernel.plugin_config.exchanges}
    if not config.enabled or not exchanges:
        return
    ha = kernel.get("ha")
    component = OrdersComponent(config, db_path=kernel.data_dir / config.db_file, exchanges=exchanges,
                                lease=ha, alerts=kernel.get("alerts"))
    if ha is not None and hasattr(ha, "add_takeover_step"):
        ha.add_takeover_step(component.on_takeover)
    kernel.add(component)
