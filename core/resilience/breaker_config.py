"""A circuit breaker's options as one value (public API): thresholds, window, failure rules.

``CircuitBreaker(name, BreakerConfig(...))`` and ``CircuitBreaker(name, failure_threshold=...)``
build the same breaker; keyword options override the fields of a given config. See
:mod:`hrkernel.resilience.breaker` for what each option does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["MISSING", "BreakerConfig"]

MISSING: Any = object()
"""``fallback`` when none is given: a rejected call raises :class:`CircuitOpenError`."""


@dataclass(frozen=True, kw_only=True)
class BreakerConfig:
    """The options of one breaker (checked by :meth:`validate` when a breaker is built)."""

    failure_threshold: int | None = 5
    """Consecutive failures that open the breaker (``None``: only the rate triggers)."""
    reset_timeout: float = 30.0
    """Seconds an open breaker rejects calls before it lets trials through (half-open)."""
    half_open_max_requests: int = 2
    """Trial calls running at once while half-open."""
    success_threshold: int = 3
    """Successful trials that close a half-open breaker."""
    window_type: Literal["count", "time"] = "count"
    window_size: float = 100
    """The last ``window_size`` calls (count window) or seconds (time window)."""
    minimum_calls: int = 10
    """Calls the window must hold before its rates can open the breaker."""
    failure_rate_threshold: float | None = None
    slow_call_duration: float | None = None
    slow_call_rate_threshold: float = 1.0
    record_exceptions: Iterable[type[BaseException]] = (Exception,)
    ignore_exceptions: Iterable[type[BaseException]] = ()
    is_failure: Callable[[BaseException], bool] | None = None
    fallback: Any = MISSING
    """A value, or a callable receiving the exception (it may be async), used instead of raising
    when the breaker rejects a call."""
    fallback_on_failure: bool = False
    """Use ``fallback`` also when a call fails with a recorded exception."""
    latency_sample_every: int = 64
    """Closed-state latency is measured on every n-th call only (the fast path reads no clock)."""

    def validate(self, where: str) -> None:
        """Raise ``ValueError`` naming ``where`` and the option for a value out of range."""
        if self.failure_threshold is not None and self.failure_threshold < 1:
            raise ValueError(f"{where}: failure_threshold must be >= 1 or None, got {self.failure_threshold}")
        if self.reset_timeout < 0:
            raise ValueError(f"{where}: reset_timeout must be >= 0 seconds, got {self.reset_timeout}")
        if self.half_open_max_requests < 1:
            raise ValueError(f"{where}: half_open_max_requests must be >= 1, got {self.half_open_max_requests}")
        if self.success_threshold < 1:
            raise ValueError(f"{where}: success_threshold must be >= 1, got {self.success_threshold}")
        if self.window_type not in ("count", "time"):
            raise ValueError(f"{where}: window_type must be 'count' or 'time', got {self.window_type!r}")
        size = self.window_size
        if size <= 0 or (self.window_type == "count" and int(size) != size):
            raise ValueError(
                f"{where}: window_size must be a positive number of calls (count window) "
                f"or seconds (time window), got {size!r}"
            )
        if self.minimum_calls < 1:
            raise ValueError(f"{where}: minimum_calls must be >= 1, got {self.minimum_calls}")
        for label, rate in (("failure_rate_threshold", self.failure_rate_threshold),
                            ("slow_call_rate_threshold", self.slow_call_rate_threshold)):
            if rate is not None and not 0.0 < rate <= 1.0:
                raise ValueError(f"{where}: {label} is a fraction in (0, 1], got {rate!r}")
        if self.slow_call_duration is not None and self.slow_call_duration <= 0:
            raise ValueError(f"{where}: slow_call_duration must be > 0 seconds, got {self.slow_call_duration}")
        if self.latency_sample_every < 1:
            raise ValueError(f"{where}: latency_sample_every must be >= 1, got {self.latency_sample_every}")
