"""`hrkernel check` on broken configs: every error names a key path or a line, and no value that
came from the environment (nor a configured secret) is ever printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TOKEN = "tok-9f8e7d6c5b4a"


def check(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hrkernel", "check", str(path)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=path.parent)


def _env(clean_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**clean_env, "API_TOKEN": TOKEN}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        # A kernel key: the value is echoed by msgspec's own message.
        ('[kernel]\ninstance_id = 5\n[shutdown]\nstep_timeout = "${API_TOKEN}"\n', "shutdown.step_timeout"),
        # A plain key fed a secret by mistake: a whole value and one inside a longer string.
        ('[logging]\nlevel = "${API_TOKEN}"\n[ha]\nlease_ttl = "x-${API_TOKEN}"\n', "ha.lease_ttl"),
        # A plugin table validated after plugins load, and a channel's routing key.
        ('[alerts.channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:9/"\n'
         'max_per_minute = "${API_TOKEN}"\nsignature_header = 7\n', "alerts.channels.hook.max_per_minute"),
    ],
)
def test_check_never_prints_a_value_from_the_environment(
    body: str, where: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    config = tmp_path / "hr.toml"
    config.write_text(body)
    result = check(config, _env(clean_env, tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert where in result.stderr
    assert "${API_TOKEN}" in result.stderr  # the reference, so the user knows which value was wrong
    assert TOKEN not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_check_prints_no_secret_in_its_success_output(tmp_path: Path, clean_env: dict[str, str]) -> None:
    config = tmp_path / "hr.toml"
    config.write_text('[kernel]\ninstance_id = "hr-${API_TOKEN}"\n[dashboard]\ntoken = "${API_TOKEN}"\n')
    result = check(config, _env(clean_env, tmp_path))
    assert result.returncode == 0, result.stderr
    assert "instance: ***," in result.stdout  # rule 2: the whole value around a credential variable
    assert TOKEN not in result.stdout + result.stderr


def test_a_file_that_is_not_utf8_names_line_column_and_byte_offset(tmp_path: Path, clean_env: dict[str, str]) -> None:
    config = tmp_path / "hr.toml"
    config.write_bytes(b'[kernel]\ninstance_id = "hr-1"\ndata_dir = "caf\xe9"\n')
    result = check(config, clean_env)
    assert result.returncode == 2
    assert "line 3, column 16: not UTF-8 (byte e9 at offset 45)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_toml_error_at_the_end_of_the_file_names_the_last_line(tmp_path: Path, clean_env: dict[str, str]) -> None:
    config = tmp_path / "hr.toml"
    config.write_text('[kernel]\ninstance_id = "hr-1"\ndata_dir')
    result = check(config, clean_env)
    assert result.returncode == 2
    assert "line 3, column 9: invalid TOML at end of file" in result.stderr
    assert "end of document" not in result.stderr


def test_an_empty_table_name_is_named_and_other_errors_are_reported_too(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    config = tmp_path / "hr.toml"
    config.write_text('[""]\nx = 1\n[kernel]\ninstance_id = 5\n[logging]\n"" = 1\n')
    result = check(config, clean_env)
    assert result.returncode == 2
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("- ")]
    assert any(line.startswith('- "": unknown key') for line in lines), result.stderr
    assert any(line.startswith('- logging."": unknown key') for line in lines), result.stderr
    assert any(line.startswith("- kernel.instance_id: expected `str`") for line in lines), result.stderr
    assert "3 config errors" in result.stderr
    assert all(not line.startswith("- :") and not line.startswith("- unknown") for line in lines)


def test_only_the_rejected_value_is_replaced_by_its_reference() -> None:
    from hrkernel.config import load_config_text
    from hrkernel.errors import ConfigError

    text = '[ha]\nbackend = "${HA_BACKEND}"\n[bus]\nbackend = "${BUS_BACKEND}"\n[logging]\nlevel = "${HA_BACKEND}"\n'
    with pytest.raises(ConfigError) as info:
        load_config_text(text, environ={"HA_BACKEND": "redis", "BUS_BACKEND": "redus"})
    by_path = {i.path: i.message for i in info.value.issues}
    # The choices still read as themselves, though one of them came from the environment too.
    assert by_path["bus.backend"] == "expected one of 'memory', 'redis', 'rabbitmq', found '${BUS_BACKEND}'"
    assert by_path["logging.level"].endswith("found '${HA_BACKEND}'")
