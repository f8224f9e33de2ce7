"""How reconciliation reaches the operator: critical alerts and the ``orders`` health check.

A reconciliation that cannot complete leaves the journal and ledger unchecked against the
exchange; a token the exchange refuses will not fix itself. Both must be seen at once, not only
in a log line: each is a critical alert (resolved when a later reconciliation of that exchange
completes) and makes the ``orders`` health check unhealthy, so ``/api/status`` and
``/api/components`` stop saying healthy.
"""

from __future__ import annotations

from typing import Any

from hrkernel.exchange.errors import AuthenticationError
from hrkernel.logging import get_logger
from hrkernel.orders.errors import ExchangeContractError
from hrkernel.types import HealthResult, HealthStatus

__all__ = ["AUTH_REFUSED", "CONTRACT_BROKEN", "RECONCILE_FAILED", "OrdersHealth", "ReconciliationAlerts"]

log = get_logger("hrkernel.orders")

AUTH_REFUSED = "exchange refused authentication"
CONTRACT_BROKEN = "exchange plugin returned wrong types"
RECONCILE_FAILED = "reconciliation failed"
_TITLES = {AUTH_REFUSED: "exchange", CONTRACT_BROKEN: "exchange", RECONCILE_FAILED: "reconciliation"}


def classify(error: Exception) -> str:
    """The alert title for a reconciliation that raised ``error``."""
    if isinstance(error, AuthenticationError):
        return AUTH_REFUSED
    if isinstance(error, ExchangeContractError):
        return CONTRACT_BROKEN
    return RECONCILE_FAILED


class ReconciliationAlerts:
    """``StateReconciliation.on_outcome``: a failure raises a critical alert for that exchange
    (deduplicated while it repeats); a completed reconciliation resolves the ones it had."""

    def __init__(self, alerts: Any) -> None:
        self.alerts = alerts

    def __call__(self, exchange: str, error: Exception | None) -> None:
        if self.alerts is None or not getattr(self.alerts, "running", True):
            return
        raised = classify(error) if error is not None else None
        for title, source in _TITLES.items():
            if title != raised:
                self.alerts.resolve(source=source, title=title, context={"exchange": exchange},
                                    fingerprint_keys=["exchange"])
        if error is None or raised is None:
            return
        hint = {AUTH_REFUSED: f"check the token in [exchanges.{exchange}]",
                CONTRACT_BROKEN: "a bug in the exchange plugin; reconciliation cannot trust its answers"}
        message = f"{exchange}: {type(error).__name__}: {error}"
        if raised in hint:
            message += f" ({hint[raised]})"
        self.alerts.send_alert_nowait(source=_TITLES[raised], level="critical", title=raised, message=message,
                                      context={"exchange": exchange}, fingerprint_keys=["exchange"])


class OrdersHealth:
    """The ``orders`` health check (the component's own name, so the dashboard shows it on the
    component): unhealthy while the last reconciliation of any exchange failed, degraded while
    the leader's new orders are halted for another reason (kill switch, drift, a failing probe)."""

    def __init__(self, component: Any) -> None:
        self.component = component

    async def check(self) -> HealthResult:
        recon = self.component.reconciliation
        pipeline = self.component.pipeline
        if recon is None or pipeline is None:
            return HealthResult(status=HealthStatus.HEALTHY, detail="not started")
        if recon.failed:
            detail = "; ".join(f"reconciliation of {name} failed ({classify(exc)}): {type(exc).__name__}: {exc}"
                               for name, exc in sorted(recon.failed.items()))
            return HealthResult(status=HealthStatus.UNHEALTHY, detail=detail)
        # A standby is halted by design, and the start-up halt lasts until the first
        # reconciliation (failures are reported above): neither is trouble.
        halts = {k: v for k, v in pipeline.halts.items() if k not in ("startup", "shutdown")}
        if halts and self.component.is_leader():
            return HealthResult(status=HealthStatus.DEGRADED, detail="new orders halted: " + "; ".join(halts.values()))
        return HealthResult(status=HealthStatus.HEALTHY, detail="reconciled" if recon.startup_done else "starting")
