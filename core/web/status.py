"""The one overall state of a kernel, computed once and shown everywhere.

``hrkernel status``, the dashboard header and banner, ``/api/status`` and ``/readyz`` all show
what :func:`overall_state` returns, so they cannot disagree. The states, worst first:

- ``down``: the kernel is shutting down (or, seen from the CLI, does not answer);
- ``halted``: new orders are refused (kill switch, drift, start-up reconciliation, shutdown...);
  ``why`` names each halt and its reason;
- ``degraded``: trading, but something is wrong: an exchange breaker is open or half-open, the
  last reconciliation of an exchange failed or found discrepancies, a critical alert fires, a
  health check is unhealthy; ``why`` says which;
- ``standby``: healthy, but another instance leads (this one does not trade);
- ``trading``: the leader, nothing halted, nothing wrong;
- ``running``: nothing wrong, and no order pipeline is configured (nothing to trade).

"healthy" is never a state: a kernel that may not trade, or trades with a breaker open or a
critical alert firing, is never shown in green.
"""

from __future__ import annotations

from typing import Any

from hrkernel.web.adapters import Host, find, jsonable, method_of
from hrkernel.web.resilience_view import read_breakers

BAD_STATES = ("down", "halted", "degraded")
STATES = ("trading", "halted", "degraded", "standby", "running", "down")


def _halts(orders: Any) -> dict[str, str]:
    pipeline = getattr(orders, "pipeline", None) if orders is not None else None
    return dict(getattr(pipeline, "halts", {}) or {}) if pipeline is not None else {}


def _reconciliation_trouble(orders: Any) -> list[str]:
    recon = getattr(orders, "reconciliation", None) if orders is not None else None
    out = []
    for name, report in sorted((getattr(recon, "last", None) or {}).items()):
        for text in getattr(report, "discrepancies", []):
            out.append(f"reconciliation of {name}: {text}")
    return out


def _critical_alerts(host: Host) -> list[str]:
    system = find(host, "alerts")
    out = []
    for alert in (getattr(system, "open", None) or {}).values():
        view = jsonable(alert.snapshot() if hasattr(alert, "snapshot") else alert)
        if isinstance(view, dict) and view.get("status") == "firing" and view.get("level") == "critical":
            out.append(f"critical alert: {view.get('title', '?')}")
    return out


def _unhealthy_checks(host: Host) -> list[str]:
    monitor = find(host, "health")
    if monitor is None or method_of(monitor, "readiness") is None:
        return []
    return [f"health check {name} unhealthy" for name in monitor.readiness().get("unhealthy", [])]


def _role(host: Host) -> str | None:
    ha = find(host, "ha")
    status = method_of(ha, "status") if ha is not None else None
    if status is None:
        return None
    try:
        return str(jsonable(status()).get("role"))
    except Exception:  # a lease that cannot say is not a leader we can vouch for
        return "unknown"


def overall_state(host: Host, *, closing: bool = False) -> dict[str, Any]:
    """``{"state", "why", "halts", "problems", "role"}``: see the module docstring."""
    orders = find(host, "orders")
    halts = _halts(orders)
    problems: list[str] = []
    for b in read_breakers(host):
        if b.get("state") not in ("closed", None):
            problems.append(f"breaker {b['name']} {str(b['state']).replace('_', '-')}")
    problems += _reconciliation_trouble(orders)
    problems += _critical_alerts(host)
    problems += _unhealthy_checks(host)
    role = _role(host)
    if closing:
        state, why = "down", ["shutting down"]
    elif halts:
        state, why = "halted", [f"{key}: {reason}" for key, reason in sorted(halts.items())] + problems
    elif problems:
        state, why = "degraded", problems
    elif role not in (None, "leader") and orders is not None:
        state, why = "standby", [f"another instance leads (this one is {role})"]
    elif orders is None:
        state, why = "running", ["no order pipeline configured"]
    else:
        state, why = "trading", []
    return {"state": state, "why": why, "halts": halts, "problems": problems, "role": role}
