"""Start-up cost: config load + plugin discovery, measured against a bare TOML parse baseline.

Run: ``python -m pytest bench/test_bench_kernel.py --benchmark-only``. The ratio printed at the
end says how much the kernel adds on top of reading the TOML file at all.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hrkernel.config import load_config
from hrkernel.plugins import PluginHost

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "hr.toml"

pytestmark = pytest.mark.benchmark(group="kernel-startup")


def test_baseline_bare_toml_parse(benchmark) -> None:
    result = benchmark(lambda: tomllib.loads(CONFIG.read_text()))
    assert "kernel" in result


def test_config_load_and_validate(benchmark) -> None:
    loaded = benchmark(lambda: load_config(CONFIG, environ={}))
    assert loaded.config.kernel.instance_id == "hr-1"


def test_plugin_discovery_and_registration(benchmark) -> None:
    def discover() -> PluginHost:
        host = PluginHost(strict=True)
        host.discover()
        host.collect()
        return host

    host = benchmark(discover)
    assert "event_loop_lag" in host.registrations("health_check")


def test_config_load_plus_discovery(benchmark) -> None:
    def start() -> PluginHost:
        load_config(CONFIG, environ={})
        host = PluginHost(strict=True)
        host.discover()
        host.collect()
        return host

    benchmark(start)
