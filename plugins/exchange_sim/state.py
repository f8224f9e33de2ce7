"""Everything one running simulator holds: engine, faults, rate limits and the ground-truth logs."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hrkernel_sim.config import SimConfig
from hrkernel_sim.engine import Engine
from hrkernel_sim.faults import FaultInjector, RateLimiter
from hrkernel_sim.persist import SnapshotFile


class SimState:
    """Mutable state behind the HTTP app. ``reset()`` returns it to the configured start."""

    def __init__(self, config: SimConfig, clock: Callable[[], float] | None = None,
                 state_file: str | Path | None = None) -> None:
        self.config = config
        self.snapshot = SnapshotFile(state_file) if state_file is not None else None
        """Where the accounts are kept between runs (None: in memory only, as ``sim serve``)."""
        self.clock = clock or time.time
        self.connections: dict[tuple[str, int], asyncio.BaseTransport] = {}
        self.stopping = asyncio.Event()
        self.faults = FaultInjector(config.faults, self.clock)
        self.reset()
        if self.snapshot is not None:
            self.snapshot.load_into(self.engine)

    def persist(self, *, force: bool = False) -> None:
        """Write the accounts to the state file if they changed (no-op without one)."""
        if self.snapshot is not None:
            self.snapshot.save(self.engine, force=force)

    def reset(self) -> None:
        self.engine = Engine(self.config, self.clock)
        self.limiter = RateLimiter(self.config.rate_limits, self.clock)
        self.faults.configure(self.config.faults)
        self.faults.restart_clock()
        self.requests: deque[dict[str, Any]] = deque(maxlen=200_000)
        self.seq = 0
        self.silent_feeds: set[str] = set()
        """Markets whose public market data (order book, trades, stats) goes unanswered: each such
        request hangs like ``hang`` (admin: ``POST /_sim/markets/<symbol> {"feed": "silent"}``)."""

    def account_email(self, account: str) -> str:
        acc = self.config.accounts[account]
        return acc.email or f"{account}@sim.local"

    def market_of_request(self, endpoint: str, path_params: dict[str, Any], query: dict[str, str]) -> str | None:
        """The market a public market-data request is about (None: not one, or several)."""
        if endpoint in ("orderbook", "public_trades"):
            return str(path_params.get("symbol", "")).upper() or None
        if endpoint == "udf_history":
            return query.get("symbol", "").upper() or None
        if endpoint == "stats":
            src, dst = query.get("srcCurrency", "").lower(), query.get("dstCurrency", "").lower()
            hits = [s for s, m in self.engine.markets.items() if m.src == src and m.dst == dst]
            return hits[0] if len(hits) == 1 else None
        return None

    def abort_connection(self, client: tuple[str, int] | None) -> bool:
        """Abort the TCP connection of ``client`` without a response; False if not found."""
        if client is None:
            return False
        transport = self.connections.get((client[0], client[1]))
        if transport is None:
            return False
        transport.abort()  # type: ignore[attr-defined]
        return True
