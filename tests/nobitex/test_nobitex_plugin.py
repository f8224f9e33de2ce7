"""The nobitex plugin as the kernel sees it: registration, its config table validated by the
kernel's loader (with ${VAR} secrets), the factory, and the public-API import boundary."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hrkernel.config import load_config_text
from hrkernel.config.plugin_tables import validate_plugin_config
from hrkernel.errors import ConfigError
from hrkernel.exchange import Exchange
from hrkernel.plugins import PluginHost

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "exchange_nobitex"
PUBLIC = {"hrkernel", "hrkernel.spec", "hrkernel.types", "hrkernel.errors", "hrkernel.exchange",
          "hrkernel.resilience"}

TABLE = """
[exchanges.nobitex]
type = "nobitex"
token = "${NOBITEX_TOKEN}"
base_url = "http://127.0.0.1:8765"
bot_name = "desk-1"
timeout = "3s"
rate_limits = { place = { requests = 100, per = "10m" } }
"""


def host() -> PluginHost:
    h = PluginHost(strict=True)
    h.discover()
    h.collect()
    return h


def test_the_plugin_registers_the_nobitex_exchange_type():
    from hrkernel_nobitex.config import NobitexConfig

    registration = host().registrations("exchange")["nobitex"]
    assert registration.config is NobitexConfig


def test_a_config_table_builds_an_unstarted_exchange_with_the_expanded_token():
    loaded = load_config_text(TABLE, "hr.toml", environ={"NOBITEX_TOKEN": "tok-from-env"})
    [item] = validate_plugin_config(loaded, host()).exchanges
    config = item.config
    assert config.token == "tok-from-env" and config.base_url == "http://127.0.0.1:8765"
    assert float(config.timeout) == 3.0 and config.rate_limits["place"].requests == 100

    class Context:
        instance_id = "hr-9"
        log = None

    exchange = item.registration.factory(config, Context())
    assert isinstance(exchange, Exchange)
    assert exchange.instance_id == "hr-9" and not exchange.started  # no I/O in the factory
    assert exchange.limits.limits["place"] == (100, 600.0)


def test_bad_keys_are_reported_with_their_path():
    text = TABLE.replace('timeout = "3s"', 'timout = "3s"\nmax_connections = "many"')
    loaded = load_config_text(text, "hr.toml", environ={"NOBITEX_TOKEN": "x"})
    with pytest.raises(ConfigError) as info:
        validate_plugin_config(loaded, host())
    message = str(info.value)
    assert "exchanges.nobitex" in message and "timout" in message


def test_the_plugin_imports_only_the_kernels_public_api():
    for path in sorted(PLUGIN_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] == "hrkernel":
                    assert name in PUBLIC, f"{path.name} imports {name}"
                assert name.split(".")[0] not in ("core", "plugins"), f"{path.name} imports {name}"


@pytest.mark.anyio
async def test_the_kernel_component_wrapper_starts_and_stops_the_exchange(scripted):
    import anyio

    from hrkernel.kernel.assembly import _ExchangeLifecycle
    from hrkernel.kernel.component import PluginComponent
    from hrkernel_nobitex.config import NobitexConfig
    from hrkernel_nobitex.plugin import build

    exchange = build(NobitexConfig(token="t", base_url=scripted.base_url), None)
    # As the kernel wraps an exchange: its lifecycle is the contract's start() ... aclose().
    component = PluginComponent("exchange:nobitex", "exchange", exchange, "nobitex",
                                lifecycle=_ExchangeLifecycle(exchange))  # type: ignore[arg-type]
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await component.start(tg)
            assert exchange.started and len(await exchange.markets()) == 3
            await component.stop()
    assert not exchange.started
    assert component.describe()["type"] == "NobitexExchange"
