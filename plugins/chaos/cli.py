"""The chaos plugin's commands: ``hrkernel chaos run SCENARIO.toml [--seed N]`` and ``hrkernel demo [--fast]``.

Both start real processes on 127.0.0.1 (the simulator, a private redis-server, kernels), inject
faults, check the invariants and print the report. Exit codes: 0 every invariant holds, 1 one
failed (or the run could not complete), 2 a bad scenario file, 130 interrupted (everything that
was started is stopped first)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
"""The exit codes every ``hrkernel`` command uses (README: exit codes); a bad scenario file is a
bad config."""


def _sayer(quiet: bool) -> tuple[object, float]:
    start = time.monotonic()

    def say(message: str) -> None:
        if not quiet:
            click.echo(f"[{time.monotonic() - start:6.1f}s] {message}", err=False)

    return say, start


def _execute(scenario: object, seed: int | None, workdir: str | None, quiet: bool, single: bool = False) -> None:
    from hrkernel_chaos.runner import ChaosRun

    say, _ = _sayer(quiet)
    run = ChaosRun(scenario, seed=seed, workdir=Path(workdir) if workdir else None, say=say,  # type: ignore[arg-type]
                   single_process=single)
    try:
        report = run.run()
    except KeyboardInterrupt:
        click.echo("\ninterrupted: every process this run started was stopped", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - a run that cannot complete is a failed run
        click.echo(run.report.render())
        click.echo(f"error: the run did not complete: {type(exc).__name__}: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    click.echo("")
    click.echo(report.render())
    sys.exit(EXIT_OK if report.passed else EXIT_FAILURE)


@click.group()
def chaos() -> None:
    """Chaos scenarios: real processes, injected faults, checked invariants."""


@chaos.command("run")
@click.argument("scenario_file", type=click.Path(dir_okay=False))
@click.option("--seed", type=int, default=None, help="Override the scenario's seed (random faults).")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where configs, data and every process's log go (default: a new temp dir).")
@click.option("--quiet", is_flag=True, help="Only the final report.")
def run_cmd(scenario_file: str, seed: int | None, workdir: str | None, quiet: bool) -> None:
    """Run SCENARIO_FILE (TOML; see scenarios/) and print the invariant report."""
    from hrkernel_chaos.scenario import ScenarioError, load_scenario

    try:
        scenario = load_scenario(scenario_file)
    except ScenarioError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    _execute(scenario, seed, workdir, quiet)


@click.command()
@click.option("--fast", is_flag=True, help="A short timeline (about a minute).")
@click.option("--single", is_flag=True, help="One kernel, no Redis (also used when redis-server is missing).")
@click.option("--workdir", type=click.Path(file_okay=False), default=None)
def demo(fast: bool, single: bool, workdir: str | None) -> None:
    """The high-reliability demo: two kernels, the simulator, a private Redis, a timeline of failures."""
    from hrkernel_chaos.demo import demo_scenario

    scenario = demo_scenario(fast=fast, kernels=1 if single else None)
    mode = "two kernels (active/passive) on a private Redis" if scenario.kernels > 1 else \
        "one kernel (single-process mode: redis-server not found or --single)"
    click.echo(f"hrkernel demo: {mode}, {scenario.signals} signals; Ctrl-C stops everything")
    what = {"sim_errors": "every exchange call fails for a moment (the circuit breaker opens)",
            "sim_script": "the exchange takes an order and its answer is dropped",
            "kill_leader": "the leader is SIGKILLed (the standby takes over)",
            "sim_down": "the exchange is down (503 everywhere)"}
    click.echo("timeline:")
    for f in scenario.faults:
        click.echo(f"  before signal {f.at:>2}: {what.get(f.kind, f.kind)}")
    _execute(scenario, None, workdir, quiet=False)
