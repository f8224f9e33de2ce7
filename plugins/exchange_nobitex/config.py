"""The ``[exchanges.<id>]`` table of a Nobitex exchange (``type = "nobitex"``)."""

from __future__ import annotations

import msgspec

from hrkernel.types import ConfigStruct, Duration

PRODUCTION_URL = "https://apiv2.nobitex.ir"
TESTNET_URL = "https://testnetapiv2.nobitex.ir"


class EndpointLimit(ConfigStruct, kw_only=True):
    """``requests`` per ``per`` seconds, counted locally before a request is sent."""

    requests: int
    per: Duration


# Nobitex's documented per-endpoint limits (docs-api `_general_notes.md`, `_market_trade.md`,
# `_market_data.md`, `_user_data.md`, as of 2025-11). Placement is shared between spot, margin
# and batch placement, hence one bucket. Keys are the adapter's endpoint names.
DEFAULT_LIMITS: dict[str, tuple[int, float]] = {
    "place": (300, 600.0),
    "status": (300, 60.0),
    "cancel": (90, 60.0),
    "cancel_old": (30, 60.0),
    "list_orders": (30, 60.0),
    "list_trades": (30, 60.0),
    "orderbook": (300, 60.0),
    "trades": (60, 60.0),
    "stats": (20, 60.0),
    "wallets": (20, 120.0),
}


class NobitexConfig(ConfigStruct, kw_only=True):
    token: str = ""
    """``Authorization: Token <token>``; write it as ``"${NOBITEX_TOKEN}"`` (never logged)."""
    base_url: str = PRODUCTION_URL
    """Production (default), the testnet ``https://testnetapiv2.nobitex.ir`` or a simulator."""
    bot_name: str = "hrkernel"
    """Sent as ``User-Agent: TraderBot/<bot_name>`` as Nobitex asks."""
    send_instance_headers: bool = True
    """Send ``X-HR-Instance`` (and ``X-HR-Fencing-Token`` on placements). Nobitex ignores them;
    the simulator records them."""
    timeout: Duration = Duration(10.0)
    """Whole-request timeout (read, write, pool)."""
    connect_timeout: Duration = Duration(5.0)
    max_connections: int = 20
    """Keep-alive connections to the exchange at most (the kernel's ConnectionPool)."""
    idle_timeout: Duration = Duration(60.0)
    """A connection idle this long is closed by the pool's maintenance."""
    ping_symbol: str = "USDTIRT"
    """``ping()`` reads this market's public order book (cheap, 300/min)."""
    pro: bool = False
    """Send ``pro=yes`` on placements (turns off Nobitex's 10 s DuplicateOrder guard)."""

    rate_limit: bool = True
    """Count requests locally against Nobitex's documented limits (see ``rate_limits``)."""
    rate_limits: dict[str, EndpointLimit] = msgspec.field(default_factory=dict)
    """Overrides of the documented limits by endpoint name (place, status, cancel, cancel_old,
    list_orders, list_trades, orderbook, trades, stats, wallets)."""
    rate_limit_max_wait: Duration = Duration(2.0)
    """Wait at most this long for a local slot (or a 429's ``backOff``); beyond it raise
    ``RateLimitedError`` at once."""
    shared_budget: bool = True
    """Count sends and 429 ``backOff``s in one budget per token shared by every process using it:
    in the HA backend's Redis when ``[ha] backend = "redis"``, else in ``<data_dir>/rate-budget.sqlite``
    (a restart, or the CLI beside the kernel, knows what the exchange already counted)."""

    retry_attempts: int = 3
    """Attempts for idempotent reads (placement and cancel are never retried)."""
    retry_base_delay: Duration = Duration(0.2)
    retry_max_delay: Duration = Duration(2.0)

    breaker_failure_threshold: int = 5
    breaker_reset_timeout: Duration = Duration(30.0)

    max_concurrent: int = 16
    """Bulkhead: requests in flight at once; more wait up to ``bulkhead_wait``."""
    bulkhead_queue: int = 100
    """Requests that may wait for a slot; beyond that a call is refused at once."""
    bulkhead_wait: Duration = Duration(5.0)

    fills_wait: Duration = Duration(30.0)
    """How long ``order_fills`` waits for a shared ``/market/trades/list`` poll that covers the
    order's filled amount (a slot under the limit, a 429's ``backOff``); if no poll could be sent
    in that time it raises ``RateLimitedError``, otherwise it returns the fills found."""
    fills_poll_interval: Duration = Duration(0.0)
    """Shared trades polls are paced this far apart; 0: the ``list_trades`` limit spread evenly
    (``per / requests``, 2 s for Nobitex's 30/min), no pacing when ``rate_limit`` is off."""
    fills_poll_burst: int = 3
    """Polls that may go out back to back before the pacing applies."""
    fills_page_size: int = 100
    """``pageSize`` of the trades polls (Nobitex accepts 1..100)."""

    markets_ttl: Duration = Duration(3600.0)
    market_data_ttl: Duration = Duration(1.0)
    """Order book, public trades and stats are cached this long (Nobitex itself caches ~1 s)."""
    stale_for: Duration = Duration(300.0)
    """How long an expired cached value may still be served when the exchange is failing."""

    def __post_init__(self) -> None:
        if not 1 <= self.fills_page_size <= 100:
            raise ValueError(f"fills_page_size must be 1..100 (Nobitex's page sizes), got {self.fills_page_size}")
        if self.fills_poll_burst < 1:
            raise ValueError(f"fills_poll_burst must be >= 1, got {self.fills_poll_burst}")
