"""The composition root: build every component from config + plugins, run, shut down in order."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from hrkernel.config import LoadedConfig
from hrkernel.config.plugin_tables import PluginConfig, validate_plugin_config
from hrkernel.errors import StartupError
from hrkernel.kernel.context import Context
from hrkernel.lifecycle import Component
from hrkernel.logging import get_logger
from hrkernel.plugins import PluginHost

START_TIMEOUT = 30.0
"""How long one component may take to start before start-up is abandoned."""


class Kernel:
    """Holds the components in start order and drives their lifecycle."""

    def __init__(self, loaded: LoadedConfig, host: PluginHost, plugin_config: PluginConfig) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.host = host
        self.plugin_config = plugin_config
        self.log = get_logger("hrkernel.kernel", instance=self.config.kernel.instance_id)
        self.data_dir = Path(self.config.kernel.data_dir)
        self.components: list[Component] = []
        self.components_by_name: dict[str, Component] = {}
        self.context = Context(self)
        self._stop = anyio.Event()
        self.stop_reason: str | None = None
        self.started: list[Component] = []

    @classmethod
    def build(cls, loaded: LoadedConfig, host: PluginHost) -> Kernel:
        """Validate plugin tables and construct every component (no I/O, nothing started)."""
        from hrkernel.kernel.assembly import assemble

        kernel = cls(loaded, host, validate_plugin_config(loaded, host))
        assemble(kernel)
        return kernel

    def add(self, component: Component) -> Component:
        if component.name in self.components_by_name:
            raise ValueError(f"two components are named {component.name!r}")
        self.components.append(component)
        self.components_by_name[component.name] = component
        return component

    def get(self, name: str) -> Any:
        return self.components_by_name.get(name)

    def request_stop(self, reason: str) -> None:
        """Begin graceful shutdown (idempotent)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    async def run(self, *, on_ready: Callable[[], None] | None = None) -> None:
        """Start every component, log ``ready``, wait for :meth:`request_stop`, shut down."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        async with anyio.create_task_group() as tg:
            await self._start_all(tg)
            self.log.info("ready", components=[c.describe() for c in self.started])
            self.host.notify("hr_kernel_started", context=self.context)
            if on_ready is not None:
                on_ready()
            await self._stop.wait()
            self.log.info("shutdown_begin", reason=self.stop_reason)
            self.host.notify("hr_shutting_down", context=self.context)
            await self._stop_all()
            tg.cancel_scope.cancel()
        self.log.info("shutdown_complete", reason=self.stop_reason)

    async def _start_all(self, tg: TaskGroup) -> None:
        for component in self.components:
            began = time.monotonic()
            try:
                with anyio.fail_after(START_TIMEOUT):
                    await component.start(tg)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, TimeoutError) else f"did not start within {START_TIMEOUT:g}s"
                self.log.error("component_start_failed", component=component.name, error=reason)
                await self._stop_all()
                tg.cancel_scope.cancel()
                raise StartupError(component.name, reason) from exc
            self.started.append(component)
            self.log.debug("component_started", component=component.name, duration_ms=round((time.monotonic() - began) * 1000, 1))

    async def _stop_all(self) -> None:
        """Run the graceful shutdown sequence over the started components (see
        :mod:`hrkernel.kernel.shutdown`): intake, cancel, close, flush, release and close."""
        from hrkernel.kernel.shutdown import ShutdownSequence

        await ShutdownSequence(self.config.shutdown, self.started, self.stop_reason, logger=self.log).run()
