"""Runs every registered health check on its interval, under its timeout, and keeps the results."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from hrkernel.kernel.component import Component
from hrkernel.logging import get_logger
from hrkernel.types import HealthResult, HealthStatus

if TYPE_CHECKING:
    from hrkernel.kernel.kernel import Kernel

HISTORY = 500
"""Results kept in memory per check."""


@dataclass
class CheckRun:
    name: str
    check: Any
    interval: float
    timeout: float
    plugin: str
    history: deque[tuple[float, HealthResult]] = field(default_factory=lambda: deque(maxlen=HISTORY))

    @property
    def last(self) -> HealthResult | None:
        return self.history[-1][1] if self.history else None


class HealthMonitor(Component):
    name = "health"

    def __init__(self, runs: list[CheckRun]) -> None:
        self.runs = {run.name: run for run in runs}
        self.log = get_logger("hrkernel.health")
        self._stopping = anyio.Event()

    @classmethod
    def from_kernel(cls, kernel: Kernel) -> HealthMonitor:
        runs = [
            CheckRun(
                name=item.id,
                check=item.registration.factory(item.config, kernel.context),
                interval=item.interval,
                timeout=item.timeout,
                plugin=item.registration.plugin,
            )
            for item in kernel.plugin_config.health_checks
        ]
        return cls(runs)

    async def start(self, tg: TaskGroup) -> None:
        for run in self.runs.values():
            tg.start_soon(self._loop, run, name=f"health:{run.name}")

    async def stop(self) -> None:
        self._stopping.set()

    async def run_once(self, run: CheckRun) -> HealthResult:
        began = time.monotonic()
        try:
            with anyio.fail_after(run.timeout):
                result = await run.check.check()
            if not isinstance(result, HealthResult):
                raise TypeError(f"check() returned {type(result).__name__}, not HealthResult")
        except TimeoutError:
            result = HealthResult(status=HealthStatus.UNHEALTHY, detail=f"timed out after {run.timeout:g}s")
        except Exception as exc:  # a third-party check may raise anything
            result = HealthResult(status=HealthStatus.UNHEALTHY, detail=f"{type(exc).__name__}: {exc}")
        if result.latency is None:
            result = HealthResult(status=result.status, detail=result.detail, latency=time.monotonic() - began)
        previous = run.last
        run.history.append((time.time(), result))
        if previous is None or previous.status != result.status:
            level = self.log.info if result.status == HealthStatus.HEALTHY else self.log.warning
            level(
                "health_status",
                check=run.name,
                plugin=run.plugin,
                status=result.status.value,
                previous=previous.status.value if previous else None,
                detail=result.detail,
                latency_ms=round((result.latency or 0) * 1000, 2),
            )
        return result

    async def _loop(self, run: CheckRun) -> None:
        while not self._stopping.is_set():
            await self.run_once(run)
            with anyio.move_on_after(run.interval):
                await self._stopping.wait()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "status": run.last.status.value if run.last else "unknown",
                "detail": run.last.detail if run.last else "",
                "latency": run.last.latency if run.last else None,
                "plugin": run.plugin,
            }
            for name, run in self.runs.items()
        }

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "health", "checks": sorted(self.runs)}
