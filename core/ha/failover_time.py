"""How long failovers take: every leadership change and group switch, with statistics and alerts."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from hrkernel.logging import get_logger

if TYPE_CHECKING:
    from hrkernel.ha.store import HAStore


class FailoverRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One failover: a leadership change (``kind="leadership"``) or a group switch (``"group"``)."""

    kind: str
    cause: str
    at: float
    """Wall-clock time the new owner took over (epoch seconds)."""
    duration: float | None
    """Seconds without a working owner: for leadership, from the old leader's last renewal to the
    new leader trading; for a group, from the first failed probe to the switch."""
    group: str | None = None
    from_member: str | None = None
    to_member: str | None = None
    change: str | None = None
    """For a group: ``switch``, ``activate``, ``deactivate``, ``join`` or ``leave``
    (:class:`hrkernel.ha.groups.Change`); None for leadership."""


SlowListener = Callable[[FailoverRecord, float], Awaitable[None] | None]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class FailoverTimeMonitor:
    """Keeps the last ``window`` durations per kind and calls listeners when one exceeds the target."""

    def __init__(self, target: float = 5.0, window: int = 50, store: HAStore | None = None) -> None:
        self.target = target
        self.window = window
        self.store = store
        self.records: deque[FailoverRecord] = deque(maxlen=max(window * 4, 100))
        self._durations: dict[str, deque[float]] = {}
        self._slow_listeners: list[SlowListener] = []
        self.log = get_logger("hrkernel.ha.failover_time")

    def add_slow_listener(self, listener: SlowListener) -> None:
        """``listener(record, target)`` runs for each failover slower than the target (alerting)."""
        self._slow_listeners.append(listener)

    async def record(self, record: FailoverRecord) -> None:
        self.records.append(record)
        if record.duration is not None:
            self._durations.setdefault(record.kind, deque(maxlen=self.window)).append(record.duration)
        self.log.info(
            "failover_recorded", kind=record.kind, group=record.group, from_member=record.from_member,
            to_member=record.to_member, cause=record.cause, change=record.change,
            duration_s=None if record.duration is None else round(record.duration, 4),
        )
        if self.store is not None:
            try:
                await anyio.to_thread.run_sync(
                    self.store.record_failover, record.at, record.kind, record.group, record.from_member,
                    record.to_member, record.cause, record.duration, record.change,
                )
            except Exception as exc:
                self.log.error("failover_history_write_failed", error=f"{type(exc).__name__}: {exc}")
        if record.duration is not None and record.duration > self.target:
            self.log.warning("failover_slow", kind=record.kind, group=record.group, duration_s=round(record.duration, 3), target_s=self.target)
            for listener in list(self._slow_listeners):
                try:
                    outcome = listener(record, self.target)
                    if outcome is not None:
                        await outcome
                except Exception as exc:
                    self.log.error("failover_alert_failed", error=f"{type(exc).__name__}: {exc}")

    def stats(self, kind: str = "leadership") -> dict[str, Any]:
        values = list(self._durations.get(kind, ()))
        if not values:
            return {"kind": kind, "count": 0, "last": None, "mean": None, "p95": None, "max": None, "target": self.target}
        return {
            "kind": kind,
            "count": len(values),
            "last": values[-1],
            "mean": sum(values) / len(values),
            "p95": percentile(values, 95),
            "max": max(values),
            "target": self.target,
        }


