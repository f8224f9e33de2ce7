"""The ``[orders]`` section of hr.toml: risk limits, timing, reconciliation policy."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from hrkernel.types import Amount, ConfigStruct, Duration

__all__ = ["OrdersSection"]


class OrdersSection(ConfigStruct, kw_only=True):
    enabled: bool = True
    """Build the order pipeline (needs at least one exchange)."""
    db_file: str = "orders.duckdb"
    """Ledger, reconciliation reports and replication position (DuckDB), under ``[kernel] data_dir``."""
    journal_file: str = "orders.journal.sqlite"
    """The write-ahead order journal (SQLite, WAL), under ``[kernel] data_dir``."""

    # -- risk (Prepare) --
    kill_switch: bool = False
    on_kill_switch: Literal["refuse", "wait"] = "refuse"
    """A signal that arrives while the kill switch is on: refused and recorded ("refuse"), or
    kept until the switch is off ("wait"; it is then still subject to ``signal_max_age``)."""
    signal_max_age: Duration = Duration(60.0)
    """A signal older than this (from its time, else its arrival) when its order would be
    prepared is refused as stale instead of traded; 0 disables the check."""
    """When true, Prepare refuses every new order."""
    max_notional: dict[str, Amount] = msgspec.field(default_factory=dict)
    """Largest ``amount * price`` of one order, per quote currency (``{ IRT = "50000000" }``)."""
    max_position: dict[str, Amount] = msgspec.field(default_factory=dict)
    """Largest holding per asset on one exchange after a buy fills (``{ BTC = "0.5" }``)."""
    max_open_orders: int = 20
    """Orders on the exchange or being sent to it (SUBMITTING, ACKED, PARTIALLY_FILLED, UNKNOWN), per
    exchange. Orders waiting for an execution slot (PREPARED) and filled ones being verified do
    not count. An order that would exceed it waits (``open_orders_wait``)."""
    open_orders_wait: Duration = Duration(30.0)
    """How long an order waits for room under ``max_open_orders`` before it is refused (FAILED,
    with that reason): a full book of orders is a temporary condition, not a refusal."""
    max_price_deviation: Amount = Amount("0.1")
    """A price further than this fraction from the book's mid is refused as insane."""
    check_balance: bool = True
    """Refuse orders the ledger's balance (minus what open orders reserve) cannot pay for."""

    # -- execute / verify --
    submit_attempts: int = 3
    """Placements per order at most (a resubmission only after the exchange said it has none)."""
    lookup_attempts: int = 8
    lookup_backoff: Duration = Duration(0.25)
    rate_limit_wait: Duration = Duration(120.0)
    """How long one order's look-up or verification may wait out the exchange's rate limit (its
    retry-after) in all. A rate-limited call is not a failed one: it counts against this budget,
    not against ``lookup_attempts`` or ``verify_deadline``."""
    visibility_window: Duration = Duration(3.0)
    """How long after a placement the exchange may still not show it; an order not found later
    than this is known not to exist."""
    verify_deadline: Duration = Duration(30.0)
    poll_initial: Duration = Duration(0.1)
    poll_max: Duration = Duration(2.0)
    prepared_max_age: Duration = Duration(60.0)
    """On recovery, a PREPARED order older than this is FAILED as stale instead of sent."""
    verify_concurrency: int = 32
    """Orders verified at once (polled until terminal, fills posted). An order leaves its execution
    slot once the exchange acknowledged it and waits here instead."""
    recovery_concurrency: int = 8
    """Unfinished orders resumed at once after a restart or a takeover (in the background: new
    orders are sent meanwhile; each recovered order stays reserved until it is resolved)."""

    # -- reconciliation --
    reconcile_interval: Duration = Duration(60.0)
    orphan_policy: Literal["cancel", "adopt"] = "cancel"
    """An open order on the exchange that the journal does not know: cancel it, or adopt it."""
    balance_tolerance: dict[str, Amount] = msgspec.field(default_factory=dict)
    """Per-asset drift corrected with an adjusting transaction; beyond it: critical alert."""
    default_tolerance: Amount = Amount("0")
    drift_defer_max: int = 3
    """A drift seen while orders are being worked on (their fills may be on the exchange and not
    yet in the ledger) is looked at again next reconciliation, at most this many times in a row
    before it is acted on as usual."""
    halt_on_drift: bool = True
    """Beyond-tolerance drift halts new orders until acknowledged (``hrkernel reconcile --ack``)."""

    # -- health (the ``orders_execution`` check) --
    ack_bound: Duration = Duration(10.0)
    """A placement still SUBMITTING/UNKNOWN this long after it was sent makes the check unhealthy."""
    verify_backlog_max: int = 20
    """More orders than this done on the exchange but not verified yet (fills not all posted),
    or any order left unresolved, makes the check degraded."""

    def __post_init__(self) -> None:
        if min(self.max_open_orders, self.submit_attempts, self.lookup_attempts, self.recovery_concurrency,
               self.verify_concurrency) < 1:
            raise ValueError("max_open_orders, submit_attempts, lookup_attempts, recovery_concurrency and "
                             "verify_concurrency must be >= 1")
        if self.max_price_deviation <= 0:
            raise ValueError("max_price_deviation must be > 0")
        if self.poll_initial <= 0 or self.poll_max < self.poll_initial:
            raise ValueError("poll_initial must be > 0 and <= poll_max")

    def tolerance(self, currency: str) -> Decimal:
        return Decimal(self.balance_tolerance.get(currency, self.default_tolerance))
