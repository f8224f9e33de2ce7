"""Fault injection and Nobitex's rate limits, both on an injectable clock and a seeded RNG.

Decisions are drawn from one ``random.Random(faults.seed)`` in request order, so the same config
and the same sequence of requests produce the same faults: a failing run can be replayed.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from hrkernel_sim.config import FaultConfig, LatencyConfig, RateLimitConfig

FAULT_KINDS = ("error_500", "error_502", "error_503", "error_429", "hang", "drop_after_accept",
               "ok_without_data", "malformed_200")
EARLY_FAULTS = ("downtime", "error_500", "error_502", "error_503", "error_429", "hang")
"""Faults answered before the request reaches its handler (nothing is executed)."""
MALFORMED_VARIANTS = ("html_page", "truncated_json", "null_data", "empty_body")
"""What ``malformed_200`` sends instead of the handler's body (drawn from the seeded RNG)."""


@dataclass(frozen=True)
class FaultDecision:
    kind: str | None
    """``None`` for no fault, else one of :data:`FAULT_KINDS` or ``"downtime"``."""
    delay: float = 0.0


@dataclass
class ScriptLeft:
    """A scripted fault and how many more requests it applies to."""

    endpoint: str
    kind: str
    count: int


class FaultInjector:
    """Decides, per request, the delay and the fault (if any) to inject."""

    def __init__(self, config: FaultConfig, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.configure(config)

    def configure(self, config: FaultConfig) -> None:
        """Replace the fault config (and reseed), keeping the downtime origin."""
        for script in config.scripted:
            if script.kind not in FAULT_KINDS:
                raise ValueError(f"faults.scripted: unknown kind {script.kind!r}; use one of {FAULT_KINDS}")
        for name, ef in config.endpoints.items():
            for attr in FAULT_KINDS:
                p = getattr(ef, attr)
                if not 0.0 <= p <= 1.0:
                    raise ValueError(f"faults.endpoints.{name}.{attr}: probability {p} is not in 0..1")
        self.config = config
        self.rng = random.Random(config.seed)
        self.scripted: list[ScriptLeft] = [ScriptLeft(s.endpoint, s.kind, s.count) for s in config.scripted]
        if not hasattr(self, "origin"):
            self.origin = self.clock()

    def restart_clock(self) -> None:
        self.origin = self.clock()

    def add_scripted(self, endpoint: str, kind: str, count: int) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {FAULT_KINDS}")
        self.scripted.append(ScriptLeft(endpoint, kind, count))

    def decide(self, endpoint: str) -> FaultDecision:
        cfg = self.config
        ef = cfg.endpoints.get(endpoint) or cfg.endpoints.get("*")
        delay = self._delay(ef.latency if ef and ef.latency else cfg.latency)
        elapsed = self.clock() - self.origin
        for window in cfg.downtime:
            if window.start <= elapsed < window.end and (not window.endpoints or endpoint in window.endpoints):
                return FaultDecision("downtime", delay)
        for script in self.scripted:
            if script.endpoint in (endpoint, "*") and script.count > 0:
                script.count -= 1
                return FaultDecision(script.kind, delay)
        if ef is not None:
            roll = self.rng.random()
            for kind in FAULT_KINDS:
                p = getattr(ef, kind)
                if roll < p:
                    return FaultDecision(kind, delay)
                roll -= p
        return FaultDecision(None, delay)

    def _delay(self, lat: LatencyConfig) -> float:
        delay = float(lat.fixed)
        if lat.jitter:
            delay += self.rng.uniform(0.0, float(lat.jitter))
        if lat.spike_rate and self.rng.random() < lat.spike_rate:
            delay += float(lat.spike)
        return delay


@dataclass(frozen=True)
class Limited:
    back_off: int
    limit: int
    blocked: bool


class RateLimiter:
    """Nobitex's per-endpoint sliding windows, per identity (token, or IP for public calls).

    A 429 names ``backOff`` seconds. An identity that keeps calling while inside a back-off
    (``ignored_429_before_block`` times) is blocked on every endpoint for ``block`` seconds.
    """

    def __init__(self, config: RateLimitConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.hits: dict[tuple[str, str], deque[float]] = {}
        self.back_off_until: dict[tuple[str, str], float] = {}
        self.ignored: dict[str, int] = {}
        self.blocked_until: dict[str, float] = {}
        self.bad_tokens: dict[str, deque[float]] = {}

    def check(self, identity: str, endpoint: str) -> Limited | None:
        """Count one request; a :class:`Limited` if it must be answered with 429."""
        if not self.config.enabled:
            return None
        now = self.clock()
        until = self.blocked_until.get(identity, 0.0)
        if now < until:
            return Limited(back_off=math.ceil(until - now), limit=0, blocked=True)
        rule = self.config.limits.get(endpoint)
        if rule is None:
            return None
        key = (identity, endpoint)
        if now < self.back_off_until.get(key, 0.0):
            self.ignored[identity] = self.ignored.get(identity, 0) + 1
            if self.ignored[identity] >= self.config.ignored_429_before_block:
                self.blocked_until[identity] = now + float(self.config.block)
                self.ignored[identity] = 0
                return Limited(back_off=math.ceil(float(self.config.block)), limit=rule.limit,
                               blocked=True)
        window = self.hits.setdefault(key, deque())
        while window and window[0] <= now - float(rule.window):
            window.popleft()
        if len(window) >= rule.limit:
            back_off = max(1, math.ceil(window[0] + float(rule.window) - now))
            self.back_off_until[key] = now + back_off
            return Limited(back_off=back_off, limit=rule.limit, blocked=False)
        window.append(now)
        return None

    def bad_token(self, ip: str) -> bool:
        """Count a request with a wrong token; True once the IP is over Nobitex's threshold."""
        if not self.config.enabled:
            return False
        now = self.clock()
        window = self.bad_tokens.setdefault(ip, deque())
        while window and window[0] <= now - float(self.config.bad_token_window):
            window.popleft()
        window.append(now)
        if len(window) > self.config.bad_token_per_ip:
            self.blocked_until[f"ip:{ip}"] = window[0] + float(self.config.bad_token_window)
            return True
        return False
