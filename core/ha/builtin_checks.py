"""The kernel's own health checks, registered through the same hook a third party uses."""

from __future__ import annotations

import time

import anyio

from hrkernel import hookimpl
from hrkernel.spec import Register
from hrkernel.types import ConfigStruct, Duration, HealthResult, HealthStatus


class EventLoopLagConfig(ConfigStruct, kw_only=True):
    degraded_after: Duration = Duration(0.1)
    unhealthy_after: Duration = Duration(1.0)


class EventLoopLag:
    """How late the event loop wakes a sleeping task: a blocked loop delays every order."""

    PROBE = 0.01

    def __init__(self, config: EventLoopLagConfig) -> None:
        self.config = config

    async def check(self) -> HealthResult:
        began = time.monotonic()
        await anyio.sleep(self.PROBE)
        lag = max(0.0, time.monotonic() - began - self.PROBE)
        if lag >= self.config.unhealthy_after:
            status = HealthStatus.UNHEALTHY
        elif lag >= self.config.degraded_after:
            status = HealthStatus.DEGRADED
        else:
            status = HealthStatus.HEALTHY
        return HealthResult(status=status, detail=f"lag {lag * 1000:.1f} ms", latency=lag)


@hookimpl
def hr_register_health_checks(register: Register) -> None:
    register("event_loop_lag", lambda config, context: EventLoopLag(config), config=EventLoopLagConfig)
