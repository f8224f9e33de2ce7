"""The design's failover API: ``get_failover_manager()``, ``FailoverMode``, ``FailoverMonitor``.

hrkernel's :class:`hrkernel.ha.failover.FailoverManager` is started by the kernel inside its task
group (``start(tg)``). The documents call ``await manager.start()`` with no task group; the
manager here accepts both and, without one, runs its probe loops in a task group of its own,
closed by :meth:`FailoverManager.stop` (call it from the task that started it, or use
``async with``).
"""

from __future__ import annotations

import time
from collections import deque
from contextlib import AsyncExitStack
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskGroup

from hrkernel.ha.failover import FailoverManager as _KernelFailoverManager
from hrkernel.ha.failover import FailoverMode
from hrkernel.ha.failover_time import percentile
from hrkernel.logging import get_logger

__all__ = ["FailoverEvent", "FailoverManager", "FailoverMode", "FailoverMonitor", "get_failover_manager"]


class FailoverManager(_KernelFailoverManager):
    """The kernel's failover manager, startable without a caller-managed task group."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._stack: AsyncExitStack | None = None

    async def start(self, tg: TaskGroup | None = None) -> None:
        """Start probing every group (in ``tg``, or in a task group of the manager's own)."""
        if tg is None:
            if self._stack is not None:
                return
            self._stopping = anyio.Event()
            self._stack = AsyncExitStack()
            tg = await self._stack.enter_async_context(anyio.create_task_group())
        await super().start(tg)

    async def stop(self) -> None:
        await super().stop()
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def __aenter__(self) -> FailoverManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


_manager: FailoverManager | None = None


def get_failover_manager() -> FailoverManager:
    """The process's failover manager (created on first use; the same object afterwards)."""
    global _manager
    if _manager is None:
        _manager = FailoverManager()
    return _manager


class FailoverEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One leadership change as :meth:`FailoverMonitor.record_failover` recorded it."""

    old_leader: str | None
    new_leader: str
    failover_time_seconds: float
    at: float
    """Wall-clock time it was recorded (epoch seconds)."""
    within_target: bool


class FailoverMonitor:
    """Leadership changes and how long each took, against ``target_failover_seconds``.

    hrkernel records failovers itself (:class:`hrkernel.ha.failover_time.FailoverTimeMonitor`,
    fed by the lease); this is the documents' hand-fed form: the caller reports each change.
    ``history`` keeps the last ``history_size`` events.
    """

    def __init__(self, target_failover_seconds: float = 30, *, history_size: int = 1000) -> None:
        if isinstance(target_failover_seconds, bool) or not target_failover_seconds > 0:
            raise ValueError(f"target_failover_seconds must be > 0, found {target_failover_seconds!r}")
        self.target_failover_seconds = float(target_failover_seconds)
        self.history: deque[FailoverEvent] = deque(maxlen=history_size)
        self.log = get_logger("hrkernel.compat.failover")

    def record_failover(self, old_leader: str | None, new_leader: str, failover_time_seconds: float) -> FailoverEvent:
        """Record one change of leader; a change slower than the target is logged as a warning."""
        if isinstance(failover_time_seconds, bool) or not isinstance(failover_time_seconds, int | float) \
                or not failover_time_seconds >= 0:
            raise ValueError(f"failover_time_seconds must be a number >= 0, found {failover_time_seconds!r}")
        event = FailoverEvent(
            old_leader=old_leader, new_leader=new_leader, failover_time_seconds=float(failover_time_seconds),
            at=time.time(), within_target=failover_time_seconds <= self.target_failover_seconds,
        )
        self.history.append(event)
        if event.within_target:
            self.log.info("failover_recorded", old_leader=old_leader, new_leader=new_leader,
                          duration_s=event.failover_time_seconds)
        else:
            self.log.warning("failover_slow", old_leader=old_leader, new_leader=new_leader,
                             duration_s=event.failover_time_seconds, target_s=self.target_failover_seconds)
        return event

    def statistics(self) -> dict[str, Any]:
        """Count, last, mean, p95, max of the recorded durations, and how many missed the target."""
        values = [e.failover_time_seconds for e in self.history]
        if not values:
            return {"count": 0, "last": None, "mean": None, "p95": None, "max": None, "over_target": 0,
                    "target": self.target_failover_seconds}
        return {
            "count": len(values), "last": values[-1], "mean": sum(values) / len(values),
            "p95": percentile(values, 95), "max": max(values),
            "over_target": sum(1 for e in self.history if not e.within_target),
            "target": self.target_failover_seconds,
        }
