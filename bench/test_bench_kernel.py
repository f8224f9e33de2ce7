"""Start-up cost, in process and as a user waits for it.

Run: ``python -m pytest bench/test_bench_kernel.py --benchmark-only``.

In process: config load + plugin discovery against a bare TOML parse baseline (how much the
kernel adds on top of reading the TOML file at all). As whole processes: ``hrkernel --help`` and
``hrkernel run hr.toml`` until its ``ready`` line, median of runs, against starting the same
interpreter doing nothing; written to ``bench/results/kernel.json`` for ``bench/report.py``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hrkernel.config import load_config
from hrkernel.plugins import PluginHost

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "hr.toml"

pytestmark = pytest.mark.benchmark(group="kernel-startup")


def test_baseline_bare_toml_parse(benchmark) -> None:
    result = benchmark(lambda: tomllib.loads(CONFIG.read_text()))
    assert "kernel" in result


def test_config_load_and_validate(benchmark) -> None:
    loaded = benchmark(lambda: load_config(CONFIG, environ={}))
    assert loaded.config.kernel.instance_id == "hr-1"


def test_plugin_discovery_and_registration(benchmark) -> None:
    def discover() -> PluginHost:
        host = PluginHost(strict=True)
        host.discover()
        host.collect()
        return host

    host = benchmark(discover)
    assert "event_loop_lag" in host.registrations("health_check")


def test_config_load_plus_discovery(benchmark) -> None:
    def start() -> PluginHost:
        load_config(CONFIG, environ={})
        host = PluginHost(strict=True)
        host.discover()
        host.collect()
        return host

    benchmark(start)


# ---------------------------------------------------------------------------- as a user waits
# The in-process figures above leave out what a user actually waits for: the interpreter, the
# imports of every dependency, entry-point discovery and (for `run`) starting each component.
# These time whole processes, median of ROUNDS runs, against the floor of starting the same
# interpreter and doing nothing (`python -c pass`), measured in the same run.

PROCESS_ROUNDS = 5
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "kernel.json"
HRKERNEL = Path(sys.executable).with_name("hrkernel")
PROCESS: dict[str, float] = {}
# CPU seconds (user + sys) of each timed run: on a shared machine wall time includes waiting for
# a core, CPU time is what the process itself cost. Medians go beside the wall figures.
CPU: dict[str, list[float]] = {}
# Median of per-round ratios to a `python -c pass` run just before each round (same load).
PAIRED: dict[str, float] = {}


def _user_config(directory: Path) -> Path:
    """The shipped hr.toml, unchanged except the dashboard's port: 0 (any free port) so a run
    never collides with another kernel on this machine; binding either port costs the same."""
    text = CONFIG.read_text()
    assert re.search(r"(?m)^port = 8080$", text), "hr.toml's dashboard port line changed: update the bench"
    path = directory / "hr.toml"
    path.write_text(re.sub(r"(?m)^port = 8080$", "port = 0", text))
    return path


def _environ(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HRKERNEL_")}
    return {**env, "HRKERNEL_DATA_DIR": str(data_dir)}


def _median_process(benchmark: Any, name: str, run: Callable[[], None],
                    setup: Callable[[], None] | None = None) -> None:
    """Time ``run`` (one whole process) PROCESS_ROUNDS times after a warm-up; ``setup`` runs
    untimed before each round. The figure is pytest-benchmark's median of the timed rounds."""
    def untimed_setup() -> tuple[tuple[()], dict[str, Any]]:
        if setup is not None:
            setup()
        return (), {}

    benchmark.pedantic(run, setup=untimed_setup, rounds=PROCESS_ROUNDS, iterations=1, warmup_rounds=1)
    PROCESS[name] = benchmark.stats.stats.median
    benchmark.extra_info["median_s"] = round(PROCESS[name], 4)
    _write_process_results()


def _command(name: str, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault(name, []).append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)


def _cpu_so_far(pid: int) -> float:
    """user + sys seconds a running process has used so far (Linux /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.benchmark(group="kernel-startup-process")
def test_process_bare_python_start(benchmark: Any, tmp_path: Path) -> None:
    env = _environ(tmp_path / "data")
    _median_process(benchmark, "python -c pass", lambda: _command("python -c pass", [sys.executable, "-c", "pass"], tmp_path, env))


@pytest.mark.benchmark(group="kernel-startup-process")
def test_process_hrkernel_help(benchmark: Any, tmp_path: Path) -> None:
    """``hrkernel --help`` with ``python -c pass`` run just before it in every round (untimed by
    pytest-benchmark, timed here), so each round gives a ratio to the interpreter's floor taken
    under the same load: the median of those ratios holds when the machine's speed drifts."""
    env = _environ(tmp_path / "data")
    floors: list[float] = []
    helps: list[float] = []

    def bare_python() -> None:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], cwd=tmp_path, env=env, check=True, timeout=60)
        floors.append(time.perf_counter() - started)

    def help_() -> None:
        started = time.perf_counter()
        _command("hrkernel --help", [str(HRKERNEL), "--help"], tmp_path, env)
        helps.append(time.perf_counter() - started)

    _median_process(benchmark, "hrkernel --help", help_, setup=bare_python)
    # The first pair is the warm-up round, left out as pytest-benchmark leaves it out.
    PAIRED["hrkernel --help"] = statistics.median(h / f for h, f in zip(helps[1:], floors[1:], strict=True))
    benchmark.extra_info["ratio_to_python_c_pass"] = round(PAIRED["hrkernel --help"], 2)
    _write_process_results()


@pytest.mark.benchmark(group="kernel-startup-process")
def test_process_hrkernel_run_until_ready(benchmark: Any, tmp_path: Path) -> None:
    """``hrkernel run hr.toml`` from exec to its ``ready`` log line (JSON on stdout, as under a
    supervisor), then SIGTERM; the shutdown is not timed. A fresh data dir every run: a first
    start, the slowest a user sees."""
    config = _user_config(tmp_path)
    runs = iter(range(10**6))
    running: list[subprocess.Popen[str]] = []

    def until_ready() -> None:
        data = tmp_path / f"data-{next(runs)}"
        proc = subprocess.Popen([str(HRKERNEL), "run", str(config)], cwd=tmp_path, env=_environ(data),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        running.append(proc)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{") and json.loads(line).get("event") == "ready":
                CPU.setdefault("hrkernel run hr.toml (to ready)", []).append(_cpu_so_far(proc.pid))
                return
        raise AssertionError(f"hrkernel run exited {proc.wait()} without logging ready")

    def stop_previous() -> None:
        while running:
            proc = running.pop()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            assert proc.returncode == 0, f"hrkernel run exited {proc.returncode} on SIGTERM"

    try:
        _median_process(benchmark, "hrkernel run hr.toml (to ready)", until_ready, setup=stop_previous)
    finally:
        stop_previous()


def _write_process_results() -> None:
    floor = PROCESS.get("python -c pass")
    # The warm-up run is the first CPU sample of each command: leave it out, as pytest-benchmark does.
    cpu = {name: statistics.median(samples[1:]) for name, samples in CPU.items() if len(samples) > 1}
    ratios = []
    for name, seconds in PROCESS.items():
        if floor and name != "python -c pass":
            ratios.append({"label": f"`{name}` wall time, whole process, median of {PROCESS_ROUNDS} (vs `python -c pass`)",
                           "ours": f"{seconds:.3f} s", "peer": f"{floor:.3f} s", "ratio": round(seconds / floor, 2),
                           "met": None})
        if name in cpu and cpu.get("python -c pass") and name != "python -c pass":
            ratios.append({"label": f"`{name}` CPU time (user + sys), median of {PROCESS_ROUNDS} (vs `python -c pass`)",
                           "ours": f"{cpu[name]:.3f} s", "peer": f"{cpu['python -c pass']:.3f} s",
                           "ratio": round(cpu[name] / max(cpu["python -c pass"], 0.001), 2), "met": None})
    for name, ratio in PAIRED.items():
        ratios.append({"label": f"`{name}` wall time, whole process, median of {PROCESS_ROUNDS} per-round ratios "
                                "to a `python -c pass` run just before it",
                       "ours": f"{PROCESS[name]:.3f} s", "peer": "`python -c pass`", "ratio": round(ratio, 2),
                       "met": None})
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps({"median_wall_s": PROCESS, "median_cpu_s": cpu, "rounds": PROCESS_ROUNDS,
                                        "paired_ratio_to_python_c_pass": PAIRED, "ratios": ratios},
                                       indent=2) + "\n")
