"""What became of every signal: accepted, ordered, refused (with the reason), in one place.

A signal answered 200 by the intake can still be refused later (its amount rounds down to 0,
it is stale, the kill switch is on): without a record that refusal lived only in a log line.
Each signal gets one row, updated as it moves on, in ``<data_dir>/signals.sqlite``: SQLite
because this is a small OLTP table written once or twice per signal and read by other
processes while the kernel runs (``hrkernel signals``: SQLite lets other processes read between
writes, which the orders DuckDB file does not).

Statuses: ``accepted`` (the intake took it), ``ordered`` (the order pipeline journaled its
order: ``client_order_id`` says which), ``refused`` (``reason`` says why).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from hrkernel.bus.events import SignalEvent

FILE = "signals.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS signal_outcomes (
    signal_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    client_order_id TEXT,
    exchange TEXT, symbol TEXT, action TEXT, amount TEXT, percent TEXT, order_type TEXT,
    price TEXT, strategy TEXT, source TEXT,
    sent_at REAL, received_at REAL NOT NULL, updated_at REAL NOT NULL,
    side TEXT, filled TEXT
);
CREATE INDEX IF NOT EXISTS signal_outcomes_received ON signal_outcomes (received_at);
"""


class SignalOutcome(msgspec.Struct, frozen=True, kw_only=True):
    signal_id: str
    status: str
    reason: str = ""
    client_order_id: str | None = None
    exchange: str | None = None
    symbol: str | None = None
    action: str | None = None
    amount: str | None = None
    percent: str | None = None
    order_type: str | None = None
    price: str | None = None
    strategy: str | None = None
    source: str | None = None
    sent_at: float | None = None
    received_at: float = 0.0
    updated_at: float = 0.0
    side: str | None = None
    """``buy``/``sell`` of its order, once executed."""
    filled: str | None = None
    """How much of its order filled (base currency), once executed."""


class StrategyPosition(msgspec.Struct, frozen=True, kw_only=True):
    exchange: str
    strategy: str | None
    symbol: str
    amount: Decimal
    """Base currency held: the strategy's filled buys minus its filled sells."""
    orders: list[str] = msgspec.field(default_factory=list)
    """Client order ids of the orders that made it (their fills are in the ledger)."""


def _text(value: object) -> str | None:
    if isinstance(value, Decimal):
        return format(value, "f")  # 0.0000001, not 1E-7
    return None if value is None else str(value)


class SignalOutcomes:
    """The outcome table. Writers: the intake and the signal router of one kernel."""

    def __init__(self, path: str | Path, *, read_only: bool = False, clock: Any = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        if read_only:
            self._con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # A rollback journal, not WAL: WAL's index is a memory-mapped file, and on a data dir
            # that turns read-only or immutable a write to that mapping kills the whole kernel
            # with SIGBUS (the read-only chaos scenario), where a rollback journal's write() fails
            # with an error the caller logs. Readers (`hrkernel signals`) still read beside it.
            self._con.execute("PRAGMA journal_mode=TRUNCATE")
            # NORMAL: a power cut may lose the last outcomes, never corrupt the file; the order
            # itself is durable in the journal, this is its operator-facing summary.
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._con.executescript(SCHEMA)

    def close(self) -> None:
        self._con.close()

    def record(self, event: SignalEvent, status: str, reason: str = "",
               client_order_id: str | None = None) -> None:
        now = self._clock()
        received = event.received_at.timestamp() if event.received_at else now
        with self._lock:
            self._con.execute(
                "INSERT INTO signal_outcomes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,NULL) "
                "ON CONFLICT (signal_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, "
                "client_order_id = coalesce(excluded.client_order_id, client_order_id), "
                "updated_at = excluded.updated_at",
                [event.signal_id, status, reason, client_order_id, event.exchange, event.symbol,
                 event.action.value, _text(event.amount), _text(event.percent), event.order_type,
                 _text(event.price), event.strategy, event.source, event.time.timestamp(), received, now],
            )

    def set_filled(self, signal_id: str, side: str, filled: Decimal) -> None:
        """The executed order's side and filled amount: what the signal's strategy now owns."""
        with self._lock:
            self._con.execute("UPDATE signal_outcomes SET side = ?, filled = ?, updated_at = ? WHERE signal_id = ?",
                              [side, str(filled), self._clock(), signal_id])

    def position(self, exchange: str, strategy: str | None, symbol: str) -> Decimal:
        """What ``strategy`` (None: signals without one) holds of ``symbol``'s base currency on
        ``exchange``: its orders' fills, buys minus sells."""
        return sum((p.amount for p in self.positions()
                    if p.exchange == exchange and p.strategy == strategy and p.symbol == symbol), Decimal(0))

    def positions(self, *, include_closed: bool = False) -> list[StrategyPosition]:
        """Per (exchange, strategy, symbol): the amount held and the orders that made it."""
        with self._lock:
            rows = self._con.execute(
                "SELECT exchange, strategy, symbol, side, filled, client_order_id FROM signal_outcomes "
                "WHERE filled IS NOT NULL").fetchall()
        totals: dict[tuple[str, str | None, str], tuple[Decimal, list[str]]] = {}
        for exchange, strategy, symbol, side, filled, coid in rows:
            key = (exchange, strategy, symbol)
            signed = Decimal(filled) if side == "buy" else -Decimal(filled)
            amount, orders = totals.get(key, (Decimal(0), []))
            totals[key] = (amount + signed, [*orders, coid] if coid else orders)
        return [StrategyPosition(exchange=e, strategy=s, symbol=y, amount=a, orders=o)
                for (e, s, y), (a, o) in sorted(totals.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2]))
                if a != 0 or include_closed]

    def recent(self, limit: int = 50, status: str | None = None) -> list[SignalOutcome]:
        """The newest ``limit`` signals, newest first."""
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        with self._lock:
            cur = self._con.execute(
                f"SELECT * FROM signal_outcomes {where} ORDER BY received_at DESC LIMIT ?", [*args, limit])
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return [SignalOutcome(**dict(zip(names, row, strict=True))) for row in rows]

    def get(self, signal_id: str) -> SignalOutcome | None:
        with self._lock:
            cur = self._con.execute("SELECT * FROM signal_outcomes WHERE signal_id = ?", [signal_id])
            names = [d[0] for d in cur.description]
            row = cur.fetchone()
        return SignalOutcome(**dict(zip(names, row, strict=True))) if row else None
