"""Errors of the order pipeline, journal and reconciliation."""

from __future__ import annotations

from hrkernel.errors import HrkernelError

__all__ = [
    "ExchangeContractError", "JournalError", "NotLeaderError", "OrderRejectedError", "OrdersError",
    "TradingHaltedError",
]


class OrdersError(HrkernelError):
    """Base of order-pipeline errors."""


class JournalError(OrdersError):
    """The journal refused a write (duplicate order, unknown order)."""


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
