"""The ``[resilience]`` section of hr.toml: named breakers, rate limiters, bulkheads and the
optional Redis-shared breaker state. Exchange adapters and other components look these up by name
(``kernel.get("resilience").breaker("exchange_api")``) instead of building their own."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from hrkernel.types import ConfigStruct, Duration


class BreakerTable(ConfigStruct, kw_only=True):
    """``[resilience.breakers.NAME]``: the :class:`~hrkernel.resilience.CircuitBreaker` options."""

    failure_threshold: int | None = 5
    reset_timeout: Duration = Duration(30.0)
    half_open_max_requests: int = 2
    success_threshold: int = 3
    window_type: Literal["count", "time"] = "count"
    window_size: float = 100
    """Calls (count window) or seconds (time window)."""
    minimum_calls: int = 10
    failure_rate_threshold: float | None = None
    """A fraction, e.g. 0.5; unset: only consecutive failures open the breaker."""
    slow_call_duration: Duration | None = None
    slow_call_rate_threshold: float = 1.0

    def __post_init__(self) -> None:
        from hrkernel.resilience.breaker import CircuitBreaker

        CircuitBreaker("config", **self.options())  # same checks, same messages

    def options(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__struct_fields__}


class LimitTable(ConfigStruct, kw_only=True):
    rate: float
    period: Duration = Duration(1.0)
    name: str = ""
    burst: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.period <= 0:
            raise ValueError("rate and period must be > 0")
        if self.burst is not None and self.burst <= 0:
            raise ValueError("burst must be > 0")


class LimiterTable(ConfigStruct, kw_only=True):
    """``[resilience.limiters.NAME]``: ``limits = [{ rate = 300, period = "10m", name = "place" }]``."""

    limits: list[LimitTable]

    def __post_init__(self) -> None:
        if not self.limits:
            raise ValueError("a rate limiter needs at least one limit")


class BulkheadTable(ConfigStruct, kw_only=True):
    max_concurrent: int = 10
    max_queue: int = 0
    queue_timeout: Duration | None = None

    def __post_init__(self) -> None:
        if self.max_concurrent < 1 or self.max_queue < 0:
            raise ValueError("max_concurrent must be >= 1 and max_queue >= 0")


class SharedStateTable(ConfigStruct, kw_only=True):
    """``[resilience.shared_state]``: share open circuits between instances through Redis."""

    redis_url: str = ""
    """Empty: breakers are local only. Write it as ``"${REDIS_URL}"``."""
    prefix: str = "hrkernel:breaker:"
    interval: Duration = Duration(0.5)


class ResilienceSection(ConfigStruct, kw_only=True):
    breakers: dict[str, BreakerTable] = msgspec.field(default_factory=dict)
    limiters: dict[str, LimiterTable] = msgspec.field(default_factory=dict)
    bulkheads: dict[str, BulkheadTable] = msgspec.field(default_factory=dict)
    shared_state: SharedStateTable = msgspec.field(default_factory=SharedStateTable)
