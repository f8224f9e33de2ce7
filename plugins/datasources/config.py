"""Config tables of the built-in data sources (``[datasources.<id>]``)."""

from __future__ import annotations

from typing import Literal

import msgspec

from hrkernel.types import ConfigStruct, Duration


class _Common(ConfigStruct, kw_only=True):
    type: str | None = None
    max_age: Duration = Duration(10.0)
    """No update for this long: the source is stale (its ``check()`` says unhealthy)."""
    topic: str = "marketdata"
    """Bus topic its events are published on (when a bus is running)."""
    publish: bool = True


class ReplayConfig(_Common, kw_only=True):
    path: str
    """A JSON-lines file of bus events (``{"kind": "book"|"trade"|"ticker", ...}``) or a CSV file
    with a header (``kind,time,symbol,last,best_bid,best_ask,price,amount,side,sequence``)."""
    format: Literal["auto", "jsonl", "csv"] = "auto"
    interval: Duration = Duration(0.1)
    """Pause between records."""
    loop: bool = True
    """Start again at the end of the file (times are rewritten to now)."""
    source_name: str | None = None
    """Source name stamped on the events (default: the file's records, else ``replay``)."""


class PollConfig(_Common, kw_only=True):
    exchange: str = "nobitex"
    """The ``[exchanges.<id>]`` whose public market data is polled through :mod:`hrkernel.exchange`."""
    symbols: list[str] = msgspec.field(default_factory=lambda: ["BTCIRT"])
    interval: Duration = Duration(2.0)
    """Nobitex allows 300 order-book and 20 stats requests a minute (see README)."""
    book: bool = True
    ticker: bool = True
    trades: bool = False
    backoff_max: Duration = Duration(30.0)


class WebsocketConfig(_Common, kw_only=True):
    url: str = "wss://ws.nobitex.ir/connection/websocket"
    """Nobitex's Centrifugo endpoint (public channels need no token)."""
    symbols: list[str] = msgspec.field(default_factory=lambda: ["BTCIRT"])
    channels: list[Literal["orderbook", "trades", "market-stats"]] = msgspec.field(default_factory=lambda: ["orderbook"])
    exchange: str | None = None
    """An ``[exchanges.<id>]`` whose REST order book fills the gap after each (re)connect."""
    reconnect_min: Duration = Duration(0.5)
    reconnect_max: Duration = Duration(30.0)
    ping_timeout: Duration = Duration(25.0)
    """Nobitex pings every few seconds; nothing for this long means the connection is dead."""


class FailoverConfig(_Common, kw_only=True):
    members: list[str]
    """Data-source ids in preference order: the first is the primary."""
    check_interval: Duration = Duration(1.0)
    failback: bool = True
    """Return to an earlier (preferred) member once it is fresh again."""

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ValueError(f"a failover group needs at least two members, found {self.members!r}")
