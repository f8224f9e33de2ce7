"""The design's ``ConnectionPool(name=, create_client_func=, config={...})``.

The kernel's :class:`hrkernel.resilience.ConnectionPool` takes the factory as ``create_client``
and a typed :class:`~hrkernel.resilience.PoolConfig`; its lifecycle is ``start()``/``aclose()``.
This subclass takes the documents' spelling (a dict config, validated into ``PoolConfig`` with
the same errors) and adds ``initialize()``/``stop()``; everything else is the kernel's pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import msgspec

from hrkernel.resilience import ConnectionPool as _KernelPool
from hrkernel.resilience import PoolConfig
from hrkernel.types import Duration

__all__ = ["ConnectionPool", "pool_config"]

C = TypeVar("C")
_DURATIONS = ("connection_timeout", "idle_timeout")


def pool_config(config: Mapping[str, Any] | PoolConfig | None, where: str = "ConnectionPool config") -> PoolConfig:
    """A :class:`PoolConfig` from the documents' dict (durations as numbers of seconds)."""
    if config is None:
        return PoolConfig()
    if isinstance(config, PoolConfig):
        return config
    if not isinstance(config, Mapping):
        raise ValueError(f"{where}: expected a dict, found {type(config).__name__}")
    unknown = sorted(set(config) - set(PoolConfig.__struct_fields__))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} "
                         f"(known: {', '.join(PoolConfig.__struct_fields__)})")
    values: dict[str, Any] = {}
    for key, value in config.items():
        if key in _DURATIONS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{where}: {key} must be a number of seconds, found {value!r}")
            value = Duration(value)
        elif isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: {key} must be a whole number, found {value!r}")
        values[key] = value
    try:
        return PoolConfig(**values)
    except (ValueError, TypeError, msgspec.ValidationError) as exc:
        raise ValueError(f"{where}: {exc}") from None


class ConnectionPool(_KernelPool[C]):
    """``ConnectionPool(name=, create_client_func=, config={"min_connections": .., ...})``."""

    def __init__(
        self,
        name: str,
        create_client_func: Callable[[], Awaitable[C] | C],
        config: Mapping[str, Any] | PoolConfig | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, create_client_func, pool_config(config, f"ConnectionPool {name!r} config"), **options)

    async def initialize(self) -> None:
        """Open ``min_connections`` clients now (the kernel's ``start()``)."""
        await self.start()

    async def stop(self) -> None:
        """Close every client (the kernel's ``aclose()``)."""
        await self.aclose()
