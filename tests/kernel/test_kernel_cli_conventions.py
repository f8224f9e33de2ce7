"""One convention across commands: the config as an argument (or --config), read commands that
need only what they read, listener ports from the environment, numbers as people write them."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from hrkernel.cli.common import fmt_amount

ROOT = Path(__file__).resolve().parents[2]


def hr(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HRKERNEL_", "HR_"))}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "hrkernel", *args], cwd=cwd, env=full, text=True,
                          capture_output=True, timeout=60)


def test_check_names_where_the_dashboard_will_listen_and_takes_the_port_from_the_environment(tmp_path: Path) -> None:
    out = hr("check", str(ROOT / "hr.toml"), cwd=tmp_path, HRKERNEL_DASHBOARD_PORT="9123")
    assert out.returncode == 0, out.stderr
    assert "web: kind=web, listen=http://127.0.0.1:9123" in out.stdout
    assert "None" not in out.stdout
    assert "exchange:paper" in out.stdout


def test_a_port_that_is_not_a_number_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    out = hr("check", str(ROOT / "hr.toml"), cwd=tmp_path, HRKERNEL_DASHBOARD_PORT="eighty")
    assert out.returncode == 2
    assert "dashboard.port" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [["check", "CONFIG"], ["check", "--config", "CONFIG"], ["check"]])
def test_the_config_is_an_argument_or_config_option_or_hr_toml_here(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "hr.toml").write_text('[kernel]\ndata_dir = "d"\n')
    out = hr(*[str(tmp_path / "hr.toml") if a == "CONFIG" else a for a in args], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "hr.toml: ok" in out.stdout


def test_two_different_configs_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("")
    (tmp_path / "b.toml").write_text("")
    out = hr("check", "a.toml", "--config", "b.toml", cwd=tmp_path)
    assert out.returncode == 2 and "two config files" in out.stderr


def test_read_commands_are_not_blocked_by_an_unset_variable_they_do_not_read(tmp_path: Path) -> None:
    config = tmp_path / "hr.toml"
    config.write_text(f'[kernel]\ndata_dir = "{tmp_path / "d"}"\n'
                      '[webhook]\nenabled = true\nsecret = "${HR_UNSET_WEBHOOK_SECRET}"\n')
    assert hr("check", str(config), cwd=tmp_path).returncode == 2  # check reads everything
    out = hr("alerts", "list", "--config", str(config), cwd=tmp_path)
    assert "HR_UNSET_WEBHOOK_SECRET" not in out.stderr, out.stderr
    out = hr("plugins", str(config), cwd=tmp_path)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("value,shown", [
    (Decimal("0.010000000000000000"), "0.01"), (Decimal("0E-18"), "0"), (Decimal("115000000000"), "115000000000"),
    (Decimal("1E+3"), "1000"), (None, "-"), ("0.500", "0.5"),
])
def test_amounts_are_shown_as_written(value: object, shown: str) -> None:
    assert fmt_amount(value) == shown


def test_the_docs_command_table_lists_every_command() -> None:
    import click

    from hrkernel.cli.main import cli

    text = (ROOT / "docs" / "cli.md").read_text()
    table = text[text.index("| command | what it does |"):text.index("Read commands (`alerts`")]
    missing = [name for name in cli.list_commands(click.Context(cli)) if f"`hrkernel {name}" not in table]
    assert missing == [], f"commands missing from the table in docs/cli.md: {missing}"
