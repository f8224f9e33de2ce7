"""``hrkernel sim serve``: run the simulator in the foreground until SIGINT/SIGTERM.

Every ``hrkernel`` start-up imports this module (``hr_register_commands``), so the simulator
itself (uvicorn, starlette) and asyncio are imported inside the command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from hrkernel_sim.config import SimConfig


@click.group()
def sim() -> None:
    """The Nobitex-compatible exchange simulator (loopback only)."""


@sim.command()
@click.option("--port", type=int, default=None, help="TCP port on 127.0.0.1 (0: a free one).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="A sim.toml (top-level keys or one [sim] table).")
@click.option("--seed", type=int, default=None, help="Seed of the price walk and of faults.")
def serve(port: int | None, config_path: str | None, seed: int | None) -> None:
    """Serve Nobitex's REST API and the /_sim admin endpoint on 127.0.0.1."""
    import asyncio

    import msgspec

    from hrkernel_sim.config import SimConfig, load_config

    try:
        config = load_config(config_path) if config_path else SimConfig()
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if port is not None:
        config = msgspec.structs.replace(config, port=port)
    if seed is not None:
        config = msgspec.structs.replace(
            config, seed=seed, faults=msgspec.structs.replace(config.faults, seed=seed))
    asyncio.run(_serve(config))


async def _serve(config: SimConfig) -> None:
    import asyncio
    import signal

    from hrkernel_sim.server import SimServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with SimServer(config) as server:
        click.echo(f"simulator listening on {server.base_url} "
                   f"(accounts: {', '.join(sorted(config.accounts))}; admin: /_sim/...)", err=True)
        await stop.wait()
    click.echo("simulator stopped", err=True)
