"""Lazy command loading: ``hrkernel --help`` names every command without importing their modules,
says of each what the command itself says, and keeps plugin commands cheap to list."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import hrkernel.cli
from hrkernel.cli.lazy import LazyCommand, LazyGroup
from hrkernel.cli.main import COMMANDS, _add_plugin_commands, cli

#: What ``hrkernel --help`` must not import: each is a large part of a start-up, and none is
#: needed to print a list of commands.
HEAVY = ("duckdb", "starlette", "uvicorn", "redis", "aio_pika", "httpx", "structlog")

PROBE = """
import json, sys
from hrkernel.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def run_probe(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[str, int, set[str]]:
    """``hrkernel ARGS`` in a fresh interpreter: its output, exit code and imported modules."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HRKERNEL_", "HR_"))}
    full.update(env or {})
    out = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=full, text=True,
                         capture_output=True, timeout=120)
    report = json.loads(out.stderr.strip().splitlines()[-1])
    return out.stdout, report["code"], set(report["modules"])


def fresh_group(load_plugins: Callable[[click.Group], None] | None = _add_plugin_commands,
                lazy: dict[str, LazyCommand] | None = None) -> LazyGroup:
    """A group like ``hrkernel``'s that has loaded nothing yet (``cli`` keeps what tests load)."""
    return LazyGroup("hrkernel", lazy=COMMANDS if lazy is None else lazy, load_plugins=load_plugins,
                     callback=cli.callback, params=cli.params, help=cli.help,
                     context_settings=cli.context_settings)


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


# -- the table and the commands agree ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_tables_help_is_the_commands_own_short_help(name: str) -> None:
    command = COMMANDS[name].load()
    assert COMMANDS[name].short_help == command.get_short_help_str(limit=10**6), (
        f"hrkernel.cli.main.COMMANDS[{name!r}] says something else than {COMMANDS[name].target}: "
        "copy the command's first sentence into the table")
    assert command.name == name


def test_every_top_level_command_in_the_cli_package_is_in_the_table() -> None:
    defined: dict[int, str] = {}
    children: set[int] = set()
    for info in pkgutil.iter_modules(hrkernel.cli.__path__, "hrkernel.cli."):
        module = importlib.import_module(info.name)
        for attribute, value in vars(module).items():
            if isinstance(value, click.Command) and value is not cli:
                defined[id(value)] = f"{info.name}:{attribute}"
                if isinstance(value, click.Group):
                    children.update(id(c) for c in value.commands.values())
    top_level = {target for key, target in defined.items() if key not in children}
    assert top_level == {entry.target for entry in COMMANDS.values()}


def test_help_from_the_table_reads_exactly_like_help_from_the_imported_commands() -> None:
    group = fresh_group(load_plugins=None)
    from_table = CliRunner().invoke(group, ["--help"], prog_name="hrkernel")
    assert group.commands == {}, "--help imported a command module"
    for name in COMMANDS:
        group.get_command(click.Context(group), name)
    from_commands = CliRunner().invoke(group, ["--help"], prog_name="hrkernel")
    assert from_table.exit_code == from_commands.exit_code == 0
    assert from_table.output == from_commands.output
    assert "orders     The order journal: list orders, show one with its full..." in from_table.output


# -- what gets imported, and when plugins are discovered ---------------------------------------


def test_hrkernel_help_imports_no_heavy_module_and_still_lists_plugin_commands(tmp_path: Path) -> None:
    output, code, modules = run_probe("--help", cwd=tmp_path)
    assert code == 0
    assert heavy_in(modules) == []
    assert not any(m.startswith("hrkernel.cli.") and m not in ("hrkernel.cli.main", "hrkernel.cli.lazy")
                   for m in modules), "a built-in command's module was imported for --help"
    assert "sim " in output, "the sim plugin's command is listed"
    for name in COMMANDS:
        assert f"\n  {name} " in output


def test_a_builtin_command_is_run_without_discovering_plugins(tmp_path: Path) -> None:
    output, code, modules = run_probe("orders", "--help", cwd=tmp_path)
    assert code == 0 and "Usage: hrkernel orders" in output
    assert "hrkernel.cli.orders" in modules
    assert not any(m.startswith(("hrkernel_sim", "hrkernel_alerts", "hrkernel_nobitex")) for m in modules)


def test_only_a_name_the_table_does_not_know_discovers_plugins() -> None:
    calls: list[str] = []

    def load(group: click.Group) -> None:
        calls.append("discovered")
        group.add_command(click.Command("extra", help="A plugin's command."))

    group = fresh_group(load_plugins=load)
    ctx = click.Context(group)
    assert group.get_command(ctx, "check") is not None
    assert calls == []
    assert group.get_command(ctx, "extra") is not None
    assert group.get_command(ctx, "nosuch") is None
    assert "extra" in group.list_commands(ctx)
    assert calls == ["discovered"]


def test_a_plugin_command_cannot_take_a_builtin_commands_name() -> None:
    impostor = click.Command("orders", help="Not the order journal.", callback=lambda: None)
    group = fresh_group(load_plugins=lambda g: g.add_command(impostor))
    result = CliRunner().invoke(group, ["--help"], prog_name="hrkernel")
    assert result.exit_code == 0
    assert "a plugin's command 'orders' is ignored" in result.stderr
    assert group.get_command(click.Context(group), "orders") is COMMANDS["orders"].load()


def test_a_failing_plugin_discovery_leaves_the_builtin_commands_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    from hrkernel.plugins import PluginHost

    def broken(self: PluginHost) -> None:
        raise OSError("site-packages unreadable")

    monkeypatch.setattr(PluginHost, "discover", broken)
    result = CliRunner().invoke(fresh_group(), ["--help"], prog_name="hrkernel")
    assert result.exit_code == 0
    assert "warning: plugin discovery failed: site-packages unreadable" in result.stderr
    assert "  orders " in result.output and "  sim " not in result.output


def test_a_third_party_plugins_command_is_listed_and_runs_and_a_raising_one_is_skipped(
    tmp_path: Path, plugin_package: Callable[..., Path]
) -> None:
    site = plugin_package(
        "hr-hello",
        {
            "hr_hello/__init__.py": "",
            "hr_hello/plugin.py": '''
                import click
                from hrkernel import hookimpl

                @click.command()
                def hello():
                    """Say hello from a plugin."""
                    click.echo("hello from a plugin")

                @hookimpl
                def hr_register_commands(cli):
                    cli.add_command(hello)
            ''',
            "hr_hello/broken.py": '''
                from hrkernel import hookimpl

                @hookimpl
                def hr_register_commands(cli):
                    raise RuntimeError("no commands today")
            ''',
        },
        {"hello": "hr_hello.plugin", "broken": "hr_hello.broken"},
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    outputs = {}
    for command in ("--help", "hello"):
        out = subprocess.run([sys.executable, "-m", "hrkernel", command], cwd=tmp_path, text=True,
                             capture_output=True, timeout=120, env=env)
        assert out.returncode == 0, out.stderr
        assert ("warning: plugin 'broken' added no commands: hr_register_commands raised "
                "RuntimeError: no commands today") in out.stderr, out.stdout[:2000]
        assert "Traceback" not in out.stderr
        outputs[command] = out.stdout
    assert "  hello      Say hello from a plugin." in outputs["--help"]
    assert outputs["hello"] == "hello from a plugin\n"
