"""Exchange type ``sim``: the Nobitex adapter trading against a simulator started in-process.

This is what the embedded default ``hr.toml`` trades on: the real adapter (every request,
response, error mapping, breaker and rate limit of ``hrkernel_nobitex``) over real HTTP on
loopback, against a simulator the kernel starts and stops with the exchange, so a fresh install
can rehearse the whole order path with no network, no account and no money.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
from anyio.abc import TaskGroup

from hrkernel.exchange import (
    Balance,
    Fill,
    Market,
    MarketStats,
    MarketTrade,
    Order,
    OrderBook,
    OrderRequest,
)
from hrkernel.exchange import errors as ex
from hrkernel_nobitex.config import NobitexConfig
from hrkernel_sim.config import SimConfig


class EmbeddedSimConfig(NobitexConfig, kw_only=True):
    """Every ``[exchanges.<id>]`` option of the Nobitex adapter, plus the simulator's own table.

    ``token`` picks the simulator account that trades (default: the simulator's default
    account); ``base_url`` is ignored: the adapter always talks to the embedded simulator.
    """

    token: str = "sim-token-default"
    persist: bool = True
    """Keep the simulated account (balances, orders, trades) in ``<data_dir>/sim-<id>.json``
    between runs; false: every start is a fresh account (the ledger will then see drift)."""
    simulator: SimConfig = msgspec.field(default_factory=SimConfig)


class EmbeddedSimExchange:
    """A started simulator plus a Nobitex adapter pointed at it; behaves as the adapter."""

    brings_own_resilience = True  # the Nobitex adapter's (see NobitexExchange)

    def __init__(self, config: EmbeddedSimConfig, context: Any) -> None:
        from pathlib import Path

        from hrkernel_sim.server import SimServer

        self.config = config
        self.context = context
        # The paper account lives beside the journal and ledger that record its trades, so a
        # restart finds the balances the ledger expects (one file per [exchanges.<id>]).
        exchange_id = getattr(context, "component_id", "") or "sim"
        data_dir = getattr(context, "data_dir", None)
        self.state_file = (str(Path(data_dir) / f"sim-{exchange_id}.json")
                           if data_dir and config.persist else None)
        self.server = SimServer(config.simulator, state_file=self.state_file)
        self.exchange: Any = None

    async def start(self, tg: TaskGroup) -> None:
        from hrkernel_nobitex.plugin import build

        await self.server.start(tg)
        fields = {f: getattr(self.config, f) for f in NobitexConfig.__struct_fields__}
        fields["base_url"] = self.server.base_url
        self.exchange = build(NobitexConfig(**fields), self.context)
        start = getattr(self.exchange, "start", None)
        if start is not None:
            await start()

    async def aclose(self) -> None:
        try:
            if self.exchange is not None:
                await self.exchange.aclose()
        finally:
            await self.server.stop()

    @property
    def name(self) -> str:
        return str(self.exchange.name) if self.exchange is not None else "sim"

    def _adapter(self) -> Any:
        if self.exchange is None:
            raise ex.ExchangeError("the embedded simulator exchange is not started", exchange="sim")
        return self.exchange

    # The contract, spelled out (not forwarded by __getattr__) so that the kernel's shape check
    # sees every method before start.
    async def ping(self) -> float:
        return await self._adapter().ping()  # type: ignore[no-any-return]

    async def markets(self) -> list[Market]:
        return await self._adapter().markets()  # type: ignore[no-any-return]

    async def market(self, symbol: str) -> Market:
        return await self._adapter().market(symbol)  # type: ignore[no-any-return]

    async def place_order(self, request: OrderRequest, *, fencing_token: int | None = None) -> Order:
        return await self._adapter().place_order(request, fencing_token=fencing_token)  # type: ignore[no-any-return]

    async def cancel_order(self, *, exchange_id: str | None = None, client_order_id: str | None = None,
                           fencing_token: int | None = None) -> Order:
        return await self._adapter().cancel_order(  # type: ignore[no-any-return]
            exchange_id=exchange_id, client_order_id=client_order_id, fencing_token=fencing_token)

    async def get_order(self, *, exchange_id: str | None = None, client_order_id: str | None = None) -> Order:
        return await self._adapter().get_order(exchange_id=exchange_id, client_order_id=client_order_id)  # type: ignore[no-any-return]

    async def find_order_by_client_id(self, client_order_id: str, *, symbol: str | None = None) -> Order | None:
        return await self._adapter().find_order_by_client_id(client_order_id, symbol=symbol)  # type: ignore[no-any-return]

    async def list_open_orders(self, symbol: str | None = None) -> list[Order]:
        return await self._adapter().list_open_orders(symbol)  # type: ignore[no-any-return]

    async def order_fills(self, order: Order) -> list[Fill]:
        return await self._adapter().order_fills(order)  # type: ignore[no-any-return]

    async def recent_fills(self, symbol: str | None = None) -> list[Fill]:
        return await self._adapter().recent_fills(symbol)  # type: ignore[no-any-return]

    async def balances(self) -> list[Balance]:
        return await self._adapter().balances()  # type: ignore[no-any-return]

    async def order_book(self, symbol: str) -> OrderBook:
        return await self._adapter().order_book(symbol)  # type: ignore[no-any-return]

    async def recent_trades(self, symbol: str) -> list[MarketTrade]:
        return await self._adapter().recent_trades(symbol)  # type: ignore[no-any-return]

    async def market_stats(self, symbol: str) -> MarketStats:
        return await self._adapter().market_stats(symbol)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        # Everything beyond the contract (breakers, limits, cancel_all, stats) is the adapter's.
        exchange = self.__dict__.get("exchange")
        if exchange is None:
            raise AttributeError(f"{name!r}: the embedded simulator exchange is not started")
        return getattr(exchange, name)

    async def paper_transfer(self, currency: str, amount: Decimal) -> None:
        """Credit (or, negative, debit) the simulated account: the paper side of a deposit or
        withdrawal the operator books with ``hrkernel ledger deposit|withdraw``."""
        state = self.server.state
        engine = state.engine
        account = engine.tokens.get(self.config.token)
        if account is None:
            raise ValueError(f"the simulator has no account for token of exchange {self.context.component_id!r}")
        code = currency.lower()
        balance, blocked = engine.wallet(account, code)
        if balance + amount < blocked:
            raise ValueError(f"the paper account holds {balance - blocked} {currency} available; "
                             f"cannot withdraw {-amount}")
        engine.balances[account][code] = balance + amount
        engine.blocked[account].setdefault(code, Decimal(0))
        engine.version += 1
        state.persist()

    def describe(self) -> dict[str, Any]:
        return {"simulator": self.server.describe() if self.server.port else None,
                "state_file": self.state_file}


def build_embedded(config: EmbeddedSimConfig, context: Any) -> EmbeddedSimExchange:
    return EmbeddedSimExchange(config, context)
