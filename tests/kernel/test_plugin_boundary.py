"""Built-in plugins import only the kernel's public API, exactly like third-party ones."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hrkernel import hookimpl
from hrkernel.types import ConfigStruct

ROOT = Path(__file__).resolve().parents[2]


def public_surface() -> tuple[set[str], set[str]]:
    """The modules and packages (public with their submodules) the ``hrkernel`` docstring lists:
    the one place the public surface is written down."""
    import hrkernel

    listed = (hrkernel.__doc__ or "").split("Everything else")[0]
    modules, packages = set(), set()
    for name, text in re.findall(r"^- ``(hrkernel[a-z_.]*)``:(.*?)(?=^- |^\s*$)", listed, re.M | re.S):
        (packages if "with its submodules" in " ".join(text.split()) else modules).add(name)
    return modules, packages


PUBLIC, _PACKAGES = public_surface()
PUBLIC_PACKAGES = tuple(sorted(_PACKAGES))
PUBLIC_FROM_ROOT = {"hookimpl", "__version__", "PROJECT_NAME"}


def test_the_public_surface_is_read_from_the_package_docstring() -> None:
    assert PUBLIC == {"hrkernel", "hrkernel.spec", "hrkernel.types", "hrkernel.errors", "hrkernel.alerts.types",
                      "hrkernel.bus.events"}
    assert set(PUBLIC_PACKAGES) == {"hrkernel.exchange", "hrkernel.resilience", "hrkernel.testing"}
    import importlib

    for name in PUBLIC | set(PUBLIC_PACKAGES):
        importlib.import_module(name)  # every listed module exists


def is_public(module: str) -> bool:
    return module in PUBLIC or any(module == p or module.startswith(p + ".") for p in PUBLIC_PACKAGES)


def violations(source: str, filename: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("hrkernel", "core", "plugins") and not is_public(alias.name):
                    found.append(f"{filename}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            if top in ("core", "plugins"):
                found.append(f"{filename}:{node.lineno}: from {node.module} import ...")
            elif top == "hrkernel":
                if node.module == "hrkernel":
                    bad = [a.name for a in node.names if a.name not in PUBLIC_FROM_ROOT and not is_public(f"hrkernel.{a.name}")]
                    found += [f"{filename}:{node.lineno}: from hrkernel import {b}" for b in bad]
                elif not is_public(node.module):
                    found.append(f"{filename}:{node.lineno}: from {node.module} import ...")
    return found


def test_checker_catches_internal_imports() -> None:
    bad = "from hrkernel.kernel import Kernel\nimport hrkernel.config\nfrom hrkernel import plugins\nimport core.types\n"
    assert len(violations(bad, "x.py")) == 4
    good = "from hrkernel import hookimpl\nfrom hrkernel.exchange.errors import ExchangeError\nimport hrkernel.types\n"
    assert violations(good, "y.py") == []


def test_builtin_plugins_import_only_the_public_api() -> None:
    files = sorted((ROOT / "plugins").rglob("*.py"))
    assert files, "no plugin sources found"
    found = [v for f in files for v in violations(f.read_text(), str(f.relative_to(ROOT)))]
    assert found == []


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    """A subpackage missing from [tool.setuptools] packages is silently left out of the wheel."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(project["packages"])
    on_disk: set[str] = set()
    for name, folder in project["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(base)
            on_disk.add(".".join([name, *rel.parts]))
    assert on_disk == listed


PLUGIN_PACKAGES = {"exchange_nobitex": "hrkernel_nobitex", "exchange_sim": "hrkernel_sim",
                   "alerts": "hrkernel_alerts", "datasources": "hrkernel_datasources", "chaos": "hrkernel_chaos"}


def plugin_imports(folder: Path) -> set[str]:
    """The other built-in plugin packages that the sources in ``folder`` import."""
    own = PLUGIN_PACKAGES[folder.name]
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            found |= {n.split(".")[0] for n in names if n.split(".")[0] in PLUGIN_PACKAGES.values()}
    return found - {own}


def test_a_plugin_imports_another_plugin_only_when_it_declares_it() -> None:
    from hrkernel_sim.plugin import REQUIRES

    assert plugin_imports(ROOT / "plugins" / "exchange_sim") == set(REQUIRES) == {"hrkernel_nobitex"}
    for folder in ("exchange_nobitex", "alerts", "datasources", "chaos"):
        assert plugin_imports(ROOT / "plugins" / folder) == set(), folder


def test_the_sim_exchange_type_names_its_missing_requirement(monkeypatch) -> None:
    import importlib.util

    from hrkernel_sim import plugin

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hrkernel_nobitex" else real(name, *a))
    try:
        plugin.hr_register_exchanges(register=lambda *a, **k: None)
    except RuntimeError as exc:
        assert "hrkernel_nobitex" in str(exc) and "'sim'" in str(exc)
    else:
        raise AssertionError("registration went ahead without the Nobitex adapter")


class _Feed:
    """A data source built by a test plugin (its own object is its public handle)."""

    async def start(self, tg: object) -> None: ...

    async def stop(self) -> None: ...


class _FeedConfig(ConfigStruct):
    pass


class _FeedPlugin:
    @hookimpl
    def hr_register_datasources(self, register: Any) -> None:
        register("boundary_feed", lambda config, context: _Feed(), config=_FeedConfig)


def test_the_kernel_hands_plugins_only_public_handles_at_run_time(tmp_path: Path) -> None:
    """What ``context.component`` returns is on the public surface: the bus as an EventBus
    (publish/subscribe, not the kernel's BusComponent or its backend), exchanges as Exchanges,
    a data source as the plugin's own object; the kernel's own parts are not handed out."""
    from hrkernel.config import load_config_text
    from hrkernel.exchange import Exchange
    from hrkernel.kernel import Kernel
    from hrkernel.lifecycle import Component
    from hrkernel.plugins import PluginHost
    from hrkernel.types import EventBus

    text = (f'[kernel]\ndata_dir = "{tmp_path / "data"}"\n[dashboard]\nenabled = false\n'
            '[exchanges.paper]\ntype = "sim"\n[datasources.feed]\ntype = "boundary_feed"\n')
    host = PluginHost(strict=True)
    host.discover()
    host.add(_FeedPlugin(), "boundary_feed_plugin")
    host.collect()
    kernel = Kernel.build(load_config_text(text, "test.toml"), host)
    context = kernel.context.for_component("feed")

    bus = context.component("bus")
    assert isinstance(bus, EventBus) and not isinstance(bus, Component)
    assert {n for n in dir(bus) if not n.startswith("_")} == {"publish", "subscribe"}
    exchange = context.component("exchange:paper")
    assert isinstance(exchange, Exchange) and not isinstance(exchange, Component)
    assert is_public(type(exchange).__module__)
    assert isinstance(context.component("datasource:feed"), _Feed)
    for internal in ("orders", "ha", "alerts", "resilience", "health", "signals", "event_feed"):
        if kernel.get(internal) is not None:
            with pytest.raises(KeyError, match="not handed to plugins"):
                context.component(internal)
    with pytest.raises(KeyError, match="no part named 'nothing'"):
        context.component("nothing")
