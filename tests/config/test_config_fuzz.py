"""A seeded, bounded fuzz of the config loader.

Mutants of the shipped hr.toml (and of a config with plugin tables) are fed to the same steps
``hrkernel check`` runs: read the file, expand ``${VAR}``, validate the kernel's sections, the
plugin tables and the alert channels. Every result must be a loaded config or a ConfigError whose
every issue names a key path or a line, and no message may carry a value from the environment.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hrkernel.alerts.build import channels_from_config
from hrkernel.config import load_config
from hrkernel.config.plugin_tables import validate_plugin_config
from hrkernel.errors import ConfigError
from hrkernel.plugins import PluginHost

ROOT = Path(__file__).resolve().parents[2]
SEED = 1316
MUTANTS = 400
TOKEN = "tok-9f8e7d6c5b4a"
ENV = {"API_TOKEN": TOKEN, "HRKERNEL_INSTANCE": "hr-fuzz"}
EXTRA = """
[exchanges.main]
type = "nobitex"
token = "${API_TOKEN}"

[alerts.channels.hook]
type = "webhook"
url = "http://127.0.0.1:9/hook"
headers = { Authorization = "Bearer ${API_TOKEN}" }
timeout = "2s"

[datasources.feed]
type = "nobitex"
"""
VALUES = ['"${API_TOKEN}"', '"x-${API_TOKEN}-y"', "5", "-1", "1.5", "true", '""', "[]", "{}", '"5s"', '"0.001"',
          '"${MISSING_VAR}"', '"${API_TOKEN:-d}"', "[1, \"a\"]", '{ a = "${API_TOKEN}" }', '"\\u0000"', "inf", "1e400"]
JUNK = ["=", "[", "]", "\"", "'", "{", "}", "[[x]]", '[""]', "\\", "\n", "#", "$", "${", "\x00", "\t", "é"]
KEYS = ["unknown_key", "timeout", "type", "enabled", '""', "token", "url"]
_VALUE_LINE = re.compile(r"^(\s*#?\s*[A-Za-z0-9_\"]+\s*=\s*)(.*)$")
_POSITION = re.compile(r"^line \d+, column \d+$")


def _mutate(text: str, rng: random.Random) -> bytes:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(lines))
        op = rng.choice([0, 0, 0, 0, 1, 2, 3, 4, 5, 5, 6])  # mostly values: syntax errors stop early
        match = _VALUE_LINE.match(lines[i])
        if op == 0 and match:
            lines[i] = match.group(1).lstrip("# ") + rng.choice(VALUES)  # also un-comments examples
        elif op == 1:
            lines.insert(i, lines[rng.randrange(len(lines))])  # duplicate key or table
        elif op == 2:
            del lines[i]
        elif op == 3:
            pos = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:pos] + rng.choice(JUNK) + lines[i][pos:]
        elif op == 4 and match:
            lines[i] = f"{rng.choice(KEYS)} = {rng.choice(VALUES)}"
        elif op == 5:
            lines[i] = lines[i].lstrip("# ")
        else:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
    data = "\n".join(lines).encode()
    if rng.random() < 0.05:
        cut = rng.randrange(len(data))
        data = data[:cut] + bytes([rng.choice([0xFF, 0xC3, 0x80, 0xE9])]) + data[cut:]
    if rng.random() < 0.05:
        data = data[: rng.randrange(len(data))]
    return data


def _check_in_process(path: Path, host: PluginHost) -> str:
    """What ``hrkernel check`` does before building components; returns "ok" or the error text."""
    try:
        loaded = load_config(path, environ=ENV)
    except ConfigError as exc:
        return _clean(exc)
    try:
        validate_plugin_config(loaded, host)
        try:
            channels_from_config(loaded.config.alerts, host)
        except ConfigError as exc:
            raise loaded.error(exc.issues) from None
    except ConfigError as exc:
        return _clean(exc)
    return "ok"


def _clean(exc: ConfigError) -> str:
    text = str(exc)
    assert exc.issues, text
    for issue in exc.issues:
        assert issue.path, f"an issue without a key path or line: {issue.message!r}\n{text}"
        assert issue.message, text
    assert TOKEN not in text, text
    return text


@pytest.fixture(scope="module")
def host() -> PluginHost:
    host = PluginHost(strict=True, quiet=True)
    host.discover()
    host.collect()
    return host


def test_mutated_configs_load_or_fail_cleanly_naming_a_key_or_line(tmp_path: Path, host: PluginHost) -> None:
    rng = random.Random(SEED)
    bases = [(ROOT / "hr.toml").read_text(), (ROOT / "hr.toml").read_text() + EXTRA]
    outcomes = {"ok": 0, "error": 0}
    for n in range(MUTANTS):
        data = _mutate(bases[n % 2], rng)
        path = tmp_path / f"m{n}.toml"
        path.write_bytes(data)
        try:
            result = _check_in_process(path, host)
        except Exception as exc:  # anything but ConfigError is a bug: show the mutant
            raise AssertionError(f"mutant {n} raised {type(exc).__name__}: {exc}\n---\n{data.decode(errors='replace')}") from exc
        outcomes["ok" if result == "ok" else "error"] += 1
    # The fuzz must exercise both paths, or it tests nothing.
    assert outcomes["ok"] >= 20 and outcomes["error"] >= 200, outcomes


def test_a_sample_of_mutants_through_the_real_cli_never_shows_a_traceback(tmp_path: Path, clean_env: dict[str, str]) -> None:
    rng = random.Random(SEED + 1)
    base = (ROOT / "hr.toml").read_text() + EXTRA
    env = {**clean_env, **ENV}
    for n in range(8):
        path = tmp_path / f"cli{n}.toml"
        path.write_bytes(_mutate(base, rng))
        result = subprocess.run([sys.executable, "-m", "hrkernel", "check", str(path)], capture_output=True,
                                text=True, timeout=60, env=env, cwd=tmp_path)
        output = result.stdout + result.stderr
        assert result.returncode in (0, 2), output
        assert "Traceback" not in output and TOKEN not in output, output
        if result.returncode == 2:
            assert "config error" in result.stderr or "error:" in result.stderr, output
