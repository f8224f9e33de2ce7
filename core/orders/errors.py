"""Errors of the order pipeline, journal and reconciliation."""

from __future__ import annotations

from hrkernel.errors import HrkernelError

__all__ = [
    "ExchangeContractError", "JournalError", "JournalUnavailableError", "JournalWriteError", "NotLeaderError",
    "OrderRejectedError", "OrdersError", "TradingHaltedError",
]


class OrdersError(HrkernelError):
    """Base of order-pipeline errors."""


class JournalError(OrdersError):
    """The journal refused a write (duplicate order, unknown order)."""


class JournalWriteError(JournalError):
    """The journal could not make a write durable (disk full, data dir read-only, I/O error).

    Nothing of the failed batch was written, and the journal refuses every later write: the
    kernel halts new orders and raises a critical alert; restart it once the data dir is fixed."""


class OrderRejectedError(OrdersError):
    """Prepare refused the signal (validation or risk); the order is journaled FAILED with this reason."""

    def __init__(self, message: str, *, client_order_id: str | None = None) -> None:
        self.client_order_id = client_order_id
        super().__init__(message)


class NotLeaderError(OrdersError):
    """This instance does not hold the lease with margin: nothing is submitted (order stays PREPARED)."""


class TradingHaltedError(OrdersError):
    """New orders are halted (kill switch, start-up reconciliation not finished, or balance drift
    beyond tolerance waiting for an operator's acknowledgement)."""


class ExchangeContractError(OrdersError, TypeError):
    """An exchange plugin returned something other than its protocol promises (a dict for a list
    of orders, a float for a Balance): a bug in the plugin, never retried, alerted as critical."""

    def __init__(self, exchange: str, method: str, expected: str, found: object) -> None:
        self.exchange = exchange
        self.method = method
        super().__init__(f"exchange {exchange!r}: {method}() returned {_kind(found)}, expected {expected}")


def _kind(value: object) -> str:
    if isinstance(value, list | tuple) and value:
        bad = next((v for v in value if type(v).__name__ != type(value[0]).__name__), value[0])
        return f"a {type(value).__name__} holding {type(bad).__name__}"
    return f"a {type(value).__name__}"


class JournalUnavailableError(JournalWriteError, TradingHaltedError):
    """The journal's data dir refuses writes, so the journal is not touched at all, not even read:
    SQLite's memory-mapped WAL index would kill the process (SIGBUS) on a read-only dir. A new
    order waits (it is a halt), and the read is retried once the dir takes writes again."""
