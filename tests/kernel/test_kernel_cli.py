"""The command line: help everywhere, `check` on good and broken configs, `plugins`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BAD_CONFIGS = sorted((ROOT / "tests" / "data" / "bad_configs").glob("*.toml"))


def hrkernel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hrkernel", *args], capture_output=True, text=True, timeout=60, env=env
    )


def expectations(path: Path) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith("# expect:")]


def test_there_are_at_least_fifteen_broken_configs() -> None:
    assert len(BAD_CONFIGS) >= 15
    assert all(expectations(p) for p in BAD_CONFIGS), "every bad config says what it expects"


@pytest.mark.parametrize("config", BAD_CONFIGS, ids=lambda p: p.stem)
def test_check_rejects_broken_config_naming_the_key(config: Path, clean_env: dict[str, str]) -> None:
    result = hrkernel("check", str(config), env=clean_env)
    assert result.returncode == 2, result.stdout + result.stderr
    for expected in expectations(config):
        assert expected in result.stderr, f"{expected!r} not in:\n{result.stderr}"
    assert str(config) in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_check_accepts_the_default_config_and_lists_components(clean_env: dict[str, str]) -> None:
    result = hrkernel("check", str(ROOT / "hr.toml"), env=clean_env)
    assert result.returncode == 0, result.stderr
    assert "hr.toml: ok" in result.stdout
    assert "components, in start order:" in result.stdout
    assert "health" in result.stdout


def test_check_warns_about_literal_secrets(tmp_path: Path, clean_env: dict[str, str]) -> None:
    config = tmp_path / "hr.toml"
    config.write_text('[health.checks.event_loop_lag]\nenabled = true\n[kernel]\ninstance_id = "a"\n')
    assert "warning" not in hrkernel("check", str(config), env=clean_env).stderr
    config.write_text(config.read_text() + '[exchanges.x]\ntype = "nope"\napi_key = "literal"\n')
    result = hrkernel("check", str(config), env=clean_env)
    assert result.returncode == 2  # unknown exchange type; the literal secret is not the error


def test_check_of_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = hrkernel("check", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "file not found" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [[], ["run"], ["check"], ["plugins"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = hrkernel(*command, "--help")
    assert result.returncode == 0
    assert "Usage:" in result.stdout


def test_bad_cli_argument_exits_2() -> None:
    result = hrkernel("plugins", "--no-such-flag")
    assert result.returncode == 2
    assert "no-such-flag" in result.stderr


def test_plugins_json_lists_builtins_with_what_they_provide() -> None:
    result = hrkernel("plugins", "--json")
    assert result.returncode == 0, result.stderr
    records = {r["name"]: r for r in json.loads(result.stdout)}
    builtin = records["builtin_checks"]
    assert builtin["state"] == "loaded"
    assert builtin["distribution"] == "hrkernel"
    assert "health_check event_loop_lag" in builtin["provides"]
    assert "hr_register_health_checks" in builtin["hooks"]
    assert {"nobitex", "sim", "alerts", "datasources"} <= set(records)
