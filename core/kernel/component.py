"""The lifecycle every kernel part and every plugin-built object goes through."""

from __future__ import annotations

import inspect
from typing import Any

from anyio.abc import TaskGroup


class Component:
    """A part of the running kernel.

    ``start`` returns once the component is ready; background work goes into the kernel's task
    group ``tg`` (never started anywhere else). ``stop`` is graceful: stop accepting work, let
    in-flight work finish, flush, close. The kernel calls ``stop`` under ``[shutdown]
    step_timeout``, in reverse start order, and cancels what is still running afterwards.
    Background tasks must handle their own errors: an exception escaping one stops the kernel.
    """

    name: str = "component"

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
