"""Entry point of the built-in sim plugin. Imports only the kernel's public API.

Adds ``hrkernel sim serve`` to the command line and the exchange type ``sim`` (the Nobitex
adapter against a simulator started in-process: the embedded default's exchange).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hrkernel import hookimpl
from hrkernel.spec import Register

if TYPE_CHECKING:
    import click


@hookimpl
def hr_register_commands(cli: click.Group) -> None:
    from hrkernel_sim.cli import sim

    cli.add_command(sim)


@hookimpl
def hr_register_exchanges(register: Register) -> None:
    from hrkernel_sim.embedded import EmbeddedSimConfig, build_embedded

    register("sim", build_embedded, config=EmbeddedSimConfig)
