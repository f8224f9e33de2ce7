"""The :class:`hrkernel.types.KernelContext` the kernel hands to plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hrkernel.kernel.kernel import Kernel


class Context:
    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel

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
        component = self._kernel.components_by_name[name]
        return getattr(component, "obj", component)
