"""The plugin's tables through the kernel's loader, as hr.toml would give them."""

from __future__ import annotations

import pytest

from hrkernel.config import load_config_text
from hrkernel.config.plugin_tables import validate_plugin_config
from hrkernel.errors import ConfigError
from hrkernel.plugins import PluginHost

TABLES = """
[bus]
backend = "redis"
[bus.redis]
url = "redis://127.0.0.1:6379/0"
claim_idle = "10s"
[bus.topics.marketdata]
on_unavailable = "buffer"

[datasources.rec]
type = "replay"
path = "feed.jsonl"
max_age = "2s"

[datasources.poll]
type = "nobitex"
symbols = ["BTCIRT", "USDTIRT"]
interval = "2s"

[datasources.feed]
type = "failover"
members = ["poll", "rec"]
max_age = "5s"
check_interval = "1s"
"""


def host() -> PluginHost:
    h = PluginHost(strict=True)
    h.discover()
    h.collect()
    return h


def test_datasource_tables_validate_and_build_without_io() -> None:
    loaded = load_config_text(TABLES, "hr.toml", environ={})
    assert loaded.config.bus.backend == "redis" and float(loaded.config.bus.redis.claim_idle) == 10.0
    assert loaded.config.bus.policy("signals").on_unavailable == "fail"
    plugin_config = validate_plugin_config(loaded, host())
    built = {item.id: item.registration.factory(item.config, None) for item in plugin_config.datasources}
    assert {k: type(v).__name__ for k, v in built.items()} == {
        "rec": "ReplaySource", "poll": "ExchangePollSource", "feed": "FailoverSource"}


def test_bad_datasource_keys_are_reported_with_their_path() -> None:
    text = TABLES.replace('members = ["poll", "rec"]', 'members = ["poll"]').replace('interval = "2s"', 'intervall = "2s"')
    loaded = load_config_text(text, "hr.toml", environ={})
    with pytest.raises(ConfigError) as info:
        validate_plugin_config(loaded, host())
    message = str(info.value)
    assert "datasources.poll" in message and "intervall" in message
    assert "datasources.feed" in message and "at least two" in message
