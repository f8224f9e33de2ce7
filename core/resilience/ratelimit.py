"""Rate limiter: GCRA over one or several named limits, with weights (public API).

``RateLimiter([Limit(300, 600.0, name="place"), Limit(10, 1.0, name="burst")])`` grants a call
of weight ``w`` only when *every* limit can grant it. Each limit is a GCRA (generic cell rate
algorithm, equivalent to a token bucket of ``burst`` tokens refilled at ``rate / period`` per
second) holding one float, so ``try_acquire`` is O(number of limits), allocation-free and exact.

* ``try_acquire(weight)`` grants now or returns False (nothing is taken).
* ``await acquire(weight, timeout=None)`` grants now, or *reserves* the earliest time every limit
  can grant and sleeps until then; callers are therefore served in arrival order, with no
  thundering herd. When the wait would exceed ``timeout`` it raises :class:`RateLimitExceeded`
  at once (naming the limit and ``retry_after``) without reserving anything. A caller cancelled
  while waiting gives its reservation back.
* A weight larger than a limit's burst can never be granted: ``ValueError``.
* One limiter object is shared by every task that calls the same endpoint; it needs no lock
  because grants happen between await points. ``async with limiter:`` acquires weight 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio
import msgspec

from hrkernel.resilience.clock import Clock, Sleep, monotonic
from hrkernel.resilience.errors import RateLimitExceeded


class Limit(msgspec.Struct, frozen=True):
    """``rate`` weight units per ``period`` seconds, allowing bursts of ``burst`` (default rate)."""

    rate: float
    period: float = 1.0
    name: str = ""
    burst: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.period <= 0:
            raise ValueError(f"Limit {self.name or ''!r}: rate and period must be > 0, "
                             f"got rate={self.rate}, period={self.period}")
        if self.burst is not None and self.burst <= 0:
            raise ValueError(f"Limit {self.name!r}: burst must be > 0, got {self.burst}")

    @property
    def label(self) -> str:
        return self.name or f"{self.rate:g}/{self.period:g}s"


class LimiterMetrics(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    granted: int
    rejected: int
    waited: int
    headroom: float
    """Weight the limiter would grant right now (the tightest limit)."""
    limits: dict[str, float]
    """Per limit: weight it would grant right now."""


class RateLimiter:
    """Several GCRA limits applied together; see the module docstring for the contract."""

    def __init__(self, limits: Limit | Iterable[Limit], name: str = "limiter", *,
                 clock: Clock = monotonic, sleep: Sleep | None = None) -> None:
        limits = [limits] if isinstance(limits, Limit) else list(limits)
        if not limits:
            raise ValueError(f"RateLimiter({name!r}) needs at least one Limit")
        self.name = name
        self.limits = tuple(limits)
        self.clock = clock
        self.sleep: Sleep = sleep if sleep is not None else anyio.sleep
        n = len(limits)
        # Per limit: emission interval (seconds per unit of weight), tolerance (burst window).
        self._interval = [lim.period / lim.rate for lim in limits]
        self._burst = [lim.burst if lim.burst is not None else lim.rate for lim in limits]
        self._tolerance = [b * t for b, t in zip(self._burst, self._interval, strict=True)]
        self._tat = [0.0] * n  # theoretical arrival time per limit
        self._single = n == 1
        self._granted = 0
        self._rejected = 0
        self._waited = 0

    # ------------------------------------------------------------------ public surface

    def try_acquire(self, weight: float = 1) -> bool:
        """Grant ``weight`` now if every limit allows it; otherwise take nothing and return False."""
        now = self.clock()
        if self._single:
            tat = self._tat[0]
            new = (tat if tat > now else now) + weight * self._interval[0]
            if new - now <= self._tolerance[0] + 1e-9:
                self._tat[0] = new
                self._granted += 1
                return True
            self._check_weight(weight)
            self._rejected += 1
            return False
        wait, _ = self._wait_for(weight, now)
        if wait > 0:
            self._rejected += 1
            return False
        self._commit(weight, now)
        return True

    async def acquire(self, weight: float = 1, timeout: float | None = None) -> None:
        """Wait until ``weight`` is granted (see the module docstring); never waits past ``timeout``."""
        now = self.clock()
        if self._single:  # the common case, inlined: no extra call on the hot path
            tat = self._tat[0]
            new = (tat if tat > now else now) + weight * self._interval[0]
            if new - now <= self._tolerance[0] + 1e-9:
                self._tat[0] = new
                self._granted += 1
                return
        elif self._wait_for(weight, now)[0] <= 0:
            self._commit(weight, now)
            return
        wait, limit = self._wait_for(weight, now)
        if timeout is not None and wait > timeout:
            raise RateLimitExceeded(self.name, limit, weight, wait)
        # Reserve: move every limit's arrival time as if granted now, then sleep off the debt.
        self._waited += 1
        self._commit(weight, now, reserve=True)
        try:
            await self.sleep(wait)
        except BaseException:
            self._refund(weight)
            raise
        self._granted += 1

    async def __aenter__(self) -> RateLimiter:
        await self.acquire(1)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    def retry_after(self, weight: float = 1) -> float:
        """Seconds until ``weight`` could be granted (0 when it could be now)."""
        return self._wait_for(weight, self.clock())[0]

    def metrics(self) -> LimiterMetrics:
        now = self.clock()
        per = {}
        for i, lim in enumerate(self.limits):
            tat = max(self._tat[i], now)
            per[lim.label] = max(0.0, (self._tolerance[i] - (tat - now)) / self._interval[i])
        return LimiterMetrics(name=self.name, granted=self._granted, rejected=self._rejected,
                              waited=self._waited, headroom=min(per.values()), limits=per)

    def __repr__(self) -> str:
        return f"<RateLimiter {self.name!r} {[lim.label for lim in self.limits]}>"

    # ------------------------------------------------------------------ internals

    def _check_weight(self, weight: float) -> None:
        if weight <= 0:
            raise ValueError(f"rate limiter {self.name!r}: weight must be > 0, got {weight}")
        for lim, burst in zip(self.limits, self._burst, strict=True):
            if weight > burst:
                raise ValueError(
                    f"rate limiter {self.name!r}: weight {weight} exceeds limit {lim.label!r} "
                    f"burst {burst:g}; it could never be granted"
                )

    def _wait_for(self, weight: float, now: float) -> tuple[float, str]:
        self._check_weight(weight)
        wait, which = 0.0, ""
        for i, lim in enumerate(self.limits):
            tat = max(self._tat[i], now)
            need = tat + weight * self._interval[i] - now - self._tolerance[i]
            if need > wait + 1e-9:
                wait, which = need, lim.label
        return wait, which

    def _commit(self, weight: float, now: float, reserve: bool = False) -> None:
        for i in range(len(self._tat)):
            self._tat[i] = max(self._tat[i], now) + weight * self._interval[i]
        if not reserve:
            self._granted += 1

    def _refund(self, weight: float) -> None:
        for i in range(len(self._tat)):
            self._tat[i] -= weight * self._interval[i]
        self._waited -= 1


__all__ = ["Limit", "LimiterMetrics", "RateLimiter"]
