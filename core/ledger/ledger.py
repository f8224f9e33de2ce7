"""Double-entry shadow accounting in DuckDB.

Every movement of value is a *transaction* made of *postings* (account, currency, signed amount).
A transaction's postings sum to zero per currency; :meth:`Ledger.post_many` checks that before
anything is written and writes a whole batch in one DuckDB transaction (group commit). Balances
and positions are sums over postings: nothing is stored twice.

Accounts (``currency`` is a separate column, so one account may hold several currencies):

- ``<exchange>:<CCY>`` — what we hold on the exchange (e.g. ``nobitex:BTC``);
- ``trades:<exchange>:<CCY>`` — the other side of our trades on that exchange;
- ``fees:<exchange>:<CCY>`` — fees paid;
- ``external:deposits`` — value entering or leaving from outside (opening balances, deposits);
- ``adjustments:<exchange>`` — corrections from reconciliation, each with its reason.

Fills are idempotent on ``(exchange, trade_id)`` (a unique constraint backs the check), so the
same fill seen by polling and by a push feed, or again after a restart, is posted once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

import duckdb
import msgspec

from hrkernel.duckdb_conn import rollback
from hrkernel.exchange import Fill, Side
from hrkernel.ledger.errors import UnbalancedTransactionError

__all__ = ["Ledger", "Posting", "Transaction", "fill_transaction"]

_QUANT = Decimal(1).scaleb(-18)
_CTX = Context(prec=80)
"""Enough digits for any DECIMAL(38,18) value and products of two of them (the default 28 is not)."""
_MAX = Decimal(10) ** 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_tx (
    tx_id BIGINT PRIMARY KEY,
    kind VARCHAR NOT NULL,
    exchange VARCHAR,
    trade_id VARCHAR,
    order_ref VARCHAR,
    reason VARCHAR,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (exchange, trade_id)
);
CREATE TABLE IF NOT EXISTS ledger_posting (
    tx_id BIGINT NOT NULL,
    account VARCHAR NOT NULL,
    currency VARCHAR NOT NULL,
    amount DECIMAL(38, 18) NOT NULL
);
"""


def _naive_utc(at: datetime) -> datetime:
    """DuckDB TIMESTAMP columns hold UTC without a zone (TIMESTAMPTZ reads would need pytz)."""
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at


_SEP = "\x1f"


def _col(i: int, cast: str) -> str:
    return f"NULLIF(unnest(string_split(${i}, chr(31))), '')::{cast}"


_INSERT_TX = (
    "INSERT INTO ledger_tx SELECT * FROM (SELECT "
    + ", ".join(_col(i, t) for i, t in enumerate(
        ["BIGINT", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "TIMESTAMP"], 1))
    + ")"
)
_INSERT_POSTINGS = (
    "INSERT INTO ledger_posting SELECT * FROM (SELECT "
    + ", ".join(_col(i, t) for i, t in enumerate(["BIGINT", "VARCHAR", "VARCHAR", "DECIMAL(38,18)"], 1))
    + ")"
)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


class Posting(msgspec.Struct, frozen=True):
    account: str
    currency: str
    amount: Decimal


class Transaction(msgspec.Struct, frozen=True, kw_only=True):
    """One balanced set of postings. ``trade_id`` (with ``exchange``) makes it a fill: posted once."""

    kind: str
    postings: tuple[Posting, ...]
    exchange: str | None = None
    trade_id: str | None = None
    order_ref: str | None = None
    reason: str | None = None
    created_at: datetime | None = None


def _check(tx: Transaction, where: str) -> None:
    if not tx.postings:
        raise UnbalancedTransactionError(f"{where}: transaction {tx.kind!r} has no postings")
    sums: dict[str, Decimal] = {}
    for p in tx.postings:
        if not isinstance(p.amount, Decimal) or not p.amount.is_finite():
            raise UnbalancedTransactionError(f"{where}: posting {p.account}/{p.currency} amount {p.amount!r} is not a finite Decimal")
        if abs(p.amount) >= _MAX or p.amount != p.amount.quantize(_QUANT, context=_CTX):
            raise UnbalancedTransactionError(
                f"{where}: posting {p.account}/{p.currency} amount {p.amount} does not fit DECIMAL(38,18)"
            )
        if not p.account or not p.currency or _SEP in p.account or _SEP in p.currency:
            raise UnbalancedTransactionError(f"{where}: posting with an empty account or currency, or a control character in one")
        sums[p.currency] = _CTX.add(sums.get(p.currency, Decimal(0)), p.amount)
    bad = {c: s for c, s in sums.items() if s != 0}
    if bad:
        detail = ", ".join(f"{c} {s:+}" for c, s in sorted(bad.items()))
        raise UnbalancedTransactionError(f"{where}: transaction {tx.kind!r} does not balance per currency ({detail})")
    if tx.trade_id is not None and not (tx.exchange and tx.trade_id):
        raise UnbalancedTransactionError(f"{where}: a fill transaction needs both exchange and trade_id")
    for text in (tx.kind, tx.exchange, tx.trade_id, tx.order_ref, tx.reason):
        if text is not None and _SEP in text:
            raise UnbalancedTransactionError(f"{where}: control character \\x1f in transaction field {text!r}")


def fill_transaction(exchange: str, base: str, quote: str, fill: Fill, *, order_ref: str | None = None) -> Transaction:
    """The postings of one fill: base leg, quote leg, fee leg (fee in ``fill.fee_currency``)."""
    notional = _CTX.multiply(fill.amount, fill.price).quantize(_QUANT, context=_CTX)
    sign = Decimal(1) if fill.side is Side.BUY else Decimal(-1)
    postings = [
        Posting(f"{exchange}:{base}", base, sign * fill.amount),
        Posting(f"trades:{exchange}:{base}", base, -sign * fill.amount),
        Posting(f"{exchange}:{quote}", quote, -sign * notional),
        Posting(f"trades:{exchange}:{quote}", quote, sign * notional),
    ]
    if fill.fee:
        fee_ccy = fill.fee_currency
        postings.append(Posting(f"{exchange}:{fee_ccy}", fee_ccy, -fill.fee))
        postings.append(Posting(f"fees:{exchange}:{fee_ccy}", fee_ccy, fill.fee))
    return Transaction(
        kind="fill",
        postings=tuple(postings),
        exchange=exchange,
        trade_id=fill.trade_id,
        order_ref=order_ref or fill.order_id,
        created_at=fill.time,
    )


class Ledger:
    """The ledger over one DuckDB database (a file path, or a connection shared with the journal).

    Writes go through one connection, serialised by a lock; reads use a separate cursor (DuckDB's
    MVCC: a reader sees the last committed state and never waits for a writer).
    """

    def __init__(self, db: str | duckdb.DuckDBPyConnection) -> None:
        self._con = duckdb.connect(db) if isinstance(db, str) else db
        self._con.execute(SCHEMA)
        self._reader = self._con.cursor()
        self._lock = threading.Lock()
        row = self._con.execute("SELECT coalesce(max(tx_id), 0) FROM ledger_tx").fetchone()
        self._next_id = int(row[0]) + 1 if row else 1
        self._opened: dict[str, datetime] = {}
        self._totals: dict[tuple[str, str], Decimal] | None = None
        """Running sums per (account, currency); loaded on first read, moved by every commit.
        One Ledger object per database: it is the only writer of its postings."""

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        return self._con

    def close(self) -> None:
        self._reader.close()

    # -- writes -------------------------------------------------------------------------------

    def post(self, tx: Transaction) -> int | None:
        """Post one transaction; returns its id, or ``None`` for a fill already posted."""
        ids = self.post_many([tx])
        return ids[0]

    def post_many(self, txs: Sequence[Transaction]) -> list[int | None]:
        """Post a batch in ONE DuckDB transaction (all or nothing). Every transaction is checked
        first; a fill already in the ledger (or twice in the batch) gets ``None`` instead of an id."""
        for i, tx in enumerate(txs):
            _check(tx, f"ledger batch item {i}")
        with self._lock:
            keys = [(tx.exchange, tx.trade_id) for tx in txs if tx.trade_id is not None]
            seen: set[tuple[str | None, str]] = set()
            if keys:
                existing = self._existing_fills(keys)
                seen.update(existing)
            now = datetime.now(UTC)
            ids: list[int | None] = []
            tx_cols: list[list[Any]] = [[], [], [], [], [], [], []]
            p_tx: list[int] = []
            p_acc: list[str] = []
            p_ccy: list[str] = []
            p_amt: list[str] = []
            next_id = self._next_id
            for tx in txs:
                if tx.trade_id is not None:
                    key = (tx.exchange, tx.trade_id)
                    if key in seen:
                        ids.append(None)
                        continue
                    seen.add(key)
                tx_id = next_id
                next_id += 1
                ids.append(tx_id)
                for col, value in zip(
                    tx_cols,
                    (tx_id, tx.kind, tx.exchange, tx.trade_id, tx.order_ref, tx.reason, _naive_utc(tx.created_at or now)),
                    strict=True,
                ):
                    col.append(value)
                for p in tx.postings:
                    p_tx.append(tx_id)
                    p_acc.append(p.account)
                    p_ccy.append(p.currency)
                    p_amt.append(str(p.amount))
            if not p_tx:
                return ids
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                # Columnar bulk insert: each column travels as ONE string joined by a unit separator
                # and DuckDB splits and casts it (far cheaper than converting Python lists). Amounts
                # are cast from text to DECIMAL exactly, never through float.
                con.execute(_INSERT_TX, [_SEP.join(map(_text, col)) for col in tx_cols])
                con.execute(_INSERT_POSTINGS, [_SEP.join(map(str, col)) for col in (p_tx, p_acc, p_ccy, p_amt)])
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise
            self._next_id = next_id
            if self._totals is not None:
                # Postings are the only source of balances and post_many the only writer: the
                # running totals move by exactly what was committed. A new dict is published
                # (never one a reader may be iterating): balances() reads it without the lock.
                totals = dict(self._totals)
                for account, currency, amount in zip(p_acc, p_ccy, p_amt, strict=True):
                    key = (account, currency)
                    totals[key] = totals.get(key, Decimal(0)) + Decimal(amount)
                self._totals = totals
            return ids

    def _existing_fills(self, keys: list[tuple[str | None, str]]) -> set[tuple[str | None, str]]:
        rows = self._con.execute(
            "SELECT t.exchange, t.trade_id FROM ledger_tx t JOIN "
            "(SELECT unnest(?::VARCHAR[]) AS e, unnest(?::VARCHAR[]) AS k) q "
            "ON t.exchange = q.e AND t.trade_id = q.k",
            [[k[0] for k in keys], [k[1] for k in keys]],
        ).fetchall()
        return {(r[0], r[1]) for r in rows}

    def post_fill(self, exchange: str, base: str, quote: str, fill: Fill, *, order_ref: str | None = None) -> int | None:
        return self.post(fill_transaction(exchange, base, quote, fill, order_ref=order_ref))

    def adjust(self, exchange: str, currency: str, amount: Decimal, reason: str) -> int:
        """Correct ``<exchange>:<currency>`` by ``amount`` against ``adjustments:<exchange>``."""
        if not reason:
            raise ValueError("ledger adjustment needs a reason")
        tx = Transaction(
            kind="adjustment",
            reason=reason,
            exchange=exchange,
            postings=(
                Posting(f"{exchange}:{currency}", currency, amount),
                Posting(f"adjustments:{exchange}", currency, -amount),
            ),
        )
        tx_id = self.post(tx)
        assert tx_id is not None
        return tx_id

    def deposit(self, exchange: str, currency: str, amount: Decimal, reason: str = "deposit",
                *, at: datetime | None = None) -> int:
        """Value entering ``<exchange>:<currency>`` from outside; ``at`` dates it (default: now).
        The first deposit on a venue is its opening balance: fills dated before it are in it."""
        tx = Transaction(
            kind="deposit",
            reason=reason,
            exchange=exchange,
            created_at=at,
            postings=(
                Posting(f"{exchange}:{currency}", currency, amount),
                Posting("external:deposits", currency, -amount),
            ),
        )
        tx_id = self.post(tx)
        assert tx_id is not None
        return tx_id

    # -- reads (separate cursor; never block writes) -------------------------------------------

    def balances(self, prefix: str | None = None) -> dict[tuple[str, str], Decimal]:
        """``{(account, currency): balance}``, derived from postings (optionally accounts starting with ``prefix``).

        The sums are computed from the postings once, then kept current by :meth:`post_many`, so
        a balance check before each order does not scan a ledger that only ever grows.
        """
        totals = self._totals
        if totals is None:
            with self._lock:
                if self._totals is None:
                    rows = self._reader.execute(
                        "SELECT account, currency, sum(amount) FROM ledger_posting GROUP BY account, currency"
                    ).fetchall()
                    self._totals = {(r[0], r[1]): Decimal(r[2]) for r in rows}
                totals = self._totals
        # Once loaded, no lock: the lock is held through a commit (post_many in the ledger
        # writer's thread, 5-100 ms on a slow disk), and the order path's balance check runs on
        # the event loop; waiting for the lock stalled the loop for that long. The totals are
        # those of the last commit, as a read on the reader cursor would see them.
        return {k: v for k, v in sorted(totals.items()) if prefix is None or k[0].startswith(prefix)}

    def balances_from_postings(self) -> dict[tuple[str, str], Decimal]:
        """The same sums, recomputed from every posting (a check on the running totals)."""
        with self._lock:
            rows = self._reader.execute(
                "SELECT account, currency, sum(amount) FROM ledger_posting GROUP BY account, currency"
            ).fetchall()
        return {(r[0], r[1]): Decimal(r[2]) for r in sorted(rows)}

    def balance(self, account: str, currency: str) -> Decimal:
        return self.balances(prefix=account).get((account, currency), Decimal(0))

    def venue_balances(self, exchange: str) -> dict[str, Decimal]:
        """What the ledger says we hold on ``exchange``, per currency."""
        out: dict[str, Decimal] = {}
        for (account, currency), amount in self.balances(prefix=f"{exchange}:").items():
            if account == f"{exchange}:{currency}":
                out[currency] = amount
        return out

    def positions(self) -> list[dict[str, Any]]:
        """What is held per venue and asset (the ``<exchange>:<CCY>`` accounts), with the fees paid
        in that asset on that venue; derived from postings like every other figure."""
        balances = self.balances()
        rows: list[dict[str, Any]] = []
        for (account, currency), amount in balances.items():
            venue, _, asset = account.partition(":")
            if asset != currency or venue in ("fees", "external"):
                continue
            fees = balances.get((f"fees:{venue}:{currency}", currency), Decimal(0))
            rows.append({"exchange": venue, "asset": currency, "amount": amount, "fees_paid": fees})
        return rows

    def has_postings(self, exchange: str) -> bool:
        with self._lock:
            row = self._reader.execute(
                "SELECT count(*) FROM ledger_posting WHERE starts_with(account, ?)", [f"{exchange}:"]
            ).fetchone()
        return bool(row and row[0])

    def has_kind(self, exchange: str, kind: str) -> bool:
        """Whether any transaction of ``kind`` (e.g. ``deposit``: an opening balance) exists for ``exchange``."""
        with self._lock:
            row = self._reader.execute(
                "SELECT count(*) FROM ledger_tx WHERE exchange = ? AND kind = ?", [exchange, kind]
            ).fetchone()
        return bool(row and row[0])

    def opened_at(self, exchange: str) -> datetime | None:
        """When the first opening balance (``deposit``) for ``exchange`` was taken, if ever."""
        cached = self._opened.get(exchange)
        if cached is not None:
            return cached
        with self._lock:
            row = self._reader.execute(
                "SELECT min(created_at) FROM ledger_tx WHERE exchange = ? AND kind = 'deposit'", [exchange]
            ).fetchone()
        if not row or row[0] is None:
            return None
        self._opened[exchange] = opened = row[0].replace(tzinfo=UTC)  # the first deposit never changes
        return opened

    def after_opening(self, exchange: str, txs: Sequence[Transaction]) -> tuple[list[Transaction], list[Transaction]]:
        """Split fill transactions into those dated after ``exchange``'s opening balance and those
        at or before it: the opening balance was read from the exchange and already holds the
        latter, so posting them would count them twice (e.g. a new leader adopting orders its
        predecessor filled before this ledger was opened)."""
        opened = self.opened_at(exchange)
        if opened is None:
            return list(txs), []
        keep: list[Transaction] = []
        old: list[Transaction] = []
        for tx in txs:
            at = tx.created_at
            if at is not None and at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            (old if at is not None and at <= opened else keep).append(tx)
        return keep, old

    def has_fill(self, exchange: str, trade_id: str) -> bool:
        with self._lock:
            row = self._reader.execute(
                "SELECT count(*) FROM ledger_tx WHERE exchange = ? AND trade_id = ?", [exchange, trade_id]
            ).fetchone()
        return bool(row and row[0])

    def transactions(self, limit: int = 1000) -> list[Transaction]:
        with self._lock:
            txs = self._reader.execute(
                "SELECT tx_id, kind, exchange, trade_id, order_ref, reason, created_at FROM ledger_tx "
                "ORDER BY tx_id LIMIT ?",
                [limit],
            ).fetchall()
            ids = [r[0] for r in txs]
            posts = self._reader.execute(
                "SELECT tx_id, account, currency, amount FROM ledger_posting WHERE tx_id IN (SELECT unnest(?::BIGINT[]))",
                [ids],
            ).fetchall()
        by_tx: dict[int, list[Posting]] = {}
        for tx_id, account, currency, amount in posts:
            by_tx.setdefault(tx_id, []).append(Posting(account, currency, Decimal(amount)))
        return [
            Transaction(
                kind=r[1], exchange=r[2], trade_id=r[3], order_ref=r[4], reason=r[5], created_at=r[6].replace(tzinfo=UTC),
                postings=tuple(by_tx.get(r[0], ())),
            )
            for r in txs
        ]

    def unbalanced_transactions(self) -> list[int]:
        """Ids of stored transactions that do not sum to zero per currency (should be none)."""
        with self._lock:
            rows = self._reader.execute(
                "SELECT DISTINCT tx_id FROM (SELECT tx_id, currency, sum(amount) s FROM ledger_posting "
                "GROUP BY tx_id, currency) WHERE s <> 0 ORDER BY tx_id"
            ).fetchall()
        return [r[0] for r in rows]


def iter_postings(txs: Iterable[Transaction]) -> Iterable[Posting]:
    for tx in txs:
        yield from tx.postings
