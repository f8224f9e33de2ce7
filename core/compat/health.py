"""The design's ``HealthChecker(exchange, database, redis_client).check_health()``.

hrkernel's health monitor (:mod:`hrkernel.ha.health`) runs registered checks on intervals and
reports each as :class:`hrkernel.types.HealthStatus` — an *enum* (healthy / degraded /
unhealthy). The documents' ``HealthStatus`` is a *result* with ``healthy``, ``timestamp``,
``checks``, ``latency_ms`` and ``message``. That result is :class:`HealthCheckResult` here, and
``hrkernel.compat.HealthStatus`` is an alias of it that exists only in this package: code ported
from the documents imports ``HealthStatus`` from ``hrkernel.compat`` and gets the result type,
while ``hrkernel.types.HealthStatus`` stays the enum.
"""

from __future__ import annotations

import inspect
import sqlite3
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import anyio
import msgspec

from hrkernel.alerts.manager import AlertSystem
from hrkernel.alerts.types import AlertLevel
from hrkernel.compat.orders import TransactionVerificationPipeline as CompatPipeline
from hrkernel.logging import get_logger
from hrkernel.orders.pipeline import TransactionVerificationPipeline
from hrkernel.resilience import BreakerState
from hrkernel.web.app import create_health_dashboard

__all__ = ["HealthCheckResult", "HealthChecker", "HealthStatus", "create_health_dashboard"]


class HealthCheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """One run of :meth:`HealthChecker.check_health`."""

    healthy: bool
    """True only when every check passed."""
    timestamp: datetime
    checks: dict[str, bool]
    """Check name (``exchange``, ``database``, ``redis``) → passed."""
    latency_ms: float
    """How long the whole run took."""
    message: str
    """``"all checks passed"``, or what failed and why."""


HealthStatus = HealthCheckResult
"""The documents' name (compat only; ``hrkernel.types.HealthStatus`` is the status enum)."""


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class HealthChecker:
    """Checks an exchange, a database and Redis at once, each under ``timeout`` seconds.

    Any of them may be None (then it is not checked). The exchange passes when its
    ``ping()`` answers and its circuit breaker (if it has one) is not open; the database when
    ``execute("SELECT 1")`` works (a DuckDB or sqlite3 connection; run in a worker thread); Redis
    when ``ping()`` answers (asyncio or sync client); ``pipeline`` when new orders are not halted;
    ``alerts`` when no critical alert fires. ``health_history`` keeps the last
    ``history_size`` results.
    """

    def __init__(self, exchange: Any = None, database: Any = None, redis_client: Any = None, *,
                 pipeline: CompatPipeline | TransactionVerificationPipeline | None = None,
                 alerts: AlertSystem | None = None, timeout: float = 5.0, history_size: int = 100) -> None:
        self.exchange = exchange
        self.database = database
        self.redis_client = redis_client
        self.pipeline = pipeline
        """An order pipeline (compat or the kernel's): a halt of new orders fails check ``trading``."""
        self.alerts = alerts
        """An AlertSystem: a firing critical alert fails check ``alerts``."""
        self.timeout = timeout
        self.health_history: deque[HealthCheckResult] = deque(maxlen=history_size)
        self.log = get_logger("hrkernel.compat.health")

    async def check_health(self) -> HealthCheckResult:
        started = time.perf_counter()
        probes = {"exchange": (self.exchange, self._exchange), "database": (self.database, self._database),
                  "redis": (self.redis_client, self._redis), "trading": (self.pipeline, self._trading),
                  "alerts": (self.alerts, self._alerts)}
        outcomes: dict[str, str | None] = {}

        async def run(name: str, probe: Any) -> None:
            try:
                with anyio.fail_after(self.timeout):
                    outcomes[name] = await probe()
            except TimeoutError:
                outcomes[name] = f"no answer within {self.timeout:g}s"
            except Exception as exc:
                outcomes[name] = f"{type(exc).__name__}: {exc}"

        async with anyio.create_task_group() as tg:
            for name, (target, probe) in probes.items():
                if target is not None:
                    tg.start_soon(run, name, probe)
        checks = {name: outcomes[name] is None for name in probes if name in outcomes}
        failed = [f"{name}: {outcomes[name]}" for name in checks if not checks[name]]
        result = HealthCheckResult(
            healthy=not failed, timestamp=datetime.now(UTC), checks=checks,
            latency_ms=(time.perf_counter() - started) * 1000,
            message="; ".join(failed) if failed else "all checks passed",
        )
        self.health_history.append(result)
        if failed:
            self.log.warning("health_check_failed", checks=checks, detail=result.message)
        return result

    async def _exchange(self) -> str | None:
        breaker = getattr(self.exchange, "breaker", None)
        if breaker is not None and getattr(breaker, "state", None) == BreakerState.OPEN:
            return "circuit breaker open"
        await self.exchange.ping()
        return None

    async def _database(self) -> str | None:
        db = self.database

        def select_one() -> None:
            # A cursor of its own: the caller's connection may be in use by another thread.
            cursor = db.cursor() if hasattr(db, "cursor") else db
            try:
                cursor.execute("SELECT 1").fetchone()
            finally:
                if cursor is not db and hasattr(cursor, "close"):
                    cursor.close()

        execute = getattr(db, "execute", None)
        if execute is not None and inspect.iscoroutinefunction(execute):
            await execute("SELECT 1")
        elif isinstance(db, sqlite3.Connection):
            select_one()  # sqlite3 connections refuse other threads; SELECT 1 does not block
        else:
            await anyio.to_thread.run_sync(select_one)
        return None

    async def _trading(self) -> str | None:
        # Never healthy while new orders are refused: a halt is an outage of the trading service.
        pipeline = self.pipeline.pipeline if isinstance(self.pipeline, CompatPipeline) else self.pipeline
        assert pipeline is not None  # run only when one was given
        halts = dict(pipeline.halts)
        if pipeline.config.kill_switch:
            halts["kill_switch"] = "the kill switch is on"
        return "halted: " + "; ".join(halts.values()) if halts else None

    async def _alerts(self) -> str | None:
        assert self.alerts is not None  # run only when one was given
        firing = [a.title for a in list(self.alerts.open.values())
                  if a.status == "firing" and a.level is AlertLevel.CRITICAL]
        return f"critical alert firing: {', '.join(firing)}" if firing else None

    async def _redis(self) -> str | None:
        ok = await _maybe_await(self.redis_client.ping())
        return None if ok else "PING was not answered with PONG"
