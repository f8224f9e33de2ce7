"""Entry point of the built-in sim plugin. Imports only the kernel's public API.

Adds ``hrkernel sim serve`` to the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hrkernel import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def hr_register_commands(cli: click.Group) -> None:
    from hrkernel_sim.cli import sim

    cli.add_command(sim)
