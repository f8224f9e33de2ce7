"""Chaos is a built-in plugin beside the kernel: the kernel never imports it, its command comes
through the CLI hook, loading it for ``hrkernel --help`` costs nothing, and what it recomputes
from the outside agrees with the kernel."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugins" / "chaos"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_kernel_sources_never_import_the_chaos_plugin() -> None:
    found = []
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "hrkernel_chaos"]
    assert found == []
    assert not (ROOT / "core" / "chaos").exists()


def test_building_the_cli_and_the_kernel_does_not_load_the_runner() -> None:
    loaded = _modules_after("import hrkernel.cli, hrkernel.kernel")
    assert not {m for m in loaded if m.startswith("hrkernel_chaos.") and m != "hrkernel_chaos.plugin"}


def test_the_registering_module_imports_nothing_heavy() -> None:
    """The plugin loader imports it on every CLI start (``hrkernel --help`` included)."""
    loaded = _modules_after("import hrkernel_chaos.plugin")
    assert {m for m in loaded if m.startswith("hrkernel_chaos")} == {"hrkernel_chaos", "hrkernel_chaos.plugin"}
    assert not loaded & {"httpx", "msgspec", "click", "hrkernel_chaos.runner", "subprocess", "threading"} - \
        _modules_after("pass")


def test_the_chaos_and_demo_commands_come_through_the_cli_hook() -> None:
    import click

    from hrkernel_chaos import plugin

    group = click.Group("hrkernel")
    plugin.hr_register_commands(cli=group)
    assert set(group.commands) == {"chaos", "demo"}
    result = CliRunner().invoke(group, ["chaos", "run", str(ROOT / "no-such.toml")])
    assert result.exit_code == 2 and "no such scenario file" in result.output


def test_the_chaos_plugin_is_an_installed_entry_point() -> None:
    from importlib.metadata import entry_points

    assert {e.value for e in entry_points(group="hrkernel") if e.name == "chaos"} == {"hrkernel_chaos.plugin"}


def test_the_client_order_id_it_expects_is_the_kernels() -> None:
    from hrkernel.orders.pipeline import client_order_id_for
    from hrkernel_chaos.settings import client_order_id

    for exchange, signal_id in (("sim", "chaos-7-1"), ("nobitex", "tv-Ω-42"), ("x", "")):
        assert client_order_id(exchange, signal_id) == client_order_id_for(exchange, signal_id)


def test_the_lease_it_assumes_is_the_one_it_configures() -> None:
    from hrkernel.config import load_config_text
    from hrkernel_chaos.settings import LEASE_TTL, kernel_config

    text = kernel_config("hr-a", Path("/tmp/x"), 1, 2, "redis://127.0.0.1:3/0", "p", "redis")
    env = {"HR_CHAOS_SECRET": "s", "HR_CHAOS_SIM_TOKEN": "t", "HR_CHAOS_FEED_TOKEN": "f"}
    loaded = load_config_text(text, "hr-a.toml", environ=env)
    assert float(loaded.config.ha.lease_ttl) == LEASE_TTL


def test_no_module_of_the_plugin_is_over_500_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in PLUGIN.glob("*.py")}
    assert max(sizes.values()) <= 500, sizes
