"""``max_open_orders`` as a gate an order waits at, not a refusal.

What the limit bounds is exposure on the exchange: orders on it or being sent to it (SUBMITTING,
ACKED, PARTIALLY_FILLED, UNKNOWN). An order waiting for an execution slot (PREPARED) is not on
the exchange, nor is a filled one being verified, so neither counts. An order about to leave
passes the gate when there is room, holding a place until its SUBMITTING is journaled (from then
on the journal counts it); with no room it waits, up to ``open_orders_wait``, for an order to
leave the exchange, and only then is refused, with the reason. Before, an order arriving in a
burst was refused at once ("20 open orders already") while the orders ahead of it merely waited
for an execution slot: a temporary condition became a final refusal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hrkernel.orders.journal import OrderJournal, OrderState

__all__ = ["ON_EXCHANGE", "OpenOrdersGate"]

ON_EXCHANGE = frozenset({OrderState.SUBMITTING, OrderState.ACKED, OrderState.PARTIALLY_FILLED, OrderState.UNKNOWN})

_POLL = 0.02
"""How often a waiting order looks again (the journal's open orders are in memory: cheap)."""


class OpenOrdersGate:
    def __init__(self, journal: Callable[[], OrderJournal], *, limit: int, wait: float,
                 clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]]) -> None:
        self._journal = journal
        self.limit = limit
        self.wait = wait
        self._clock = clock
        self._sleep = sleep
        self._leaving: dict[str, str] = {}
        """Orders that passed the gate and whose SUBMITTING is not journaled yet (coid → exchange)."""

    def _ids(self, exchange: str) -> set[str]:
        ids = {o.client_order_id for o in self._journal().open_orders(exchange) if o.state in ON_EXCHANGE}
        ids.update(coid for coid, name in self._leaving.items() if name == exchange)
        return ids

    def count(self, exchange: str) -> int:
        """Orders of ``exchange`` on it or being sent to it (journaled, or through the gate)."""
        return len(self._ids(exchange))

    async def enter(self, exchange: str, client_order_id: str) -> str | None:
        """Wait for room; ``None`` once the order holds a place (call :meth:`leave` after its
        SUBMITTING is journaled, or if it is not sent), else the reason it is refused."""
        deadline = self._clock() + self.wait
        waited = False
        while True:
            ids = self._ids(exchange)
            count = len(ids)
            if count < self.limit or client_order_id in ids:  # room, or it is out there already
                self._leaving[client_order_id] = exchange
                return None
            if self._clock() >= deadline:
                return (f"{count} orders on {exchange} or being sent ([orders] max_open_orders = {self.limit}) "
                        f"for {self.wait:g} s ([orders] open_orders_wait)" if waited or self.wait > 0 else
                        f"{count} orders on {exchange} or being sent ([orders] max_open_orders = {self.limit})")
            waited = True
            await self._sleep(_POLL)

    def leave(self, client_order_id: str) -> None:
        self._leaving.pop(client_order_id, None)
