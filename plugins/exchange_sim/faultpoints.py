"""``SimFaultPoints``: the conformance kit's fault points (:class:`hrkernel.testing.FaultPoints`)
on an in-process :class:`~hrkernel_sim.server.SimServer`.

``answer_lost`` is the ``drop_after_accept`` fault (the request is executed, the connection is
then aborted unanswered); ``unavailable`` is ``error_503`` on every request while inside. Both are
scripted faults on the operation's endpoint, removed again on exit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hrkernel_sim.server import SimServer

ENDPOINTS = {"place_order": "orders_add", "cancel_order": "orders_cancel", "balances": "wallets_list",
             "order_book": "orderbook"}
"""The kit's operations → the simulator's endpoint names."""


class SimFaultPoints:
    def __init__(self, server: SimServer) -> None:
        self.server = server

    @asynccontextmanager
    async def _scripted(self, operation: str, kind: str, count: int) -> AsyncIterator[None]:
        endpoint = ENDPOINTS.get(operation)
        if endpoint is None:
            raise ValueError(f"unknown operation {operation!r}; the simulator knows {sorted(ENDPOINTS)}")
        faults = self.server.state.faults
        faults.add_scripted(endpoint, kind, count)
        script = faults.scripted[-1]
        try:
            yield
        finally:
            if script in faults.scripted:
                faults.scripted.remove(script)

    def answer_lost(self, operation: str) -> AsyncIterator[None]:  # type: ignore[override]
        return self._scripted(operation, "drop_after_accept", 1)  # type: ignore[return-value]

    def unavailable(self, operation: str) -> AsyncIterator[None]:  # type: ignore[override]
        return self._scripted(operation, "error_503", 1_000_000)  # type: ignore[return-value]
