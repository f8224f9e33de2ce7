"""Typed state-change events and metric snapshots of the resilience primitives (public API)."""

from __future__ import annotations

import enum
from collections.abc import Callable

import msgspec


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerStateChanged(msgspec.Struct, frozen=True, kw_only=True):
    """Emitted synchronously to every listener when a breaker changes state.

    ``at`` is wall-clock time (``time.time()``), for alerts and dashboards; ``reason`` says why
    (``"5 consecutive failures"``, ``"failure rate 0.60 >= 0.50 over 20 calls"``,
    ``"reset timeout elapsed"``, ``"3 successful trial calls"``, ``"opened by another instance"``,
    ``"manual reset"``...).
    """

    name: str
    old: BreakerState
    new: BreakerState
    reason: str
    at: float


StateListener = Callable[[BreakerStateChanged], None]
"""Called synchronously on every state change; must be quick and must not raise (an exception
is logged and otherwise ignored)."""


class LatencyStats(msgspec.Struct, frozen=True, kw_only=True):
    """Latency of the measured calls, in seconds (breakers sample every Nth call by default)."""

    count: int
    mean: float
    max: float


class BreakerMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one breaker's counters since it was created.

    ``calls`` counts calls whose outcome was recorded (``successes + failures``); ignored
    exceptions, cancellations and rejections are counted apart and never affect the state.
    """

    name: str
    state: BreakerState
    calls: int
    successes: int
    failures: int
    slow_calls: int
    ignored: int
    cancelled: int
    rejected: int
    failure_rate: float
    """Failure rate over the current window (0.0 when the window is empty)."""
    window_calls: int
    time_in_state: dict[str, float]
    latency: LatencyStats
    state_changes: int


__all__ = [
    "BreakerMetrics",
    "BreakerState",
    "BreakerStateChanged",
    "LatencyStats",
    "StateListener",
]
