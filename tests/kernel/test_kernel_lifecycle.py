"""`hrkernel run` as a real subprocess: ready, graceful shutdown, forced exit, failed start-up."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FLAKY_EXCHANGE = {
    "hr_flaky/__init__.py": "",
    "hr_flaky/plugin.py": '''
        import anyio
        from hrkernel import hookimpl
        from hrkernel.exchange.errors import ExchangeUnavailableError
        from hrkernel.types import ConfigStruct, Duration


        class FlakyConfig(ConfigStruct, kw_only=True):
            fail_start: bool = False
            stop_takes: Duration = Duration(0.0)


        class Flaky:
            def __init__(self, config, context):
                self.config = config
                self.log = context.log.bind(component="flaky")

            async def start(self):
                if self.config.fail_start:
                    raise ConnectionError("cannot reach the venue")

            async def aclose(self):
                await anyio.sleep(float(self.config.stop_takes))

            # The rest of the exchange contract (the kernel refuses an exchange without it):
            # a venue that is never reachable.
            async def _down(self, *args, **kwargs):
                raise ExchangeUnavailableError("flaky venue is down", exchange="flaky")

            name = "flaky"
            ping = markets = market = order_book = recent_trades = market_stats = _down
            get_order = find_order_by_client_id = list_open_orders = order_fills = _down
            recent_fills = balances = place_order = cancel_order = _down


        @hookimpl
        def hr_register_exchanges(register):
            register("flaky", Flaky, config=FlakyConfig)
    ''',
}


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment into which hrkernel is `pip install`ed (not editable).

    Its dependencies come from the test environment through a path entry, so the test does not
    download anything; hrkernel itself is built from the working tree and installed as a wheel.
    """
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    Path(site, "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # Build from a copy so the build leaves nothing in the working tree.
    source = venv.parent / "source"
    for name in ("core", "plugins"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-build-isolation", "--ignore-installed", str(source)],
        check=True, capture_output=True, text=True,
    )
    installed = subprocess.run(
        [str(python), "-c", "import hrkernel, sys; print(hrkernel.__file__)"],
        check=True, capture_output=True, text=True, cwd=str(venv),
    ).stdout.strip()
    assert installed.startswith(site), f"hrkernel imported from {installed}, not the fresh venv"
    return python


def test_fresh_install_runs_default_config_and_stops_on_sigterm(
    fresh_venv: Path, kernel_process: Callable[..., object], tmp_path: Path
) -> None:
    config = tmp_path / "hr.toml"
    config.write_text((ROOT / "hr.toml").read_text())
    kernel = kernel_process(config, python=str(fresh_venv), cwd=tmp_path)
    # How fast it gets ready is a figure of bench/test_bench_kernel.py, not an assertion here.
    ready = kernel.wait_for("ready", timeout=30)
    started = [c["name"] for c in ready["components"]]
    assert "health" in started
    kernel.wait_for("health_status", check="event_loop_lag", status="healthy")

    kernel.signal(signal.SIGTERM)
    code = kernel.wait(timeout=30)
    assert code == 0, kernel.output()
    steps = [e for e in kernel.events if e.get("event") == "shutdown_step"]
    # every component stopped, in reverse start order, each with its outcome
    assert [(s["component"], s["outcome"]) for s in steps] == [(name, "ok") for name in reversed(started)]
    assert all("duration_ms" in s for s in steps)
    assert kernel.events[-1]["event"] == "shutdown_complete"
    assert (tmp_path / ".hrkernel").is_dir()


def test_sigint_also_shuts_down_gracefully(kernel_process: Callable[..., object], tmp_path: Path) -> None:
    config = tmp_path / "hr.toml"
    config.write_text((ROOT / "hr.toml").read_text())
    kernel = kernel_process(config, cwd=tmp_path)
    kernel.wait_for("ready")
    kernel.signal(signal.SIGINT)
    assert kernel.wait() == 0
    assert kernel.wait_for("shutdown_begin")["reason"] == "SIGINT"


def test_second_signal_forces_exit_while_a_component_is_slow_to_stop(
    plugin_package: Callable[..., Path], kernel_process: Callable[..., object], tmp_path: Path
) -> None:
    site = plugin_package("hr-flaky", FLAKY_EXCHANGE, {"flaky": "hr_flaky.plugin"})
    config = tmp_path / "hr.toml"
    config.write_text('[shutdown]\nstep_timeout = "60s"\n[exchanges.slow]\ntype = "flaky"\nstop_takes = "60s"\n')
    kernel = kernel_process(config, env={"PYTHONPATH": str(site)}, cwd=tmp_path)
    kernel.wait_for("ready")
    kernel.signal(signal.SIGTERM)
    kernel.wait_for("shutdown_begin")
    time.sleep(0.2)
    began = time.monotonic()
    kernel.signal(signal.SIGTERM)
    assert kernel.wait(timeout=5) == 130
    assert time.monotonic() - began < 2
    assert kernel.wait_for("forced_exit")["exit_code"] == 130


def test_a_stop_step_that_overruns_its_timeout_is_logged_and_shutdown_goes_on(
    plugin_package: Callable[..., Path], kernel_process: Callable[..., object], tmp_path: Path
) -> None:
    site = plugin_package("hr-flaky", FLAKY_EXCHANGE, {"flaky": "hr_flaky.plugin"})
    config = tmp_path / "hr.toml"
    config.write_text('[shutdown]\nstep_timeout = "300ms"\n[exchanges.slow]\ntype = "flaky"\nstop_takes = "30s"\n')
    kernel = kernel_process(config, env={"PYTHONPATH": str(site)}, cwd=tmp_path)
    kernel.wait_for("ready")
    kernel.signal(signal.SIGTERM)
    assert kernel.wait(timeout=5) == 0
    steps = {e["component"]: e["outcome"] for e in kernel.events if e.get("event") == "shutdown_step"}
    assert steps["exchange:slow"] == "timeout"
    assert steps["health"] == "ok"  # the steps after the overrunning one still ran


def test_a_component_that_fails_to_start_stops_startup_and_stops_the_others(
    plugin_package: Callable[..., Path], kernel_process: Callable[..., object], tmp_path: Path
) -> None:
    site = plugin_package("hr-flaky", FLAKY_EXCHANGE, {"flaky": "hr_flaky.plugin"})
    config = tmp_path / "hr.toml"
    config.write_text(
        '[exchanges.good]\ntype = "flaky"\n[exchanges.bad]\ntype = "flaky"\nfail_start = true\n'
    )
    kernel = kernel_process(config, env={"PYTHONPATH": str(site)}, cwd=tmp_path)
    assert kernel.wait(timeout=10) == 1
    output = kernel.output()
    assert "component 'exchange:bad' failed to start: ConnectionError: cannot reach the venue" in output
    assert not any(e.get("event") == "ready" for e in kernel.events)
    stopped = [e["component"] for e in kernel.events if e.get("event") == "shutdown_step"]
    assert "exchange:good" in stopped and "exchange:bad" not in stopped
    assert stopped.index("exchange:good") == 0  # the last one started is stopped first
    assert "Traceback" not in output
