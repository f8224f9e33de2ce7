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
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

Clock = Callable[[], float]


class EndpointLimits:
    def __init__(self, limits: dict[str, tuple[int, float]], *, enabled: bool = True,
                 clock: Clock = time.monotonic) -> None:
        self.limits = dict(limits)
        self.enabled = enabled
        self.clock = clock
        self._sent: dict[str, deque[float]] = {name: deque() for name in limits}
        self._blocked_until: dict[str, float] = {}

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
