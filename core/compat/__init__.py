"""hrkernel.compat: the Python API of the system's design documents, on top of hrkernel.

Code written against the design documents' examples runs here with the names and arguments it
uses; underneath it is the kernel's own machinery (fenced lease, journaled pipeline, typed
config). Floats the documents write as amounts are converted once, exactly, at this edge
(:func:`hrkernel.compat.convert.exact_decimal`); nothing past it sees a float amount.
"Coming from the design's API" (docs/compat.md) maps every name to its hrkernel equivalent.

Names that the kernel already offers as the documents use them are re-exported here too, so a
port needs one import. ``EnhancedNobitexAdapter`` lives in the Nobitex plugin
(``hrkernel_nobitex.compat``) and is loaded from there on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hrkernel.alerts.types import AlertLevel, AlertSource
from hrkernel.compat.alerts import AlertSystem
from hrkernel.compat.convert import exact_decimal
from hrkernel.compat.failover import (
    FailoverEvent,
    FailoverManager,
    FailoverMode,
    FailoverMonitor,
    get_failover_manager,
)
from hrkernel.compat.health import (
    HealthChecker,
    HealthCheckResult,
    HealthStatus,
    create_health_dashboard,
)
from hrkernel.compat.leader import LeaderElection
from hrkernel.compat.orders import (
    ReconciliationReport,
    StateReconciliation,
    TransactionVerificationPipeline,
)
from hrkernel.compat.pool import ConnectionPool
from hrkernel.compat.shutdown import GracefulShutdown, ShutdownReport, TradingEngineSteps
from hrkernel.resilience import CircuitBreaker, circuit_breaker

if TYPE_CHECKING:
    from hrkernel_nobitex.compat import EnhancedNobitexAdapter

__all__ = [
    "AlertLevel",
    "AlertSource",
    "AlertSystem",
    "CircuitBreaker",
    "ConnectionPool",
    "EnhancedNobitexAdapter",
    "FailoverEvent",
    "FailoverManager",
    "FailoverMode",
    "FailoverMonitor",
    "GracefulShutdown",
    "HealthCheckResult",
    "HealthChecker",
    "HealthStatus",
    "LeaderElection",
    "ReconciliationReport",
    "ShutdownReport",
    "StateReconciliation",
    "TradingEngineSteps",
    "TransactionVerificationPipeline",
    "circuit_breaker",
    "create_health_dashboard",
    "exact_decimal",
    "get_failover_manager",
]


def __getattr__(name: str) -> Any:
    # The kernel never imports a plugin at import time; this one name is the Nobitex plugin's.
    if name == "EnhancedNobitexAdapter":
        try:
            from hrkernel_nobitex.compat import EnhancedNobitexAdapter
        except ImportError as exc:
            raise ImportError(f"EnhancedNobitexAdapter needs the Nobitex plugin (hrkernel_nobitex): {exc}") from exc
        return EnhancedNobitexAdapter
    raise AttributeError(f"module 'hrkernel.compat' has no attribute {name!r}")
