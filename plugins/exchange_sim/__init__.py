"""hrkernel_sim: a Nobitex-compatible exchange simulator with fault injection (built-in plugin).

Public: :class:`~hrkernel_sim.server.SimServer` (in-process server, async context manager) and
:class:`~hrkernel_sim.config.SimConfig` (its config struct, TOML-able). Everything else
(engine, api, faults, admin) is internal. Imports the kernel's public API and, for the
``sim`` exchange type only, the Nobitex adapter (declared in ``hrkernel_sim.plugin.REQUIRES``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hrkernel_sim.config import SimConfig
    from hrkernel_sim.server import SimServer

__all__ = ["SimConfig", "SimServer"]


def __getattr__(name: str) -> Any:
    # Lazy: the plugin's entry point imports this package on every `hrkernel` start.
    if name == "SimConfig":
        from hrkernel_sim.config import SimConfig

        return SimConfig
    if name == "SimServer":
        from hrkernel_sim.server import SimServer

        return SimServer
    raise AttributeError(name)
