"""The lifecycle every kernel part and every plugin-built object goes through."""

from __future__ import annotations

import enum
import inspect
from typing import Any, ClassVar

from anyio.abc import TaskGroup


class ShutdownStage(enum.StrEnum):
    """The stages of the graceful shutdown, in order (see :mod:`hrkernel.kernel.shutdown`)."""

    STOP_INTAKE = "stop_intake"
    CANCEL_ORDERS = "cancel_orders"
    CLOSE_POSITIONS = "close_positions"
    FLUSH = "flush"
    RELEASE_AND_CLOSE = "release_and_close"


class Component:
    """A part of the running kernel.

    ``start`` returns once the component is ready; background work goes into the kernel's task
    group ``tg`` (never started anywhere else). ``stop`` is graceful: stop accepting work, let
    in-flight work finish, flush, close. The kernel calls ``stop`` in the shutdown stage the
    component names (``shutdown_stage``), in reverse start order within it, under ``[shutdown]
    step_timeout`` (``flush_timeout`` in the flush stage), and cancels what is still running
    afterwards. Background tasks must handle their own errors: an exception escaping one stops
    the kernel.
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
    """Wraps an object a plugin factory built, using whichever lifecycle methods it has.

    Start: ``start(tg)`` or ``start()``; stop: ``stop()`` or ``aclose()``. Plain objects with
    neither are fine (they are just held).
    """

    def __init__(self, name: str, kind: str, obj: Any, plugin: str) -> None:
        self.name = name
        self.kind = kind
        self.obj = obj
        self.plugin = plugin

    async def start(self, tg: TaskGroup) -> None:
        start = getattr(self.obj, "start", None)
        if start is None:
            return
        params = inspect.signature(start).parameters
        result = start(tg) if params else start()
        if inspect.isawaitable(result):
            await result

    async def stop(self) -> None:
        for method in ("stop", "aclose"):
            fn = getattr(self.obj, method, None)
            if fn is not None:
                result = fn()
                if inspect.isawaitable(result):
                    await result
                return

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "plugin": self.plugin, "type": type(self.obj).__name__}
