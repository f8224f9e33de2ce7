"""Value types shared by the kernel and its plugins (public API).

Config structs of plugins subclass :class:`ConfigStruct` and may use :class:`Duration`,
:class:`Amount` and :class:`SignedAmount` fields; the kernel decodes ``"250ms"``/``"5s"``/``"2m"``
and decimal strings into them and reports bad values with their key path.
"""

from __future__ import annotations

import enum
import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

if TYPE_CHECKING:
    import structlog

__all__ = [
    "Amount",
    "ConfigStruct",
    "Duration",
    "HealthCheck",
    "HealthResult",
    "HealthStatus",
    "KernelContext",
    "SignedAmount",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class Duration(float):
    """A duration in seconds, written in config as ``"250ms"``, ``"5s"``, ``"2m"``, ``"1h"``, ``"1d"``."""

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, bool) or not isinstance(value, str):
            raise ValueError(
                f'expected a duration string such as "250ms", "5s" or "2m", found {value!r}'
            )
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f'expected a duration such as "250ms", "5s", "2m", "1h", found {value!r}'
            )
        number, unit = match.groups()
        return cls(float(number) * _UNIT_SECONDS[unit])

    def __repr__(self) -> str:
        return f"Duration({float(self)!r})"


def _parse_decimal(value: object, what: str) -> Decimal:
    # Money is never a float: a TOML float has already lost its exact value.
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f'expected {what} written as a string (e.g. "0.5"), found {value!r}')
    if isinstance(value, int):
        return Decimal(value)
    if not isinstance(value, str):
        raise ValueError(f"expected {what} as a decimal string, found {value!r}")
    try:
        parsed = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"expected {what} as a decimal string, found {value!r}") from None
    if not parsed.is_finite():
        raise ValueError(f"expected a finite {what}, found {value!r}")
    return parsed


class Amount(Decimal):
    """A non-negative exact amount (quantity, price, notional), written as a string: ``"0.01"``."""

    @classmethod
    def parse(cls, value: object) -> Amount:
        parsed = _parse_decimal(value, "an amount")
        if parsed < 0:
            raise ValueError(f"expected an amount >= 0, found {value!r}")
        return cls(parsed)


class SignedAmount(Decimal):
    """An exact amount that may be negative, written as a string: ``"-1.5"``."""

    @classmethod
    def parse(cls, value: object) -> SignedAmount:
        return cls(_parse_decimal(value, "an amount"))


class ConfigStruct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base for every config table, the kernel's and the plugins'.

    Subclasses must repeat ``kw_only=True`` if they want it (msgspec does not inherit it);
    rejecting unknown keys is inherited. Config values are treated as read-only by convention
    (not ``frozen``: mypy would then demand ``frozen=True`` on every subclass).
    """


class HealthStatus(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


class HealthResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one run of a health check found."""

    status: HealthStatus
    detail: str = ""
    latency: float | None = None
    """Seconds the probed thing took to answer, when the check measures one."""


@runtime_checkable
class HealthCheck(Protocol):
    """A health check: the kernel calls :meth:`check` every ``interval`` under ``timeout``.

    A check that raises or times out counts as ``unhealthy`` with the error as detail.
    """

    async def check(self) -> HealthResult: ...


class KernelContext(Protocol):
    """What the kernel hands to plugin factories and lifecycle hooks."""

    @property
    def instance_id(self) -> str: ...

    @property
    def data_dir(self) -> str: ...

    @property
    def shared_redis_url(self) -> str | None:
        """The Redis every kernel sharing this one's state reaches (the HA backend's, when
        ``[ha] backend = "redis"``), or None: where a plugin keeps state shared across processes."""
        ...

    @property
    def log(self) -> structlog.typing.FilteringBoundLogger: ...

    def component(self, name: str) -> Any:
        """The started component called ``name`` (KeyError if there is none)."""
        ...
