"""The design's ``TransactionVerificationPipeline`` and ``StateReconciliation`` signatures.

hrkernel's pipeline (:mod:`hrkernel.orders.pipeline`) takes typed :class:`Signal` objects and
returns :class:`OrderRecord` journal rows; reconciliation reports every exchange of a pipeline.
The classes here take the documents' arguments — ``create_transaction(type="market_buy",
symbol="BTC/USDT", amount=0.001, exchange="nobitex")``, ``execute_transaction(tx) -> bool`` —
convert them at this edge (floats exactly, via :func:`hrkernel.compat.convert.exact_decimal`) and
run the kernel's pipeline underneath: the same journal, lease checks, look-ups and ledger.
"""

from __future__ import annotations

import inspect
import tempfile
import uuid
import weakref
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import msgspec

from hrkernel.bus.events import OrderEvent
from hrkernel.compat.convert import exact_decimal, seconds
from hrkernel.duckdb_conn import open_database
from hrkernel.exchange import Exchange, OrderType, Side, canonical_symbol
from hrkernel.ledger import Ledger
from hrkernel.logging import get_logger
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.errors import OrderRejectedError
from hrkernel.orders.journal import OrderJournal, OrderRecord, OrderState
from hrkernel.orders.pipeline import LeaseView, Signal
from hrkernel.orders.pipeline import TransactionVerificationPipeline as _KernelPipeline
from hrkernel.orders.reconcile import ReconciliationReport as _KernelReport
from hrkernel.orders.reconcile import StateReconciliation as _KernelReconciliation
from hrkernel.types import Duration

__all__ = ["ReconciliationReport", "StateReconciliation", "TransactionVerificationPipeline", "parse_type"]

log = get_logger("hrkernel.compat.orders")
ORDERS_TOPIC = "orders"


def parse_type(value: str) -> tuple[OrderType, Side]:
    """``"market_buy"`` → (MARKET, BUY); ``"limit_sell"`` → (LIMIT, SELL)."""
    kind, _, side = str(value).lower().partition("_")
    try:
        return OrderType(kind), Side(side)
    except ValueError:
        raise ValueError(f"transaction type must be market_buy, market_sell, limit_buy or limit_sell, "
                         f"found {value!r}") from None


_files: dict[str, duckdb.DuckDBPyConnection] = {}
_journal_files: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, Path] = weakref.WeakKeyDictionary()
"""Where each connection's order journal lives (the journal is SQLite, beside the DuckDB file)."""
_stores: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, tuple[OrderJournal, Ledger]] = weakref.WeakKeyDictionary()


def _database(database: str | duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """One connection per database file in this process (``:memory:`` is always a new one)."""
    if not isinstance(database, str):
        return database
    if database == ":memory:":
        con = open_database(database)
        # The journal is a durable file even for an in-memory ledger: a private temporary one.
        _journal_files[con] = Path(tempfile.mkdtemp(prefix="hrkernel-compat-")) / "orders.journal.sqlite"
        return con
    path = str(Path(database).resolve())
    if path not in _files:
        _files[path] = open_database(path)
        _journal_files[_files[path]] = Path(path + ".journal.sqlite")
    return _files[path]


def _journal_and_ledger(con: duckdb.DuckDBPyConnection) -> tuple[OrderJournal, Ledger]:
    """The journal and ledger of a connection, shared by every compat object using it: a Ledger
    keeps running totals and numbers its transactions itself, so it must be the only writer."""
    if con not in _stores:
        journal_file = _journal_files.get(con)
        if journal_file is None:  # a connection the caller opened: the journal in a temporary file
            journal_file = _journal_files[con] = Path(tempfile.mkdtemp(prefix="hrkernel-compat-")) / "orders.journal.sqlite"
        _stores[con] = (OrderJournal(journal_file), Ledger(con))
    return _stores[con]


class TransactionVerificationPipeline:
    """``TransactionVerificationPipeline(exchange_adapter=, message_bus=, verification_timeout=,
    max_retries=)`` over the kernel's pipeline.

    ``database``: the DuckDB file (or connection) for journal and ledger; in memory by default.
    On first use the ledger gets the exchange's balances as its opening balance (as the first
    reconciliation would), since the pipeline refuses orders the ledger cannot pay.
    ``message_bus`` (an :class:`hrkernel.bus.base.Bus`), when given, receives an
    :class:`~hrkernel.bus.events.OrderEvent` on topic ``orders`` after each step.
    """

    def __init__(
        self,
        exchange_adapter: Exchange,
        message_bus: Any = None,
        verification_timeout: float = 30.0,
        max_retries: int = 3,
        *,
        database: str | duckdb.DuckDBPyConnection = ":memory:",
        lease: LeaseView | None = None,
        config: OrdersSection | None = None,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise ValueError(f"max_retries must be a whole number >= 1, found {max_retries!r}")
        base = config or OrdersSection()
        self.config = msgspec.structs.replace(
            base, verify_deadline=Duration(seconds(verification_timeout, "verification_timeout")),
            submit_attempts=max_retries,
        )
        self.exchange_adapter = exchange_adapter
        self.exchange_name = str(getattr(exchange_adapter, "name", "") or "exchange")
        self.message_bus = message_bus
        self.database = _database(database)
        self.journal, self.ledger = _journal_and_ledger(self.database)
        self.pipeline = _KernelPipeline(exchanges={self.exchange_name: exchange_adapter}, journal=self.journal,
                                        ledger=self.ledger, config=self.config, lease=lease)
        self.last_result: OrderRecord | None = None
        """The full record of the last executed transaction."""

    async def _opening_balances(self) -> None:
        if self.ledger.has_kind(self.exchange_name, "deposit"):
            return
        read_at = datetime.now(UTC)
        for balance in await self.exchange_adapter.balances():
            if balance.total != 0:
                self.ledger.deposit(self.exchange_name, balance.currency, balance.total,
                                    reason="opening balance (compat pipeline)", at=read_at)

    async def create_transaction(
        self,
        type: str,
        symbol: str,
        amount: float | int | str | Decimal,
        exchange: str | None = None,
        price: float | int | str | Decimal | None = None,
        transaction_id: str | None = None,
    ) -> OrderRecord:
        """Prepare one order; returns its journal record (``PREPARED``, or ``FAILED`` with the
        reason when refused). ``transaction_id`` is the idempotency key (a fresh one by default)."""
        name = exchange or self.exchange_name
        if name != self.exchange_name:
            raise ValueError(f"exchange {name!r}: this pipeline trades on {self.exchange_name!r}")
        order_type, side = parse_type(type)
        signal = Signal(
            signal_id=transaction_id or f"compat-{uuid.uuid4().hex}", exchange=name,
            symbol=canonical_symbol(symbol), side=side, type=order_type,
            amount=exact_decimal(amount, "amount"),
            price=None if price is None else exact_decimal(price, "price"),
        )
        await self._opening_balances()
        try:
            rec = await self.pipeline.create_transaction(signal)
        except OrderRejectedError:
            refused = self.journal.by_signal(signal.signal_id)
            if refused is None:
                raise
            rec = refused
        await self._publish(rec)
        return rec

    async def execute_transaction(self, tx: OrderRecord) -> bool:
        """Execute and verify ``tx``. True when the order filled completely and every fill is in
        the ledger (``VERIFIED``); False otherwise — refused, rejected, cancelled, still open at
        the deadline, or unresolved. The full record: :attr:`last_result` or :meth:`record`."""
        if tx.is_terminal:
            rec = self.journal.get(tx.client_order_id) or tx
        else:
            rec = await self.pipeline.execute_transaction(tx)
        self.last_result = rec
        await self._publish(rec)
        return rec.state is OrderState.VERIFIED and rec.filled_amount == rec.amount

    def record(self, tx: OrderRecord | str) -> OrderRecord | None:
        """The journal's current record of ``tx`` (or of a client order id)."""
        return self.journal.get(tx if isinstance(tx, str) else tx.client_order_id)

    async def _publish(self, rec: OrderRecord) -> None:
        if self.message_bus is None:
            return
        event = OrderEvent(
            time=datetime.now(UTC), exchange=rec.exchange, symbol=rec.symbol, client_order_id=rec.client_order_id,
            state=rec.state.value, side=rec.side, amount=rec.amount, price=rec.price, signal_id=rec.signal_id,
            detail=rec.reason or "",
        )
        try:
            await self.message_bus.publish(ORDERS_TOPIC, event)
        except Exception as exc:  # the bus is a notification: it never changes an order's outcome
            log.warning("compat_order_event_not_published", client_order_id=rec.client_order_id,
                        error=f"{type(exc).__name__}: {exc}")


class ReconciliationReport(msgspec.Struct, frozen=True, kw_only=True):
    """The documents' summary of a start-up reconciliation (``reports``: the kernel's full ones)."""

    open_orders_found: int
    orders_cancelled: int
    positions_synced: int
    """Currencies whose ledger balance was brought to the exchange's (opening balance or adjusted)."""
    balance_drift: dict[str, Decimal]
    """Exchange minus ledger per currency, before any correction (non-zero entries only)."""
    discrepancies: list[str]
    reports: list[_KernelReport]


class StateReconciliation:
    """``StateReconciliation(exchange_connector, database, cache).reconcile_on_startup()``.

    ``database``: the DuckDB file or connection holding the journal and ledger (a compat
    pipeline's ``database``: both then share one journal and ledger), or a compat
    :class:`TransactionVerificationPipeline`. ``cache``
    (optional): anything with ``set(key, value)`` (a Redis client, sync or async), given the
    report as JSON under ``hrkernel:reconciliation:last``.
    """

    CACHE_KEY = "hrkernel:reconciliation:last"

    def __init__(self, exchange_connector: Exchange, database: Any, cache: Any = None, *,
                 config: OrdersSection | None = None) -> None:
        if isinstance(database, TransactionVerificationPipeline):
            pipeline = database.pipeline
        else:
            journal, ledger = _journal_and_ledger(_database(database))
            name = str(getattr(exchange_connector, "name", "") or "exchange")
            pipeline = _KernelPipeline(exchanges={name: exchange_connector}, journal=journal, ledger=ledger,
                                       config=config)
        self.pipeline = pipeline
        self.cache = cache
        self.reconciliation = _KernelReconciliation(pipeline)

    async def reconcile_on_startup(self) -> ReconciliationReport:
        reports = await self.reconciliation.reconcile_on_startup()
        summary = ReconciliationReport(
            open_orders_found=sum(len(r.open_orders) for r in reports),
            orders_cancelled=sum(1 for r in reports for o in r.orphans if o.action == "cancel"),
            positions_synced=sum(1 for r in reports for d in r.drift if d.action in ("opening balance", "adjusted")),
            balance_drift={d.currency: d.drift for r in reports for d in r.drift},
            discrepancies=[d for r in reports for d in r.discrepancies],
            reports=reports,
        )
        if self.cache is not None:
            body = msgspec.json.encode({k: v for k, v in msgspec.structs.asdict(summary).items() if k != "reports"})
            result = self.cache.set(self.CACHE_KEY, body)
            if inspect.isawaitable(result):
                await result
        return summary
