"""The contract every exchange plugin implements (public API)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hrkernel.exchange.types import (
    Balance,
    Fill,
    Market,
    MarketStats,
    MarketTrade,
    Order,
    OrderBook,
    OrderRequest,
)

__all__ = ["Exchange"]


@runtime_checkable
class Exchange(Protocol):
    """An exchange account, as the kernel uses it.

    Built by a plugin factory without I/O; ``start()`` opens connections, ``aclose()`` closes
    them. Every method raises only :class:`hrkernel.exchange.errors.ExchangeError` subclasses for
    exchange trouble. Reads may be retried by the implementation; :meth:`place_order` never is:
    when its outcome is unknown it raises
    :class:`~hrkernel.exchange.errors.UnknownOutcomeError`, and the caller resolves it with
    :meth:`find_order_by_client_id`.
    """

    name: str

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def ping(self) -> float:
        """A cheap authenticated-or-public round trip; returns its latency in seconds."""
        ...

    async def markets(self) -> list[Market]: ...

    async def market(self, symbol: str) -> Market:
        """One market (``InvalidOrderError`` if the exchange has no such market)."""
        ...

    async def place_order(self, request: OrderRequest, *, fencing_token: int | None = None) -> Order:
        """Place an order. ``fencing_token``: the caller's leadership token, sent along so the
        exchange side (or its simulator) can record which leader submitted it."""
        ...

    async def cancel_order(
        self,
        *,
        exchange_id: str | None = None,
        client_order_id: str | None = None,
        fencing_token: int | None = None,
    ) -> Order:
        """Cancel one order; returns it as it stands afterwards. A filled order raises
        ``OrderNotCancelableError``; an unknown one ``OrderNotFoundError``; a lost answer
        ``UnknownOutcomeError`` (look the order up). ``fencing_token`` as for placement."""
        ...

    async def get_order(
        self, *, exchange_id: str | None = None, client_order_id: str | None = None
    ) -> Order:
        """One order. By client order id some exchanges (Nobitex) see only *open* orders."""
        ...

    async def find_order_by_client_id(
        self, client_order_id: str, *, symbol: str | None = None
    ) -> Order | None:
        """Resolve an uncertain placement: the order with this client order id in *any* state,
        or ``None`` if the exchange has none. Used after ``UnknownOutcomeError``."""
        ...

    async def list_open_orders(self, symbol: str | None = None) -> list[Order]: ...

    async def order_fills(self, order: Order) -> list[Fill]: ...

    async def recent_fills(self, symbol: str | None = None) -> list[Fill]: ...

    async def balances(self) -> list[Balance]: ...

    async def order_book(self, symbol: str) -> OrderBook: ...

    async def recent_trades(self, symbol: str) -> list[MarketTrade]: ...

    async def market_stats(self, symbol: str) -> MarketStats: ...
