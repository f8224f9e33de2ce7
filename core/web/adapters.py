"""What every adapter in :mod:`hrkernel.web.sources` shares: the host protocol, errors, lookup
by component name, and the conversion of component state to JSON types (Decimals as strings)."""

from __future__ import annotations

import dataclasses
import enum
import inspect
from decimal import Decimal
from typing import Any, Protocol

import msgspec


class Host(Protocol):
    """What the web layer needs from the kernel."""

    components: list[Any]

    def get(self, name: str) -> Any: ...


class NotConfigured(LookupError):
    """The area (or the named object inside it) is not present in this process."""


class Unsupported(RuntimeError):
    """The area is present but does not offer the requested action."""


def jsonable(value: Any) -> Any:
    """Convert msgspec structs, dataclasses, enums, Decimals (as strings) etc. to JSON types."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, msgspec.Struct):
        return {f: jsonable(getattr(value, f)) for f in value.__struct_fields__}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def unwrap(component: Any) -> Any:
    """The object a plugin built, for plugin components; the component itself otherwise."""
    return getattr(component, "obj", component)


def find(host: Host, *names: str) -> Any:
    """The first component called one of ``names`` (unwrapped), or None."""
    for name in names:
        component = host.get(name)
        if component is not None:
            return unwrap(component)
    return None


async def maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def method_of(obj: Any, *names: str) -> Any:
    for name in names:
        fn = getattr(obj, name, None)
        if fn is not None:
            return fn
    return None


def stats_of(obj: Any) -> dict[str, Any]:
    """An object's ``metrics()``/``stats()``/``snapshot()`` as a JSON dict."""
    fn = method_of(obj, "metrics", "stats", "snapshot")
    data = jsonable(fn() if callable(fn) else fn) if fn is not None else {}
    return data if isinstance(data, dict) else {"value": data}
