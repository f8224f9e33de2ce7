"""The seam between the kernel and its areas: areas never import the kernel, the composition root
hands every part its collaborators and fails the build naming a missing one, and one lifecycle
convention (``start(tg)`` / ``stop()``) replaces signature guessing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from hrkernel import hookimpl
from hrkernel.config import load_config_text
from hrkernel.errors import PluginError
from hrkernel.kernel import Kernel, assembly
from hrkernel.kernel.assembly import MissingPartError
from hrkernel.lifecycle import Component, Lifecycle, PluginComponent
from hrkernel.plugins import PluginHost
from hrkernel.types import ConfigStruct

CORE = Path(__file__).resolve().parents[2] / "core"
NOT_AREAS = {"kernel", "cli", "__pycache__"}
"""The composition root itself, and the command line that drives it."""
AREAS = sorted(p.name for p in CORE.iterdir() if p.is_dir() and (p / "__init__.py").exists() and p.name not in NOT_AREAS)


def test_the_area_list_is_not_empty() -> None:
    assert {"alerts", "bus", "ha", "orders", "resilience", "signals", "web"} <= set(AREAS)


@pytest.mark.parametrize("area", AREAS)
def test_importing_every_module_of_an_area_does_not_import_the_kernel(area: str) -> None:
    modules = sorted(f"hrkernel.{area}.{p.stem}" for p in (CORE / area).glob("*.py") if p.stem != "__init__")
    script = (
        "import importlib, sys\n"
        f"importlib.import_module('hrkernel.{area}')\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'hrkernel.kernel' or m.startswith('hrkernel.kernel.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"hrkernel.{area} pulls in the kernel: {out.stdout.strip()}"


def _build(tmp_path: Path, text: str = "", plugin: Any = None) -> Kernel:
    loaded = load_config_text(f'[kernel]\ndata_dir = "{tmp_path / "data"}"\n[dashboard]\nenabled = false\n' + text,
                              "test.toml")
    host = PluginHost(strict=True)
    host.discover()
    if plugin is not None:
        host.add(plugin, "seam_test_plugin")
    host.collect()
    return Kernel.build(loaded, host)


def test_a_missing_collaborator_fails_the_build_naming_it_and_who_needs_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(assembly, "BUILDERS", [b for b in assembly.BUILDERS if b is not assembly.build_bus])
    with pytest.raises(MissingPartError) as caught:
        _build(tmp_path)
    assert caught.value.name == "bus" and caught.value.needed_by == "ha"
    assert "ha needs the part 'bus' (hrkernel.bus.component.BusComponent), which this kernel did not build" in str(caught.value)


def test_a_collaborator_of_another_type_fails_the_build_naming_what_it_is(tmp_path: Path, monkeypatch) -> None:
    class Impostor(Component):
        name = "bus"

    def build_impostor(kernel: Kernel) -> None:
        kernel.add(Impostor())

    builders = [build_impostor if b is assembly.build_bus else b for b in assembly.BUILDERS]
    monkeypatch.setattr(assembly, "BUILDERS", builders)
    with pytest.raises(MissingPartError, match=r"the part of that name is a .*Impostor"):
        _build(tmp_path)


def test_hrkernel_check_reports_a_missing_collaborator_by_name(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from hrkernel.cli.main import cli

    config = tmp_path / "hr.toml"
    config.write_text(f'[kernel]\ndata_dir = "{tmp_path / "data"}"\n[dashboard]\nenabled = false\n')
    monkeypatch.setattr(assembly, "BUILDERS", [b for b in assembly.BUILDERS if b is not assembly.build_bus])
    result = CliRunner().invoke(cli, ["check", "--config", str(config)])
    assert result.exit_code != 0
    assert "needs the part 'bus'" in result.output


def test_the_built_parts_hold_typed_handles_not_components(tmp_path: Path) -> None:
    kernel = _build(tmp_path, '[exchanges.paper]\ntype = "sim"\n')
    bus = kernel.get("bus").bus
    assert kernel.get("ha")._bus is bus
    assert kernel.get("signals").intake.bus() is bus
    orders = kernel.get("orders")
    assert orders._exchanges == {"paper": kernel.get("exchange:paper").obj}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self, tg: Any) -> None:
        self.calls.append(f"start({'tg' if tg is not None else None})")

    async def stop(self) -> None:
        self.calls.append("stop")


@pytest.mark.anyio
async def test_a_plugin_component_runs_the_lifecycle_it_was_handed_and_holds_the_rest() -> None:
    recorder, held = Recorder(), Recorder()
    assert isinstance(recorder, Lifecycle)
    run = PluginComponent("datasource:a", "datasource", recorder, "p", lifecycle=recorder)
    only_held = PluginComponent("datasource:b", "datasource", held, "p")
    async with anyio.create_task_group() as tg:
        for component in (run, only_held):
            await component.start(tg)
            await component.stop()
    assert recorder.calls == ["start(tg)", "stop"]
    assert held.calls == []


class HalfConfig(ConfigStruct):
    pass


class HalfLifecycle:
    """Starts the old way (``start()``), closes with ``aclose()``: not the data-source contract."""

    async def start(self) -> None:
        raise AssertionError("never started")

    async def aclose(self) -> None:
        raise AssertionError("never stopped")


class HalfPlugin:
    @hookimpl
    def hr_register_datasources(self, register: Any) -> None:
        register("half", lambda config, context: HalfLifecycle(), config=HalfConfig)


def test_a_data_source_without_start_tg_and_stop_is_refused_at_build_naming_the_plugin(tmp_path: Path) -> None:
    with pytest.raises(PluginError) as caught:
        _build(tmp_path, '[datasources.feed]\ntype = "half"\n', HalfPlugin())
    assert caught.value.plugin == "seam_test_plugin"
    assert "[datasources.feed]" in str(caught.value) and "async start(tg)" in str(caught.value)
