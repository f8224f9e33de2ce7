"""The ``hrkernel`` click group.

Built-in commands are listed in :data:`COMMANDS` and imported only when used (see
:mod:`hrkernel.cli.lazy`); plugins add theirs through ``hr_register_commands``.
"""

from __future__ import annotations

import sys

import click

from hrkernel import __version__
from hrkernel.cli.lazy import LazyCommand, LazyGroup

#: Every built-in command: where it lives and its short help, so ``hrkernel --help`` needs no
#: command module. tests/kernel/test_kernel_cli_lazy.py fails when a help text here differs
#: from the command's own.
COMMANDS: dict[str, LazyCommand] = {
    "run": LazyCommand(
        "hrkernel.cli.run:run",
        "Start the kernel described by CONFIG (an hr.toml) and run until SIGINT/SIGTERM."),
    "check": LazyCommand(
        "hrkernel.cli.inspect:check",
        "Validate CONFIG, load plugins and build every component without starting anything."),
    "plugins": LazyCommand(
        "hrkernel.cli.inspect:plugins",
        "List every discovered plugin: distribution, version, hooks, what it provides, state."),
    "alerts": LazyCommand(
        "hrkernel.cli.alerts:alerts",
        "Alert history: list alerts and acknowledge them (stops their repeat notifications)."),
    "status": LazyCommand(
        "hrkernel.cli.ha:status",
        "Show this instance's role, the leader, the fencing token, when the lease expires and "
        "the replication lag."),
    "failover": LazyCommand(
        "hrkernel.cli.ha:failover",
        "Ask the current leader to step down so a standby takes over (or, with --group, switch "
        "a failover group of the running kernel through its dashboard API)."),
    "orders": LazyCommand(
        "hrkernel.cli.orders:orders",
        "The order journal: list orders, show one with its full history; emergency cancel-all."),
    "reconcile": LazyCommand(
        "hrkernel.cli.orders:reconcile",
        "Compare the exchanges with journal and ledger (open orders, orphans, fills, balance "
        "drift)."),
    "signal": LazyCommand(
        "hrkernel.cli.operator:signal",
        "Send a signal to the running kernel: ACTION SYMBOL [AMOUNT] [CONFIG]."),
    "ledger": LazyCommand(
        "hrkernel.cli.operator:ledger",
        "Balance changes the operator makes, recorded in the ledger with a reason."),
    "signals": LazyCommand(
        "hrkernel.cli.operator:signals",
        "Every signal's outcome, newest first: accepted, ordered (with its order) or refused "
        "(why)."),
}


def _add_plugin_commands(group: click.Group) -> None:
    """Let plugins extend the CLI; a failing plugin is reported and skipped."""
    from hrkernel.plugins import PluginHost

    host = PluginHost(strict=False, quiet=True)
    try:
        host.discover()
    except Exception as exc:  # never let a plugin stop `hrkernel --help`
        click.echo(f"warning: plugin discovery failed: {exc}", err=True)
        return

    def report(plugin: str, exc: Exception) -> None:
        click.echo(f"warning: plugin {plugin!r} added no commands: hr_register_commands raised "
                   f"{type(exc).__name__}: {exc}", err=True)

    host.notify("hr_register_commands", on_error=report, cli=group)


@click.group(
    cls=LazyGroup, lazy=COMMANDS, load_plugins=_add_plugin_commands,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="hrkernel")
def cli() -> None:
    """hrkernel: a high-reliability kernel for automated crypto trading.

    Typical use: `hrkernel check hr.toml`, then `hrkernel run hr.toml`; from another terminal
    `hrkernel signal buy BTCIRT 0.01`, `hrkernel orders list`, `hrkernel status`. Every command
    takes the config as its CONFIG argument (or --config; default: hr.toml here).
    Exit codes: 0 ok, 1 runtime failure, 2 bad config, plugin or argument.
    """


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="hrkernel")
