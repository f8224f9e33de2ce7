"""Nobitex-specific guards the adapter keeps for itself.

* :class:`EndpointLimits`: Nobitex counts requests per endpoint (sliding windows, see
  :data:`~hrkernel_nobitex.config.DEFAULT_LIMITS`) and, after a 429, wants *that endpoint* left
  alone for ``backOff`` seconds; ignoring 429s blocks the token on every endpoint for two
  minutes. The generic limiter of ``hrkernel.resilience`` knows neither per-endpoint windows
  keyed by one name nor server-imposed back-offs, so the adapter keeps this small table.
* :class:`StaleCache`: cache-aside with a TTL, plus a stale window during which an expired
  value is still served when refreshing fails (market data and markets only).

Both take an injectable clock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
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


class StaleCache:
    def __init__(self, is_outage: Callable[[Exception], bool], *, clock: Clock = time.monotonic) -> None:
        self.is_outage = is_outage
        self.clock = clock
        self._data: dict[str, tuple[float, Any]] = {}
        self.stale_served = 0

    async def get(self, key: str, ttl: float, stale_for: float,
                  load: Callable[[], Awaitable[Any]]) -> Any:
        now = self.clock()
        hit = self._data.get(key)
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        try:
            value = await load()
        except Exception as exc:
            # Only an outage is papered over (see ``is_outage``); a refusal is an answer.
            if hit is not None and self.is_outage(exc) and now - hit[0] < ttl + stale_for:
                self.stale_served += 1
                return hit[1]
            raise
        self._data[key] = (self.clock(), value)
        return value

    def clear(self) -> None:
        self._data.clear()
