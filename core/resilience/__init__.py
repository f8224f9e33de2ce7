"""hrkernel.resilience: circuit breakers, retry, rate limiters, bulkheads, caches, connection pools.

This is public API (built-in and third-party plugins may import it). Every primitive works alone,
as a decorator and as an async context manager; every one that measures or waits takes an
injectable ``clock`` (and ``sleep``) so tests never sleep. Errors are in
:mod:`hrkernel.resilience.errors`, typed events and metric snapshots in
:mod:`hrkernel.resilience.events`.
"""

from hrkernel.resilience.breaker import CircuitBreaker
from hrkernel.resilience.breaker_config import BreakerConfig
from hrkernel.resilience.breaker_redis import RedisBreakerSync
from hrkernel.resilience.breaker_registry import BreakerRegistry, circuit_breaker, registry
from hrkernel.resilience.bulkhead import Bulkhead, BulkheadMetrics
from hrkernel.resilience.cache import CacheMetrics, CacheResult, TTLCache
from hrkernel.resilience.clock import Clock, ManualClock, Sleep
from hrkernel.resilience.errors import (
    BulkheadFullError,
    CircuitOpenError,
    PoolClosedError,
    PoolError,
    PoolExhaustedError,
    PoolTimeoutError,
    RateLimitExceeded,
    ResilienceError,
)
from hrkernel.resilience.events import (
    BreakerMetrics,
    BreakerState,
    BreakerStateChanged,
    LatencyStats,
    StateListener,
)
from hrkernel.resilience.pool import (
    Connection,
    ConnectionMetrics,
    ConnectionPool,
    PoolConfig,
    PoolMetrics,
)
from hrkernel.resilience.ratelimit import Limit, LimiterMetrics, RateLimiter
from hrkernel.resilience.retry import RetryBudget, RetryPolicy, retry

__all__ = [
    "BreakerConfig",
    "BreakerMetrics",
    "BreakerRegistry",
    "BreakerState",
    "BreakerStateChanged",
    "Bulkhead",
    "BulkheadFullError",
    "BulkheadMetrics",
    "CacheMetrics",
    "CacheResult",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "Connection",
    "ConnectionMetrics",
    "ConnectionPool",
    "LatencyStats",
    "Limit",
    "LimiterMetrics",
    "ManualClock",
    "PoolClosedError",
    "PoolConfig",
    "PoolError",
    "PoolExhaustedError",
    "PoolMetrics",
    "PoolTimeoutError",
    "RateLimitExceeded",
    "RateLimiter",
    "RedisBreakerSync",
    "ResilienceError",
    "RetryBudget",
    "RetryPolicy",
    "Sleep",
    "StateListener",
    "TTLCache",
    "circuit_breaker",
    "registry",
    "retry",
]
