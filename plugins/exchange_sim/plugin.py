"""Entry point of the built-in sim plugin. Imports the kernel's public API (and see ``REQUIRES``).

Adds ``hrkernel sim serve`` to the command line and the exchange type ``sim`` (the Nobitex
adapter against a simulator started in-process: the embedded default's exchange).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from hrkernel import hookimpl
from hrkernel.spec import Register

if TYPE_CHECKING:
    import click

REQUIRES: dict[str, str] = {
    "hrkernel_nobitex": "the exchange type `sim` is the Nobitex adapter trading against the simulator",
}
"""Other plugin packages this one imports, and why. The simulator itself (``hrkernel sim
serve``, :class:`~hrkernel_sim.server.SimServer`) needs none; only the ``sim`` exchange type
does, and it says so at registration instead of failing on a bare ImportError when first
built. ``tests/kernel/test_plugin_boundary.py`` checks no other plugin is imported."""


def missing_requirements() -> list[str]:
    return [name for name in REQUIRES if importlib.util.find_spec(name) is None]


@hookimpl
def hr_register_commands(cli: click.Group) -> None:
    from hrkernel_sim.cli import sim

    cli.add_command(sim)


@hookimpl
def hr_register_exchanges(register: Register) -> None:
    missing = missing_requirements()
    if missing:
        raise RuntimeError(
            f"exchange type 'sim' needs {', '.join(missing)} ({REQUIRES[missing[0]]}); "
            "install hrkernel with its built-in plugins, or disable the 'sim' plugin")
    from hrkernel_sim.embedded import EmbeddedSimConfig, build_embedded

    register("sim", build_embedded, config=EmbeddedSimConfig)
