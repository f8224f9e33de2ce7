"""The lifecycle every part of a running kernel goes through: the seam between kernel and areas.

Areas (``bus``, ``ha``, ``orders``, ``signals``, ``web`` …) build their kernel parts on
:class:`Component` from this module and never import :mod:`hrkernel.kernel`; the composition root
(:mod:`hrkernel.kernel.assembly`) is the only module that knows every area, builds each part and
hands it its collaborators. This module depends on nothing of hrkernel's, so every area can
import it without an import cycle.

One lifecycle convention, :class:`Lifecycle`: ``async start(tg)`` returns once the part is ready
(background work goes into the kernel's task group ``tg``), ``async stop()`` is graceful. Objects
a plugin built are held by a :class:`PluginComponent` and started through the lifecycle their
kind's contract documents (see :mod:`hrkernel.kernel.assembly`), never guessed from signatures.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar, Protocol, runtime_checkable

from anyio.abc import TaskGroup

__all__ = ["Component", "Lifecycle", "PluginComponent", "ShutdownStage"]


class ShutdownStage(enum.StrEnum):
    """The stages of the graceful shutdown, in order (see :mod:`hrkernel.kernel.shutdown`)."""

    STOP_INTAKE = "stop_intake"
    CANCEL_ORDERS = "cancel_orders"
    CLOSE_POSITIONS = "close_positions"
    FLUSH = "flush"
    RELEASE_AND_CLOSE = "release_and_close"


@runtime_checkable
class Lifecycle(Protocol):
    """Something the kernel starts and stops.

    ``start`` returns once ready; background work goes into ``tg`` (never started anywhere
    else). ``stop`` is graceful: stop accepting work, let in-flight work finish, flush, close.
    """

    async def start(self, tg: TaskGroup) -> None: ...

    async def stop(self) -> None: ...


class Component:
    """A part of the running kernel (a :class:`Lifecycle` with a name and a shutdown stage).

    The kernel calls ``stop`` in the shutdown stage the component names (``shutdown_stage``), in
    reverse start order within it, under ``[shutdown] step_timeout`` (``flush_timeout`` in the
    flush stage), and cancels what is still running afterwards. Background tasks must handle
    their own errors: an exception escaping one stops the kernel.
    """

    name: str = "component"
    shutdown_stage: ClassVar[ShutdownStage] = ShutdownStage.RELEASE_AND_CLOSE
    """When this component is stopped: intake parts in ``STOP_INTAKE``, stores in ``FLUSH``,
    connections (exchanges, lease, bus) last."""

    async def start(self, tg: TaskGroup) -> None:  # pragma: no cover - trivial default
        return None

    async def stop(self) -> None:  # pragma: no cover - trivial default
        return None

    def describe(self) -> dict[str, Any]:
        """A short description for the ``ready`` log line and ``hrkernel check``."""
        return {"name": self.name, "kind": type(self).__name__}


class PluginComponent(Component):
    """Holds an object a plugin factory built (``obj``: the handle other parts and plugins get).

    ``lifecycle`` is what the kernel starts and stops for it: the object itself when its kind's
    contract is :class:`Lifecycle` (data sources), an adapter when the contract says otherwise
    (an exchange: ``start()`` / ``aclose()``), or None for an object that is only held.
    """

    def __init__(self, name: str, kind: str, obj: Any, plugin: str, *,
                 lifecycle: Lifecycle | None = None) -> None:
        self.name = name
        self.kind = kind
        self.obj = obj
        self.plugin = plugin
        self.lifecycle = lifecycle

    async def start(self, tg: TaskGroup) -> None:
        if self.lifecycle is not None:
            await self.lifecycle.start(tg)

    async def stop(self) -> None:
        if self.lifecycle is not None:
            await self.lifecycle.stop()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "plugin": self.plugin, "type": type(self.obj).__name__}
