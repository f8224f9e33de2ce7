"""The documents' HealthChecker (exchange on the simulator, DuckDB, a real Redis) and
create_health_dashboard() with its defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb
import httpx
import pytest
import redis.asyncio as aioredis

import hrkernel.types
from hrkernel.compat import HealthChecker, HealthCheckResult, HealthStatus, create_health_dashboard

pytestmark = pytest.mark.anyio


def test_the_documents_health_status_is_the_result_type_in_compat_only() -> None:
    assert HealthStatus is HealthCheckResult
    assert hrkernel.types.HealthStatus.HEALTHY == "healthy"  # the kernel's enum is unchanged


async def test_all_three_healthy_then_each_failure_is_named(adapter: Any, sim: Any, redis_server: Any, tmp_path: Any) -> None:
    db = duckdb.connect(str(tmp_path / "h.duckdb"))
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=1, socket_connect_timeout=1)
    checker = HealthChecker(adapter, db, client, timeout=2, history_size=3)
    try:
        result = await checker.check_health()
        assert result.healthy and result.checks == {"exchange": True, "database": True, "redis": True}
        assert result.message == "all checks passed" and result.latency_ms > 0
        assert (datetime.now(UTC) - result.timestamp).total_seconds() < 5
        redis_server.stop()
        down = await checker.check_health()
        assert not down.healthy and down.checks == {"exchange": True, "database": True, "redis": False}
        assert down.message.startswith("redis: ")
        redis_server.start()
        await sim.stop()
        no_exchange = await checker.check_health()
        assert no_exchange.checks["exchange"] is False and no_exchange.checks["redis"] is True
        assert "exchange: " in no_exchange.message
        db.close()
        no_db = await checker.check_health()
        assert no_db.checks["database"] is False
        assert list(checker.health_history) == [down, no_exchange, no_db]  # bounded: the last 3
    finally:
        await client.aclose()


async def test_an_open_breaker_is_never_reported_healthy(adapter: Any) -> None:
    adapter.breaker.force_open()
    result = await HealthChecker(exchange=adapter).check_health()
    assert not result.healthy and result.message == "exchange: circuit breaker open"


async def test_create_health_dashboard_defaults_to_loopback_8080_and_serves() -> None:
    dashboard = create_health_dashboard()
    config = dashboard.component.config
    assert (config.host, config.port) == ("127.0.0.1", 8080)
    # Serving is shown on a free port: 8080 may be taken on a shared machine.
    served = create_health_dashboard(port=0)
    await served.initialize()
    await served.start()
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"{served.url}/livez")
        assert response.status_code == 200 and served.url.startswith("http://127.0.0.1:")
    finally:
        await served.stop()


async def test_halted_trading_or_a_firing_critical_alert_is_never_healthy(adapter: Any, tmp_path: Any) -> None:
    from hrkernel.compat import (
        AlertLevel,
        AlertSource,
        AlertSystem,
        TransactionVerificationPipeline,
    )

    pipeline = TransactionVerificationPipeline(exchange_adapter=adapter)
    alerts = AlertSystem({"channels": {"console": True}}, data_dir=tmp_path)
    checker = HealthChecker(adapter, pipeline=pipeline, alerts=alerts)
    assert (await checker.check_health()).checks == {"exchange": True, "trading": True, "alerts": True}
    pipeline.pipeline.halt("drift", "balance drift beyond tolerance")
    halted = await checker.check_health()
    assert not halted.healthy and halted.message == "trading: halted: balance drift beyond tolerance"
    pipeline.pipeline.resume("drift")
    await alerts.start()
    try:
        await alerts.send_alert(source=AlertSource.EXCHANGE, level=AlertLevel.CRITICAL, title="nobitex down")
        firing = await checker.check_health()
        assert not firing.healthy and firing.checks["alerts"] is False and "nobitex down" in firing.message
    finally:
        await alerts.stop()
