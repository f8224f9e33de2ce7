"""The :class:`hrkernel.types.KernelContext` the kernel hands to plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hrkernel.bus.component import BusComponent
from hrkernel.lifecycle import PluginComponent

if TYPE_CHECKING:
    from hrkernel.bus.base import Bus, Subscription
    from hrkernel.kernel.kernel import Kernel

PLUGIN_KINDS = ("exchange", "datasource")
"""The plugin-built parts whose objects other plugins may be handed (``<kind>:<id>``)."""


class PluginBus:
    """The bus as plugins get it (:class:`hrkernel.types.EventBus`): publish and subscribe only;
    connecting, closing and the backend stay the kernel's."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def publish(self, topic: str, event: Any) -> None:
        await self._bus.publish(topic, event)

    def subscribe(self, topic: str, group: str, *, consumer: str | None = None) -> Subscription:
        return self._bus.subscribe(topic, group, consumer=consumer)


class Context:
    def __init__(self, kernel: Kernel, component_id: str = "") -> None:
        self._kernel = kernel
        self._component_id = component_id

    def for_component(self, component_id: str) -> Context:
        """The same context, naming the config table (``[exchanges.<id>]``) being built."""
        return Context(self._kernel, component_id)

    @property
    def component_id(self) -> str:
        return self._component_id

    @property
    def instance_id(self) -> str:
        return self._kernel.config.kernel.instance_id

    @property
    def data_dir(self) -> str:
        return str(self._kernel.data_dir)

    @property
    def shared_redis_url(self) -> str | None:
        """The HA backend's Redis (``[ha] backend = "redis"``), which every kernel of a pair reaches;
        None otherwise."""
        ha = getattr(self._kernel.config, "ha", None)
        if ha is None or getattr(ha, "backend", "local") != "redis":
            return None
        return str(ha.redis_url)

    @property
    def log(self) -> Any:
        return self._kernel.log

    def component(self, name: str) -> Any:
        """The public handle of ``name`` (see :meth:`hrkernel.types.KernelContext.component`)."""
        found = self._kernel.components_by_name.get(name)
        if isinstance(found, BusComponent):
            return PluginBus(found.bus)
        if isinstance(found, PluginComponent) and found.kind in PLUGIN_KINDS:
            return found.obj
        if found is None:
            raise KeyError(f"no part named {name!r} in this kernel")
        raise KeyError(f"the part {name!r} is not handed to plugins (they get 'bus', "
                       f"'exchange:<id>' and 'datasource:<id>')")
