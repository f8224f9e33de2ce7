"""The kernel's own health checks, registered through the same hook a third party uses."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

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


class DuckDBWritableConfig(ConfigStruct, kw_only=True):
    file: str = "health_probe.duckdb"
    """Probe file, relative to ``[kernel] data_dir`` (kept apart from the journal and ledger)."""
    degraded_after: Duration = Duration(0.5)


class DuckDBWritable:
    """Writes and reads back one row in a DuckDB file in the data dir: a full or read-only disk
    stops the journal, so it must show up here first. While it is reported unhealthy the health
    monitor halts new orders (``halts_orders``)."""

    halts_orders = True

    def __init__(self, config: DuckDBWritableConfig, data_dir: str) -> None:
        self.config = config
        self.path = Path(data_dir) / config.file

    def _probe(self) -> str:
        import duckdb

        self.path.parent.mkdir(parents=True, exist_ok=True)
        stamp = repr(time.time())
        with duckdb.connect(str(self.path)) as db:
            db.execute("CREATE TABLE IF NOT EXISTS probe (stamp VARCHAR)")
            db.execute("DELETE FROM probe")
            db.execute("INSERT INTO probe VALUES (?)", [stamp])
            row = db.execute("SELECT stamp FROM probe").fetchone()
        if row is None or row[0] != stamp:
            raise RuntimeError(f"read back {row!r}, wrote {stamp!r}")
        return stamp

    async def check(self) -> HealthResult:
        began = time.monotonic()
        try:
            await anyio.to_thread.run_sync(self._probe)
        except Exception as exc:
            return HealthResult(status=HealthStatus.UNHEALTHY, detail=f"{self.path}: {type(exc).__name__}: {exc}")
        took = time.monotonic() - began
        status = HealthStatus.DEGRADED if took >= self.config.degraded_after else HealthStatus.HEALTHY
        return HealthResult(status=status, detail=f"write+read {took * 1000:.1f} ms", latency=took)


class ExchangeBreaker:
    """An exchange adapter's circuit breaker as a health check (``exchange:<id>:breaker``, added by the
    health monitor for every exchange that has a ``breaker`` and no ``check()`` of its own):
    unhealthy while it is open or only probing (half-open), so an exchange outage raises the
    health alert whether or not the adapter's breaker is in the shared registry."""

    def __init__(self, breaker: Any) -> None:
        self.breaker = breaker

    async def check(self) -> HealthResult:
        state = str(getattr(self.breaker.state, "value", self.breaker.state))
        if state == "closed":
            return HealthResult(status=HealthStatus.HEALTHY, detail="circuit breaker closed")
        name = getattr(self.breaker, "name", "")
        return HealthResult(status=HealthStatus.UNHEALTHY, detail=f"circuit breaker {name} {state}".replace("  ", " "))


@hookimpl
def hr_register_health_checks(register: Register) -> None:
    register("event_loop_lag", lambda config, context: EventLoopLag(config), config=EventLoopLagConfig)
    register(
        "duckdb_writable",
        lambda config, context: DuckDBWritable(config, context.data_dir),
        config=DuckDBWritableConfig,
    )
