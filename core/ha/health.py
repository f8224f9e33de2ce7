"""Runs every registered health check on its interval, under its timeout, and keeps the results.

Besides the registered checks it runs the freshness check of every data source and the health
of every exchange (its ``check()``, or its adapter's circuit breaker). Each result goes into a
bounded in-memory history (and DuckDB when a store is given). The
*reported* status of a check changes only after ``hysteresis`` consecutive results agree on the
new status, so one blip does not flap; each change is logged and handed to listeners as a
:class:`HealthChange`. A check may declare a recovery action (``async def recover(self)`` on the
check object); it is attempted while the check is reported unhealthy, with exponential backoff,
and every attempt is recorded.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from anyio.abc import TaskGroup

from hrkernel.lifecycle import Component, ShutdownStage
from hrkernel.logging import get_logger
from hrkernel.types import HealthResult, HealthStatus

if TYPE_CHECKING:
    from hrkernel.ha.store import HAStore

HISTORY = 500
"""Results kept in memory per check (default)."""

Recovery = Callable[[], Awaitable[Any]]


class HealthChange(msgspec.Struct, frozen=True, kw_only=True):
    """The reported status of a check changed (after hysteresis)."""

    check: str
    previous: HealthStatus | None
    status: HealthStatus
    detail: str
    at: float


class RecoveryAttempt(msgspec.Struct, frozen=True, kw_only=True):
    check: str
    attempt: int
    outcome: str
    """``ok`` or ``error``."""
    detail: str
    at: float


@dataclass
class CheckRun:
    name: str
    check: Any
    interval: float
    timeout: float
    plugin: str
    history: deque[tuple[float, HealthResult]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    recovery: Recovery | None = None
    """Defaults to the check object's ``recover`` method, when it has one."""
    status: HealthStatus | None = None
    """The reported status (after hysteresis); None until the first result."""
    streak: int = 0
    """Consecutive latest results whose status differs from the reported one."""
    recovery_attempts: deque[RecoveryAttempt] = field(default_factory=lambda: deque(maxlen=100))
    next_recovery_at: float = 0.0
    recovery_failures: int = 0
    last_run_at: float | None = None
    grace: float = 0.0
    """Start-up grace: seconds after the monitor starts during which a not-yet-healthy result is
    not reported (the status stays None/unknown)."""
    in_grace: bool = False

    def __post_init__(self) -> None:
        if self.recovery is None:
            recover = getattr(self.check, "recover", None)
            if callable(recover):
                self.recovery = recover

    @property
    def last(self) -> HealthResult | None:
        return self.history[-1][1] if self.history else None


Listener = Callable[[HealthChange], Awaitable[None] | None]


class HealthMonitor(Component):
    name = "health"
    shutdown_stage = ShutdownStage.STOP_INTAKE

    def __init__(
        self,
        runs: list[CheckRun],
        *,
        hysteresis: int = 1,
        history: int = HISTORY,
        store: HAStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        recovery_backoff: float = 1.0,
        recovery_backoff_max: float = 60.0,
    ) -> None:
        self.runs: dict[str, CheckRun] = {}
        self.hysteresis = hysteresis
        self.history_size = history
        self.store = store
        self.clock = clock
        self.wall = wall
        self.recovery_backoff = recovery_backoff
        self.recovery_backoff_max = recovery_backoff_max
        self.log = get_logger("hrkernel.health")
        self._listeners: list[Listener] = []
        self._stopping = anyio.Event()
        self._started_at: float | None = None
        self._running = False
        for run in runs:
            self.add(run)

    def add(self, run: CheckRun) -> None:
        if run.name in self.runs:
            raise ValueError(f"two health checks are named {run.name!r}")
        if run.history.maxlen != self.history_size:
            run.history = deque(run.history, maxlen=self.history_size)
        self.runs[run.name] = run

    def add_listener(self, listener: Listener) -> None:
        """``listener(change)`` (sync or async) is called on every reported status change."""
        self._listeners.append(listener)

    async def start(self, tg: TaskGroup) -> None:
        self._running = True
        self._started_at = self.clock()
        for run in self.runs.values():
            tg.start_soon(self._loop, run, name=f"health:{run.name}")

    async def stop(self) -> None:
        self._stopping.set()
        self._running = False

    async def run_once(self, run: CheckRun) -> HealthResult:
        """Run one check now; update history, reported status and, if due, try its recovery."""
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
        at = self.wall()
        run.last_run_at = self.clock()
        run.history.append((at, result))
        await self._update_status(run, result, at)
        if self.store is not None:
            try:
                await anyio.to_thread.run_sync(
                    self.store.record_health, at, run.name, result.status.value,
                    (run.status or result.status).value, result.latency, result.detail,
                )
            except Exception as exc:
                self.log.error("health_history_write_failed", check=run.name, error=f"{type(exc).__name__}: {exc}")
        if run.status == HealthStatus.UNHEALTHY and run.recovery is not None:
            await self._maybe_recover(run)
        elif run.status != HealthStatus.UNHEALTHY:
            run.recovery_failures, run.next_recovery_at = 0, 0.0
        return result

    def _in_startup_grace(self, run: CheckRun, result: HealthResult) -> bool:
        """A check that has not reported yet and is not healthy yet, inside its start-up grace
        (a data source before its first message): say nothing rather than a false alarm."""
        if run.status is not None or result.status is HealthStatus.HEALTHY or self._started_at is None:
            return False
        left = run.grace - (self.clock() - self._started_at)
        if left <= 0:
            return False
        if not run.in_grace:
            self.log.info("health_check_starting", check=run.name, detail=result.detail, grace_left_s=round(left, 1))
        run.in_grace = True
        return True

    async def _update_status(self, run: CheckRun, result: HealthResult, at: float) -> None:
        if self._in_startup_grace(run, result):
            return
        run.in_grace = False
        previous = run.status
        if previous == result.status:
            run.streak = 0
            return
        if previous is not None:
            # Only a run of identical new results counts; a mixed run starts over.
            last_other = run.history[-2][1].status if len(run.history) >= 2 else None
            run.streak = run.streak + 1 if last_other == result.status else 1
            if run.streak < self.hysteresis:
                return
        run.status, run.streak = result.status, 0
        level = self.log.info if result.status == HealthStatus.HEALTHY else self.log.warning
        level(
            "health_status",
            check=run.name,
            plugin=run.plugin,
            status=result.status.value,
            previous=previous.value if previous else None,
            detail=result.detail,
            latency_ms=round((result.latency or 0) * 1000, 2),
        )
        change = HealthChange(check=run.name, previous=previous, status=result.status, detail=result.detail, at=at)
        for listener in list(self._listeners):
            try:
                outcome = listener(change)
                if outcome is not None:
                    await outcome
            except Exception as exc:
                self.log.error("health_listener_failed", check=run.name, error=f"{type(exc).__name__}: {exc}")

    async def _maybe_recover(self, run: CheckRun) -> None:
        now = self.clock()
        if now < run.next_recovery_at or run.recovery is None:
            return
        attempt = run.recovery_failures + 1
        try:
            with anyio.fail_after(max(run.timeout, 1.0) * 5):
                await run.recovery()
            outcome, detail = "ok", ""
        except Exception as exc:
            outcome, detail = "error", f"{type(exc).__name__}: {exc}"
        run.recovery_failures = attempt
        # Back off whatever the outcome: the action "succeeding" does not mean the check recovered.
        delay = min(self.recovery_backoff * 2 ** (attempt - 1), self.recovery_backoff_max)
        run.next_recovery_at = now + delay
        record = RecoveryAttempt(check=run.name, attempt=attempt, outcome=outcome, detail=detail, at=self.wall())
        run.recovery_attempts.append(record)
        self.log.warning("health_recovery_attempt", check=run.name, attempt=attempt, outcome=outcome, detail=detail, next_in_s=delay)
        if self.store is not None:
            try:
                await anyio.to_thread.run_sync(self.store.record_recovery, record.at, run.name, attempt, outcome, detail)
            except Exception as exc:
                self.log.error("health_history_write_failed", check=run.name, error=f"{type(exc).__name__}: {exc}")

    async def _loop(self, run: CheckRun) -> None:
        while not self._stopping.is_set():
            await self.run_once(run)
            with anyio.move_on_after(run.interval):
                await self._stopping.wait()

    def status_of(self, name: str) -> HealthStatus | None:
        run = self.runs.get(name)
        return run.status if run else None

    def overall(self) -> HealthStatus:
        """The worst reported status (healthy when no check has reported yet)."""
        statuses = {run.status for run in self.runs.values() if run.status is not None}
        for status in (HealthStatus.UNHEALTHY, HealthStatus.DEGRADED):
            if status in statuses:
                return status
        return HealthStatus.HEALTHY

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "status": run.status.value if run.status else "unknown",
                "last_result": run.last.status.value if run.last else "unknown",
                "detail": run.last.detail if run.last else "",
                "latency": run.last.latency if run.last else None,
                "plugin": run.plugin,
                "recovery_attempts": len(run.recovery_attempts),
                "in_startup_grace": run.in_grace,
            }
            for name, run in self.runs.items()
        }

    def history(self, name: str) -> list[dict[str, Any]]:
        run = self.runs[name]
        return [{"at": at, "status": r.status.value, "latency": r.latency, "detail": r.detail} for at, r in run.history]

    def liveness(self) -> dict[str, Any]:
        """Alive: the monitor runs and every check ran within three of its intervals."""
        now = self.clock()
        stale = [
            name for name, run in self.runs.items()
            if self._running and run.last_run_at is not None and now - run.last_run_at > 3 * (run.interval + run.timeout)
        ]
        return {"alive": self._running and not stale, "stale_checks": stale}

    def readiness(self) -> dict[str, Any]:
        """Ready: running, and no check is reported unhealthy."""
        unhealthy = sorted(name for name, run in self.runs.items() if run.status == HealthStatus.UNHEALTHY)
        return {"ready": self._running and not unhealthy, "status": self.overall().value, "unhealthy": unhealthy}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "health", "checks": sorted(self.runs)}


def _component_check(component: Any) -> tuple[str, Any] | None:
    """The health check (name, object) a data source or exchange component brings, if any.

    A data source's ``check()`` is its freshness: a feed that goes silent must raise the same
    health alert as any other check, not only when it is in a failover group. An exchange is
    checked through its own ``check()`` or, failing that, its adapter's circuit breaker (as
    ``exchange:<id>:breaker``, so the dashboard keeps showing the component's live breaker
    state rather than the check's last reported status)."""
    kind = getattr(component, "kind", "")
    obj = getattr(component, "obj", None)
    name = str(getattr(component, "name", ""))
    if kind not in ("datasource", "exchange") or obj is None:
        return None
    if callable(getattr(obj, "check", None)):
        return name, obj
    breaker = getattr(obj, "breaker", None)
    if kind == "exchange" and breaker is not None and hasattr(breaker, "state"):
        from hrkernel.ha.builtin_checks import ExchangeBreaker

        return f"{name}:breaker", ExchangeBreaker(breaker)
    return None


class OrdersHalt:
    """Health listener: while a check whose object says ``halts_orders = True`` (the DuckDB
    writable probe) is reported unhealthy, new orders are halted (signals wait, nothing is
    journaled half-way); once it is healthy or degraded again they resume."""

    def __init__(self, find: Callable[[str], Any], checks: set[str]) -> None:
        self.find = find
        self.checks = checks

    def __call__(self, change: HealthChange) -> None:
        if change.check not in self.checks:
            return
        pipeline = getattr(self.find("orders"), "pipeline", None)
        if pipeline is None:
            return
        key = f"health:{change.check}"
        if change.status == HealthStatus.UNHEALTHY:
            pipeline.halt(key, f"health check {change.check} is unhealthy: {change.detail}")
        else:
            pipeline.resume(key)
