"""The kernel component holding the configured breakers, limiters, bulkheads and pools.

The composition root hands it to the parts that need it. It does no I/O in its constructor; with
``[resilience.shared_state] redis_url`` set, ``start`` runs a :class:`RedisBreakerSync` in the
kernel's task group. Its breakers live in the process-wide :data:`hrkernel.resilience.registry`
(so ``@circuit_breaker(name=...)`` and the config name the same breakers); pools created elsewhere
can be registered with :meth:`ResilienceComponent.add_pool` so the dashboard and metrics see them.
"""

from __future__ import annotations

from typing import Any

from anyio.abc import TaskGroup

from hrkernel.lifecycle import Component
from hrkernel.resilience.breaker import CircuitBreaker
from hrkernel.resilience.breaker_redis import RedisBreakerSync
from hrkernel.resilience.breaker_registry import BreakerRegistry, registry
from hrkernel.resilience.bulkhead import Bulkhead
from hrkernel.resilience.config import ResilienceSection
from hrkernel.resilience.pool import ConnectionPool
from hrkernel.resilience.ratelimit import Limit, RateLimiter


class ResilienceComponent(Component):
    name = "resilience"

    def __init__(self, section: ResilienceSection, instance_id: str = "",
                 breakers: BreakerRegistry | None = None) -> None:
        self.section = section
        self.breakers = breakers if breakers is not None else registry
        for name, table in section.breakers.items():
            self.breakers.configure(name, **table.options())
        self.limiters: dict[str, RateLimiter] = {
            name: RateLimiter([Limit(lim.rate, float(lim.period), name=lim.name, burst=lim.burst)
                               for lim in table.limits], name=name)
            for name, table in section.limiters.items()
        }
        self.bulkheads: dict[str, Bulkhead] = {
            name: Bulkhead(name, table.max_concurrent, max_queue=table.max_queue,
                           queue_timeout=None if table.queue_timeout is None else float(table.queue_timeout))
            for name, table in section.bulkheads.items()
        }
        self.pools: dict[str, ConnectionPool[Any]] = {}
        shared = section.shared_state
        self.sync: RedisBreakerSync | None = None
        if shared.redis_url:
            self.sync = RedisBreakerSync(shared.redis_url, self.breakers, prefix=shared.prefix,
                                         interval=float(shared.interval),
                                         instance_id=instance_id or None)

    def breaker(self, name: str) -> CircuitBreaker:
        return self.breakers.get(name)

    def limiter(self, name: str) -> RateLimiter:
        try:
            return self.limiters[name]
        except KeyError:
            raise KeyError(f"no rate limiter named {name!r} in [resilience.limiters] "
                           f"(configured: {', '.join(sorted(self.limiters)) or 'none'})") from None

    def bulkhead(self, name: str) -> Bulkhead:
        try:
            return self.bulkheads[name]
        except KeyError:
            raise KeyError(f"no bulkhead named {name!r} in [resilience.bulkheads] "
                           f"(configured: {', '.join(sorted(self.bulkheads)) or 'none'})") from None

    def add_pool(self, pool: ConnectionPool[Any]) -> None:
        self.pools[pool.name] = pool

    async def start(self, tg: TaskGroup) -> None:
        if self.sync is not None:
            await self.sync.start(tg)

    async def stop(self) -> None:
        if self.sync is not None:
            await self.sync.aclose()
        for pool in list(self.pools.values()):
            await pool.aclose()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": type(self).__name__,
            "breakers": sorted(b.name for b in self.breakers),
            "limiters": sorted(self.limiters),
            "bulkheads": sorted(self.bulkheads),
            "shared_state": bool(self.sync),
        }
