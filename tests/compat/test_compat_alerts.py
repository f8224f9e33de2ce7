"""The documents' AlertSystem({"channels": ..., "level_thresholds": ...}) with start/stop and the
documents' sources and levels; the alert raised comes from a real fault of the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from hrkernel.compat import AlertLevel, AlertSource, AlertSystem
from hrkernel.errors import ConfigError
from hrkernel.exchange.errors import ExchangeError

pytestmark = pytest.mark.anyio


def test_the_documents_sources_and_levels_exist() -> None:
    for name in ("EXCHANGE", "EXECUTION", "SYSTEM", "RISK", "STRATEGY", "MARKET_DATA", "DATABASE", "NETWORK",
                 "SECURITY", "HA", "HEALTH"):
        assert getattr(AlertSource, name) == name.lower()
    assert [AlertLevel.INFO, AlertLevel.WARNING, AlertLevel.ERROR, AlertLevel.CRITICAL] == sorted(AlertLevel)


async def test_console_on_with_a_threshold_others_off(
    adapter: Any, sim_admin: httpx.AsyncClient, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    alerts = AlertSystem({"channels": {"console": True, "email": False, "telegram": False},
                          "level_thresholds": {"console": "warning"}}, data_dir=tmp_path)
    assert set(alerts.channels) == {"console"}
    assert alerts.channels["console"].routing.min_level is AlertLevel.WARNING
    await sim_admin.post("/_sim/faults/script", json={"endpoint": "orderbook", "kind": "error_503", "count": 10})
    await alerts.start()
    try:
        with pytest.raises(ExchangeError) as failure:
            await adapter.ping()
        await alerts.send_alert(source=AlertSource.EXCHANGE, level=AlertLevel.CRITICAL, title="nobitex unreachable",
                                message=str(failure.value), context={"exchange": "nobitex"})
        await alerts.send_alert(source=AlertSource.EXECUTION, level=AlertLevel.INFO, title="order filled",
                                message="0.001 BTCUSDT", context={"symbol": "BTCUSDT"})
    finally:
        await alerts.stop()  # flushes grouped notifications before closing
    printed = capsys.readouterr().err
    assert "nobitex unreachable" in printed and "503" in printed
    assert "order filled" not in printed  # below the console's threshold


def test_a_channel_switched_on_without_its_settings_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="alerts.channels.email"):
        AlertSystem({"channels": {"console": True, "email": True}}, data_dir=tmp_path)
    with pytest.raises(ValueError, match="level_thresholds.console must be one of"):
        AlertSystem({"channels": {"console": True}, "level_thresholds": {"console": "loud"}}, data_dir=tmp_path)
    with pytest.raises(ValueError, match="names channel\\(s\\) sms"):
        AlertSystem({"channels": {"console": True}, "level_thresholds": {"sms": "info"}}, data_dir=tmp_path)
