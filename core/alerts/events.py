"""Kernel events that raise (and resolve) alerts on their own (internal).

- circuit breakers of :data:`hrkernel.resilience.registry`: opened → error alert, closed → resolved;
- health checks: a check turning degraded/unhealthy raises an alert, healthy again resolves it;
- lifecycle hooks: leadership lost (critical) / gained (resolves it), graceful shutdown (info).

Other areas raise their own through the alert system the composition root hands them (failover,
reconciliation discrepancies, order failures).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from hrkernel import hookimpl
from hrkernel.alerts.types import AlertLevel, AlertSource
from hrkernel.resilience import BreakerState, BreakerStateChanged

if TYPE_CHECKING:
    from hrkernel.alerts.manager import AlertSystem

BREAKER_OPEN = "circuit breaker open"
LEADERSHIP_LOST = "leadership lost"
HEALTH_TITLE = "health check failing"


class KernelAlerts:
    """Registered on the kernel's plugin manager as an internal plugin; also a breaker listener."""

    def __init__(self, system: AlertSystem, components: Callable[[], Any] | None = None) -> None:
        self.system = system
        self._components = components
        self._watched: set[int] = set()

    def _send(self, **kwargs: Any) -> None:
        if not self.system.running:
            return
        try:
            self.system.send_alert_nowait(**kwargs)
        except Exception as exc:  # raising an alert must never break the code that reported
            self.system.log.error("kernel_alert_failed", error=f"{type(exc).__name__}: {exc}")

    # -- breakers -------------------------------------------------------------------------------

    def on_breaker(self, event: BreakerStateChanged) -> None:
        if event.new == BreakerState.OPEN:
            self._send(source=AlertSource.RESILIENCE, level=AlertLevel.ERROR, title=BREAKER_OPEN,
                       message=f"breaker {event.name} opened: {event.reason}",
                       context={"breaker": event.name}, fingerprint_keys=["breaker"])
        elif event.new == BreakerState.CLOSED and self.system.running:
            self.system.resolve(source=AlertSource.RESILIENCE, title=BREAKER_OPEN,
                                context={"breaker": event.name}, fingerprint_keys=["breaker"])

    # -- health ---------------------------------------------------------------------------------

    def health_changed(self, check: str, status: str, detail: str) -> None:
        if status == "healthy":
            self.system.resolve(source=AlertSource.HEALTH, title=HEALTH_TITLE, context={"check": check},
                                fingerprint_keys=["check"])
            return
        level = AlertLevel.ERROR if status == "unhealthy" else AlertLevel.WARNING
        self._send(source=AlertSource.HEALTH, level=level, title=HEALTH_TITLE,
                   message=f"{check} is {status}: {detail}", context={"check": check, "status": status},
                   fingerprint_keys=["check"])

    async def watch_health(self, find: Any, interval: float) -> None:
        """Poll the health monitor's snapshot (it has no listener API) and alert on changes."""
        last: dict[str, str] = {}
        while self.system.running:
            monitor = find("health")
            snapshot = monitor.snapshot() if monitor is not None and hasattr(monitor, "snapshot") else {}
            for name, info in snapshot.items():
                status = info.get("status", "unknown")
                if status == "unknown" or last.get(name, "healthy") == status:
                    last[name] = status
                    continue
                last[name] = status
                self.health_changed(name, status, str(info.get("detail", "")))
            await anyio.sleep(interval)

    # -- lifecycle hooks ------------------------------------------------------------------------

    @hookimpl
    def hr_kernel_started(self, context: Any) -> None:
        """Breakers components hold outside the registry (an exchange adapter's own breaker)
        raise the same alert: an open exchange breaker stops trading and must be seen."""
        if self._components is None:
            return
        from hrkernel.lifecycle import PluginComponent
        from hrkernel.resilience.breaker import CircuitBreaker

        for component in self._components():
            obj = component.obj if isinstance(component, PluginComponent) else component
            inner = getattr(obj, "inner", None)  # the kernel's exchange guard wraps the adapter
            found: list[Any] = [*(getattr(obj, "breakers", None) or {}).values()]
            for holder in (obj, inner, getattr(inner, "exchange", None), getattr(obj, "exchange", None)):
                if holder is not None:
                    found.append(getattr(holder, "breaker", None))
                    found.append(getattr(getattr(holder, "transport", None), "breaker", None))
            for breaker in found:
                if isinstance(breaker, CircuitBreaker) and id(breaker) not in self._watched:
                    self._watched.add(id(breaker))
                    breaker.add_listener(self.on_breaker)

    @hookimpl
    def hr_leadership_lost(self, context: Any, reason: str) -> None:
        self._send(source=AlertSource.HA, level=AlertLevel.CRITICAL, title=LEADERSHIP_LOST,
                   message=f"this instance stopped being the leader: {reason}",
                   context={"instance": context.instance_id}, fingerprint_keys=["instance"])

    @hookimpl
    def hr_leadership_gained(self, context: Any, fencing_token: int) -> None:
        if self.system.running:
            self.system.resolve(source=AlertSource.HA, title=LEADERSHIP_LOST,
                                context={"instance": context.instance_id}, fingerprint_keys=["instance"])
        self._send(source=AlertSource.HA, level=AlertLevel.INFO, title="leadership gained",
                   message=f"this instance is the leader (fencing token {fencing_token})",
                   context={"instance": context.instance_id})

    @hookimpl
    def hr_shutting_down(self, context: Any) -> None:
        self._send(source=AlertSource.KERNEL, level=AlertLevel.INFO, title="kernel shutting down",
                   message=f"instance {context.instance_id} is shutting down gracefully",
                   context={"instance": context.instance_id})
