"""The examples of docs/bus.md, docs/webhook.md and docs/datasources.md (market data, signals and
the message bus) load and work as written."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hrkernel.config import load_config_text
from hrkernel.config.plugin_tables import validate_plugin_config
from hrkernel.plugins import PluginHost
from hrkernel.signals.normalize import build_signal, flatten, secret_of

DOCS = Path(__file__).resolve().parents[2] / "docs"


def section() -> str:
    return "\n".join((DOCS / page).read_text() for page in ("bus.md", "webhook.md", "datasources.md"))


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section(), re.S)


def test_every_toml_example_loads_through_the_kernel_loader(tmp_path: Path) -> None:
    toml = blocks("toml")
    assert len(toml) == 3
    loaded = load_config_text("\n".join(toml), "docs", environ={"HR_WEBHOOK_SECRET": "from-env-123"})
    assert loaded.config.bus.backend == "redis"
    assert loaded.config.webhook.enabled and loaded.config.webhook.secret == "from-env-123"
    assert loaded.config.webhook.symbol_map == {"BTCUSDT": "BTCIRT"}
    host = PluginHost(strict=True)
    host.discover()
    host.collect()
    ids = [item.id for item in validate_plugin_config(loaded, host).datasources]
    assert ids == ["primary_feed", "rest_feed", "backup_feed", "feed"]


@pytest.mark.parametrize("index", [0, 1])
def test_the_alert_templates_normalise_once_tradingview_fills_them(index: int) -> None:
    template = blocks("json")[index]
    filled = (template.replace("{{exchange}}", "NOBITEX").replace("{{ticker}}", "BTCIRT")
              .replace("{{strategy.order.action}}", "buy").replace("{{strategy.order.contracts}}", "0.002")
              .replace("{{close}}", "6500000000").replace("{{strategy.order.id}}", "Long")
              .replace("{{timenow}}", "2026-03-01T12:00:00Z"))
    flat = flatten(json.loads(filled))
    assert secret_of(flat) == "PASTE-YOUR-WEBHOOK-SECRET"
    signal = build_signal(flat, exchange="nobitex", received_at=datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC),
                          symbol_map={}, markets=["BTCIRT"], dedupe_bucket=60.0)
    assert signal.symbol == "BTCIRT" and signal.action.value == "buy"
    assert (signal.amount is not None) or (signal.percent is not None)
