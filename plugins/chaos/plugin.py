"""The chaos plugin's hooks: ``hrkernel chaos`` and ``hrkernel demo`` join the command line.

This module is imported on every CLI start (``hrkernel --help`` included), so it imports nothing
but the hook marker at top level; the commands' module is imported when the hook runs and the
runner (httpx, threads, subprocesses) only when a command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hrkernel import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def hr_register_commands(cli: click.Group) -> None:
    from hrkernel_chaos.cli import chaos, demo

    cli.add_command(chaos)
    cli.add_command(demo)
