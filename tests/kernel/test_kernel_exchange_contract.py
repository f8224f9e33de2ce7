"""The kernel's side of the exchange contract: ``hrkernel check`` (and start-up) refuse an
exchange plugin whose object does not have the contract's shape, naming the plugin; every
configured exchange is built behind the kernel's wrapper, tuned by ``[exchanges.<id>.resilience]``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hrkernel.config import load_config_text
from hrkernel.config.plugin_tables import validate_plugin_config
from hrkernel.errors import ConfigError
from hrkernel.exchange.guarded import GuardedExchange
from hrkernel.plugins import PluginHost

BROKEN = '''
"""An exchange plugin with the issue's faults: order_fills is not a method, balances is sync."""

from hrkernel import hookimpl


class Broken:
    name = "broken"
    order_fills = None

    def __init__(self, config, context):
        pass

    async def start(self): ...
    async def aclose(self): ...
    async def ping(self): return 0.0
    async def markets(self): return []
    async def market(self, symbol): ...
    async def place_order(self, request): ...
    async def cancel_order(self, *, exchange_id=None, client_order_id=None, fencing_token=None): ...
    async def get_order(self, *, exchange_id=None, client_order_id=None): ...
    async def find_order_by_client_id(self, client_order_id, *, symbol=None): ...
    async def list_open_orders(self, symbol=None): return []
    async def recent_fills(self, symbol=None): return []
    def balances(self): return []
    async def order_book(self, symbol): ...
    async def recent_trades(self, symbol): return []
    async def market_stats(self, symbol): ...


@hookimpl
def hr_register_exchanges(register):
    register("broken", Broken)
'''


@pytest.fixture
def broken_plugin(tmp_path: Path) -> Any:
    source = tmp_path / "src"
    (source / "hrkernel_broken").mkdir(parents=True)
    (source / "hrkernel_broken" / "__init__.py").write_text(BROKEN)
    (source / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "hrkernel-broken"
        version = "0.1.0"
        [project.entry-points.hrkernel]
        broken = "hrkernel_broken"
    '''))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, capture_output=True)
    return site


def test_check_refuses_an_exchange_plugin_of_the_wrong_shape(broken_plugin: Path, tmp_path: Path,
                                                             clean_env: dict[str, str]) -> None:
    config = tmp_path / "hr.toml"
    config.write_text(f'[kernel]\ndata_dir = "{tmp_path / "data"}"\n\n[exchanges.desk]\ntype = "broken"\n')
    run = subprocess.run([sys.executable, "-m", "hrkernel", "check", str(config)], capture_output=True, text=True,
                         env={**clean_env, "PYTHONPATH": str(broken_plugin)}, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "plugin 'broken'" in run.stderr and "[exchanges.desk] does not fit the exchange contract" in run.stderr
    assert "method order_fills() is missing" in run.stderr
    assert "balances() must be 'async def'" in run.stderr
    assert "place_order() lacks parameter 'fencing_token'" in run.stderr
    assert "Traceback" not in run.stderr


def test_check_accepts_the_embedded_simulator_exchange(tmp_path: Path, clean_env: dict[str, str]) -> None:
    config = tmp_path / "hr.toml"
    config.write_text(f'[kernel]\ndata_dir = "{tmp_path / "data"}"\n\n[exchanges.sim]\ntype = "sim"\n'
                      '[exchanges.sim.resilience]\ntrading = { timeout = "5s" }\n')
    run = subprocess.run([sys.executable, "-m", "hrkernel", "check", str(config)], capture_output=True, text=True,
                         env=clean_env, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "exchange:sim: kind=exchange, plugin=sim, type=GuardedExchange" in run.stdout


def host() -> PluginHost:
    h = PluginHost(strict=True)
    h.discover()
    h.collect()
    return h


def test_the_resilience_subtable_is_the_kernels_and_is_validated() -> None:
    text = '''
[exchanges.desk]
type = "nobitex"
token = "t"
[exchanges.desk.resilience]
mode = "kernel"
market_data = { timeout = "2s", failure_threshold = 3 }
'''
    [item] = validate_plugin_config(load_config_text(text, "hr.toml", environ={}), host()).exchanges
    assert item.resilience.mode == "kernel" and float(item.resilience.market_data.timeout) == 2.0
    assert item.resilience.market_data.failure_threshold == 3 and item.resilience.trading.retry_attempts == 3
    assert not hasattr(item.config, "resilience")  # the plugin never sees the kernel's key
    guarded = GuardedExchange(item.registration.factory(item.config, None), exchange_id="desk", plugin="nobitex",
                              config=item.resilience)
    assert guarded.guarded and guarded.breakers["market_data"].failure_threshold == 3

    bad = text.replace('mode = "kernel"', 'mode = "sometimes"\nretries = 2')
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config(load_config_text(bad, "hr.toml", environ={}), host())
    message = str(caught.value)
    assert "exchanges.desk.resilience.mode" in message and "exchanges.desk.resilience.retries" in message
