"""What a standby may do with the journal and the ledger: read the replicated rows, write nothing.

On a standby the order pipeline holds a :class:`StandbyJournal` and a :class:`StandbyLedger`
instead of the real ones. Each lists, by name, what it offers: the reads (answered by a journal
or ledger rebuilt whenever replication applied something, so no cache goes stale) and the
writes (each raises :class:`NotLeaderError`: only the leader writes). Nothing else is reachable —
there is no ``__getattr__`` — so a write method added to :class:`OrderJournal` or :class:`Ledger`
is not silently allowed on a standby: it is missing there until it is listed here, and
``tests/orders/test_orders_standby.py`` fails until every public name of both classes is listed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hrkernel.orders.errors import NotLeaderError

__all__ = ["StandbyJournal", "StandbyLedger"]

_STANDBY = "standby: only the leader writes the journal and the ledger (this instance applies the leader's)"


def _read(name: str) -> Any:
    def read(self: _StandbyView, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._current(), name)(*args, **kwargs)

    read.__name__ = read.__qualname__ = name
    return read


def _read_property(name: str) -> Any:
    return property(lambda self: getattr(self._current(), name), doc=f"The replicated {name}.")


def _refuse(name: str) -> Any:
    def refuse(self: _StandbyView, *args: Any, **kwargs: Any) -> Any:
        raise NotLeaderError(f"{name}: {_STANDBY}")

    refuse.__name__ = refuse.__qualname__ = name
    return refuse


def _refuse_async(name: str) -> Any:
    async def refuse(self: _StandbyView, *args: Any, **kwargs: Any) -> Any:
        raise NotLeaderError(f"{name}: {_STANDBY}")

    refuse.__name__ = refuse.__qualname__ = name
    return refuse


class _StandbyView:
    READS: frozenset[str] = frozenset()
    """Public names of the real class a standby may use (answered from the replicated rows)."""
    WRITES: frozenset[str] = frozenset()
    """Public names of the real class that change it: each raises :class:`NotLeaderError`."""
    NOT_OFFERED: frozenset[str] = frozenset()
    """Public names of the real class deliberately absent here (with the reason beside them)."""

    def __init__(self, build: Callable[[], Any], version: Callable[[], Any]) -> None:
        self._build = build
        self._version = version
        self._seen: Any = -1
        self._inner: Any = None

    def _current(self) -> Any:
        version = self._version()
        if self._inner is None or version != self._seen:
            self._inner, self._seen = self._build(), version
        return self._inner


class StandbyJournal(_StandbyView):
    """A standby's :class:`hrkernel.orders.journal.OrderJournal`."""

    READS = frozenset({"get", "by_signal", "by_exchange_id", "by_any_exchange_id", "query", "counts_by_state",
                       "open_orders", "history", "last_seq", "stats", "failed", "path", "close"})
    WRITES = frozenset({"create", "record", "ping"})
    NOT_OFFERED = frozenset({
        "reader",  # a constructor, not an operation on a journal
        "on_failure", "on_recovered",  # write-failure hooks: a standby's view never writes
    })

    get = _read("get")
    by_signal = _read("by_signal")
    by_exchange_id = _read("by_exchange_id")
    by_any_exchange_id = _read("by_any_exchange_id")
    query = _read("query")
    counts_by_state = _read("counts_by_state")
    open_orders = _read("open_orders")
    history = _read("history")
    last_seq = _read("last_seq")
    stats = _read_property("stats")
    failed = _read_property("failed")
    path = _read_property("path")
    close = _read("close")  # closes the current reader's connections only

    create = _refuse_async("create")
    record = _refuse_async("record")
    ping = _refuse_async("ping")  # an empty write: proves the file takes writes


class StandbyLedger(_StandbyView):
    """A standby's :class:`hrkernel.ledger.Ledger`."""

    READS = frozenset({"balance", "balances", "balances_from_postings", "venue_balances", "positions",
                       "has_postings", "has_kind", "has_fill", "opened_at", "after_opening", "transactions",
                       "unbalanced_transactions", "connection", "close"})
    WRITES = frozenset({"post", "post_many", "post_fill", "adjust", "deposit"})
    NOT_OFFERED: frozenset[str] = frozenset()

    balance = _read("balance")
    balances = _read("balances")
    balances_from_postings = _read("balances_from_postings")
    venue_balances = _read("venue_balances")
    positions = _read("positions")
    has_postings = _read("has_postings")
    has_kind = _read("has_kind")
    has_fill = _read("has_fill")
    opened_at = _read("opened_at")
    after_opening = _read("after_opening")  # splits transactions by the opening time: no write
    transactions = _read("transactions")
    unbalanced_transactions = _read("unbalanced_transactions")
    # The cursor's database connection, for the dashboard's read queries (positions view).
    # Replication, not this view, writes through it on a standby.
    connection = _read_property("connection")
    close = _read("close")

    post = _refuse("post")
    post_many = _refuse("post_many")
    post_fill = _refuse("post_fill")
    adjust = _refuse("adjust")
    deposit = _refuse("deposit")
