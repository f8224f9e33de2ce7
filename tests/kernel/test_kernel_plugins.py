"""Plugins: the example package of docs/plugins.md, failing plugins in strict and lenient mode."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def hrkernel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hrkernel", *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def readme_plugin(tmp_path: Path, doc_files: Callable[[str], dict[str, str]]) -> Path:
    """The example plugin of docs/plugins.md, built from the page's own code and pip-installed."""
    files = doc_files("plugins.md")
    assert "pyproject.toml" in files and len(files) >= 2, files.keys()
    source = tmp_path / "hrkernel-disk"
    for name, text in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), str(source)],
        check=True, capture_output=True,
    )
    return site


def test_readme_example_plugin_is_discovered_and_its_check_runs_in_a_started_kernel(
    readme_plugin: Path, kernel_process: Callable[..., object], clean_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**clean_env, "PYTHONPATH": str(readme_plugin)}
    listed = {r["name"]: r for r in json.loads(hrkernel("plugins", "--json", env=env).stdout)}
    assert listed["disk"]["distribution"] == "hrkernel-disk"
    assert listed["disk"]["state"] == "loaded"
    assert listed["disk"]["provides"] == ["health_check disk_space"]

    config = tmp_path / "hr.toml"
    config.write_text('[health.checks.disk_space]\ninterval = "100ms"\nmin_free_mb = 1\n')
    kernel = kernel_process(config, env={"PYTHONPATH": str(readme_plugin)}, cwd=tmp_path)
    ready = kernel.wait_for("ready")
    [health] = [c for c in ready["components"] if c["name"] == "health"]
    assert "disk_space" in health["checks"]
    event = kernel.wait_for("health_status", check="disk_space")
    assert event["status"] == "healthy" and "MiB free" in event["detail"]
    kernel.signal(signal.SIGTERM)
    assert kernel.wait() == 0


def test_readme_example_check_reports_unhealthy_below_its_threshold(
    readme_plugin: Path, kernel_process: Callable[..., object], tmp_path: Path
) -> None:
    config = tmp_path / "hr.toml"
    config.write_text('[health.checks.disk_space]\nmin_free_mb = 999999999\n')
    kernel = kernel_process(config, env={"PYTHONPATH": str(readme_plugin)}, cwd=tmp_path)
    event = kernel.wait_for("health_status", check="disk_space")
    assert event["status"] == "unhealthy"
    kernel.signal(signal.SIGTERM)
    assert kernel.wait() == 0


def test_readme_example_plugin_config_errors_read_like_the_kernels(
    readme_plugin: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "hr.toml"
    config.write_text('[health.checks.disk_space]\nmin_free_mb = "lots"\n')
    result = hrkernel("check", str(config), env={**clean_env, "PYTHONPATH": str(readme_plugin)})
    assert result.returncode == 2
    assert "health.checks.disk_space.min_free_mb: expected `int`" in result.stderr


BROKEN = {
    "import": {"hr_broken/__init__.py": "raise RuntimeError('missing native library')\n"},
    "hook": {
        "hr_broken/__init__.py": (
            "from hrkernel import hookimpl\n\n"
            "@hookimpl\ndef hr_register_health_checks(register):\n    raise ValueError('bad registration')\n"
        )
    },
    "misspelled": {
        "hr_broken/__init__.py": (
            "from hrkernel import hookimpl\n\n"
            "@hookimpl\ndef hr_register_health_chekcs(register):\n    pass\n"
        )
    },
}
REASONS = {
    "import": "import failed: RuntimeError: missing native library",
    "hook": "hr_register_health_checks raised ValueError: bad registration",
    "misspelled": "hr_register_health_chekcs",
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_failing_plugin_in_strict_mode_stops_startup_with_exit_2_naming_it(
    kind: str, plugin_package: Callable[..., Path], kernel_process: Callable[..., object], tmp_path: Path
) -> None:
    site = plugin_package("hr-broken", BROKEN[kind], {"broken": "hr_broken"})
    config = tmp_path / "hr.toml"
    config.write_text("[plugins]\nstrict = true\n")
    kernel = kernel_process(config, env={"PYTHONPATH": str(site)}, cwd=tmp_path)
    assert kernel.wait(timeout=20) == 2
    output = kernel.output()
    assert "plugin 'broken' (distribution hr-broken) failed" in output
    assert REASONS[kind] in output
    assert "Traceback" not in output


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_failing_plugin_in_lenient_mode_is_skipped_and_listed_as_failed(
    kind: str, plugin_package: Callable[..., Path], kernel_process: Callable[..., object],
    clean_env: dict[str, str], tmp_path: Path,
) -> None:
    site = plugin_package("hr-broken", BROKEN[kind], {"broken": "hr_broken"})
    config = tmp_path / "hr.toml"
    config.write_text("[plugins]\nstrict = false\n")
    kernel = kernel_process(config, env={"PYTHONPATH": str(site)}, cwd=tmp_path)
    kernel.wait_for("ready")
    failure = kernel.wait_for("plugin_failed")
    assert failure["plugin"] == "broken" and REASONS[kind] in failure["reason"]
    kernel.signal(signal.SIGTERM)
    assert kernel.wait() == 0

    listed = {r["name"]: r for r in json.loads(hrkernel("plugins", "--json", env={**clean_env, "PYTHONPATH": str(site)}).stdout)}
    assert listed["broken"]["state"] == "failed"
    assert REASONS[kind] in listed["broken"]["reason"]
    assert listed["broken"]["provides"] == []
    assert listed["builtin_checks"]["state"] == "loaded"
    text = hrkernel("plugins", env={**clean_env, "PYTHONPATH": str(site)}).stdout
    assert "broken  [failed]" in text


def test_disabled_plugin_is_not_imported(
    plugin_package: Callable[..., Path], kernel_process: Callable[..., object], tmp_path: Path
) -> None:
    site = plugin_package("hr-broken", BROKEN["import"], {"broken": "hr_broken"})
    config = tmp_path / "hr.toml"
    config.write_text('[plugins]\nstrict = true\ndisable = ["broken"]\n')
    kernel = kernel_process(config, env={"PYTHONPATH": str(site)}, cwd=tmp_path)
    kernel.wait_for("ready")
    kernel.signal(signal.SIGTERM)
    assert kernel.wait() == 0
    assert "missing native library" not in kernel.output()
