"""Nobitex's per-endpoint request limits, counted on our side.

Nobitex documents hard "N requests per window" limits per endpoint (see
:data:`~hrkernel_nobitex.config.DEFAULT_LIMITS`), answers 429 with ``backOff`` seconds to stay
away from *that endpoint*, and blocks the token on every endpoint for two minutes when 429s are
ignored. :class:`EndpointLimits` therefore keeps an exact sliding log per endpoint (never more
than N sends in any window of the documented length) plus the server-imposed quiet periods.
``hrkernel.resilience.RateLimiter`` is a GCRA token bucket: configured as ``Limit(N, window,
burst=N)`` it can admit up to 2N in one window (a full burst, then the refill), which is exactly
what earns the two-minute block; configured tighter it halves the usable quota. Takes an
injectable clock.

With a shared :class:`~hrkernel_nobitex.budget.Budget` (Redis for an HA pair, a file under
``data_dir`` for a lone kernel) :meth:`EndpointLimits.take` checks and records each send there, so
every process using the token spends one budget and honours one ``backOff``; the local log is
kept too (the dashboard's figures, and the fallback while the store cannot be reached).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hrkernel_nobitex.budget import Budget

Clock = Callable[[], float]


class EndpointLimits:
    def __init__(self, limits: dict[str, tuple[int, float]], *, enabled: bool = True,
                 clock: Clock = time.monotonic, budget: Budget | None = None, log: Any = None) -> None:
        self.limits = dict(limits)
        self.enabled = enabled
        self.clock = clock
        self.budget = budget
        """The budget shared with every process using the same token (None: this process alone)."""
        self._log = log
        self._budget_down = False
        self._sent: dict[str, deque[float]] = {name: deque() for name in limits}
        self._blocked_until: dict[str, float] = {}
        self.shared_waits = 0
        """Sends held back because of what other processes (or earlier ones) spent."""

    async def take(self, endpoint: str) -> float:
        """Record a send on ``endpoint`` and return 0 if the limits allow one now; otherwise
        record nothing and return the seconds to wait. Counts against the shared budget when
        there is one (its answer is authoritative: it saw every process's sends)."""
        wait = self.delay(endpoint)
        if self.budget is not None and wait <= 0:
            count, per = self.limits.get(endpoint, (0, 0.0)) if self.enabled else (0, 0.0)
            try:
                wait = await self.budget.take(endpoint, count, per)
            except Exception as exc:  # the store is down: count locally rather than stop trading
                self._store_failed(exc)
            else:
                self._store_back()
                if wait > 0:
                    self.shared_waits += 1
                    return wait
        if wait <= 0:
            self.record(endpoint)
        return wait

    async def back_off_shared(self, endpoint: str, seconds: float) -> None:
        """:meth:`back_off` here and in the shared budget: no process sharing the token probes it."""
        self.back_off(endpoint, seconds)
        if self.budget is not None:
            try:
                await self.budget.back_off(endpoint, seconds)
            except Exception as exc:
                self._store_failed(exc)

    def _store_failed(self, exc: Exception) -> None:
        if not self._budget_down and self._log is not None:
            self._log.warning("rate_budget_unavailable", error=f"{type(exc).__name__}: {exc}",
                              fallback="this process's own count until the shared budget answers")
        self._budget_down = True

    def _store_back(self) -> None:
        if self._budget_down and self._log is not None:
            self._log.info("rate_budget_available")
        self._budget_down = False

    def delay(self, endpoint: str) -> float:
        """Seconds until ``endpoint`` may be called (0: now). Reserves nothing."""
        now = self.clock()
        wait = max(0.0, self._blocked_until.get(endpoint, 0.0) - now)
        if not self.enabled or endpoint not in self.limits:
            return wait
        count, per = self.limits[endpoint]
        sent = self._sent[endpoint]
        while sent and sent[0] <= now - per:
            sent.popleft()
        if len(sent) >= count:
            wait = max(wait, sent[0] + per - now)
        return wait

    def record(self, endpoint: str) -> None:
        if self.enabled and endpoint in self._sent:
            self._sent[endpoint].append(self.clock())

    def back_off(self, endpoint: str, seconds: float) -> None:
        """The exchange answered 429 with ``backOff``: keep off this endpoint that long."""
        until = self.clock() + max(0.0, seconds)
        self._blocked_until[endpoint] = max(self._blocked_until.get(endpoint, 0.0), until)

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {
            name: {"used": len([t for t in self._sent[name] if t > now - per]), "limit": count, "per": per,
                   "blocked_for": max(0.0, self._blocked_until.get(name, 0.0) - now)}
            for name, (count, per) in self.limits.items()
        }
