"""hrkernel.exchange: the exchange contract (public API).

Plugins that offer an exchange implement :class:`Exchange` and speak in the structs below;
the kernel's order pipeline, reconciliation and health checks use nothing else. Errors are in
:mod:`hrkernel.exchange.errors`.
"""

from hrkernel.exchange import errors
from hrkernel.exchange.protocol import Exchange
from hrkernel.exchange.types import (
    Balance,
    Fill,
    Market,
    MarketStats,
    MarketTrade,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    PriceLevel,
    Side,
    canonical_symbol,
)

__all__ = [
    "Balance",
    "Exchange",
    "Fill",
    "Market",
    "MarketStats",
    "MarketTrade",
    "Order",
    "OrderBook",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "PriceLevel",
    "Side",
    "canonical_symbol",
    "errors",
]
