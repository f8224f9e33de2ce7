"""Health probes of the HA area: Redis reachable (a check), liveness and readiness (for the web)."""

from __future__ import annotations

import time
from typing import Any, Protocol

from hrkernel.types import HealthResult, HealthStatus


class PartsHost(Protocol):
    """Whatever holds the running parts by name (the kernel, the web layer's host)."""

    def get(self, name: str) -> Any: ...


class RedisReachable:
    """Health check: PING round trip to the lease's Redis, with latency."""

    def __init__(self, url: str, timeout: float, degraded_after: float = 0.05) -> None:
        self.url = url
        self.timeout = timeout
        self.degraded_after = degraded_after
        self._client: Any = None

    async def check(self) -> HealthResult:
        from hrkernel.ha.redis_lease import connect

        if self._client is None:
            self._client = connect(self.url, self.timeout)
        began = time.monotonic()
        await self._client.ping()
        took = time.monotonic() - began
        status = HealthStatus.DEGRADED if took >= self.degraded_after else HealthStatus.HEALTHY
        return HealthResult(status=status, detail=f"PING {took * 1000:.2f} ms", latency=took)

    async def recover(self) -> None:
        """Drop the connection pool; the next check connects afresh."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def aclose(self) -> None:
        await self.recover()


def probes(kernel: PartsHost) -> dict[str, tuple[int, dict[str, Any]]]:
    """Liveness and readiness for the web app: ``{"live": (code, body), "ready": (code, body)}``.

    Live: the health monitor runs and its checks are not stuck. Ready: no check is reported
    unhealthy. A standby is ready (it can take over); its role is in the body.
    """
    monitor = kernel.get("health")
    ha = kernel.get("ha")
    live = monitor.liveness() if monitor is not None else {"alive": True, "stale_checks": []}
    ready = monitor.readiness() if monitor is not None else {"ready": True, "status": "healthy", "unhealthy": []}
    if ha is not None:
        ready = {**ready, "role": ha.status()["role"], "trading": ha.may_trade()}
    return {
        "live": (200 if live["alive"] else 503, live),
        "ready": (200 if ready["ready"] else 503, ready),
    }
