"""The ``hrkernel`` click group."""

from __future__ import annotations

import sys

import click

from hrkernel import __version__
from hrkernel.cli.alerts import alerts
from hrkernel.cli.ha import failover, status
from hrkernel.cli.inspect import check, plugins
from hrkernel.cli.operator import ledger, signal, signals
from hrkernel.cli.orders import orders, reconcile
from hrkernel.cli.run import run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hrkernel")
def cli() -> None:
    """hrkernel: a high-reliability kernel for automated crypto trading.

    Typical use: `hrkernel check hr.toml`, then `hrkernel run hr.toml`; from another terminal
    `hrkernel signal buy BTCIRT 0.01`, `hrkernel orders list`, `hrkernel status`. Every command
    takes the config as its CONFIG argument (or --config; default: hr.toml here).
    Exit codes: 0 ok, 1 runtime failure, 2 bad config, plugin or argument.
    """


cli.add_command(run)
cli.add_command(check)
cli.add_command(plugins)
cli.add_command(alerts)
cli.add_command(status)
cli.add_command(failover)
cli.add_command(orders)
cli.add_command(reconcile)
cli.add_command(signal)
cli.add_command(ledger)
cli.add_command(signals)


def _add_plugin_commands() -> None:
    """Let plugins extend the CLI; a failing plugin is reported and skipped."""
    from hrkernel.plugins import PluginHost

    host = PluginHost(strict=False, quiet=True)
    try:
        host.discover()
    except Exception as exc:  # never let a plugin stop `hrkernel --help`
        click.echo(f"warning: plugin discovery failed: {exc}", err=True)
        return
    host.notify("hr_register_commands", cli=cli)


def main(argv: list[str] | None = None) -> None:
    _add_plugin_commands()
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="hrkernel")
