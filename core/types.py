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
    "EventBus",
    "HealthCheck",
    "HealthResult",
    "HealthStatus",
    "KernelContext",
    "SignedAmount",
    "parse_decimal_text",
]

# ASCII digits only, matched against the whole string: ``\d`` would take Arabic-Indic or
# full-width digits (``float("١٢٣")`` is 123.0) and ``$`` would accept a trailing newline.
_DURATION = re.compile(r"[ \t]*([0-9]+(?:\.[0-9]+)?)[ \t]*(ms|s|m|h|d)[ \t]*")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class Duration(float):
    """A duration in seconds, written in config as ``"250ms"``, ``"5s"``, ``"2m"``, ``"1h"``, ``"1d"``."""

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, bool) or not isinstance(value, str):
            raise ValueError(
                f'expected a duration string such as "250ms", "5s" or "2m", found {value!r}'
            )
        match = _DURATION.fullmatch(value)
        if match is None:
            raise ValueError(
                f'expected a duration such as "250ms", "5s", "2m", "1h", found {value!r}'
            )
        number, unit = match.groups()
        return cls(float(number) * _UNIT_SECONDS[unit])

    def __repr__(self) -> str:
        return f"Duration({float(self)!r})"


def parse_decimal_text(text: str) -> Decimal:
    """``text`` as an exact Decimal, accepting only what a person types as a number in ASCII.

    Surrounding ASCII spaces/tabs are ignored; the rest must be an optional sign, ASCII digits with
    an optional decimal point, and an optional exponent (``"0.01"``, ``"-1.5"``, ``"1e-8"``).
    ``Decimal()`` alone would also take non-ASCII digits (``"١٢٣"``, ``"１２３"`` -> 123),
    underscores (``"1_000"``), ``"NaN"`` and ``"Infinity"``: each raises :class:`ValueError` here.
    """
    stripped = text.strip(" \t")
    if not _DECIMAL_TEXT.fullmatch(stripped):
        raise ValueError(f"not a decimal number in ASCII digits: {text[:40]!r}")
    return Decimal(stripped)


def _parse_decimal(value: object, what: str) -> Decimal:
    # Money is never a float: a TOML float has already lost its exact value.
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f'expected {what} written as a string (e.g. "0.5"), found {value!r}')
    if isinstance(value, int):
        return Decimal(value)
    if not isinstance(value, str):
        raise ValueError(f"expected {what} as a decimal string, found {value!r}")
    try:
        return parse_decimal_text(value)
    except (ValueError, InvalidOperation):
        raise ValueError(f"expected {what} as a decimal string in ASCII digits (e.g. \"0.5\"), found {value[:40]!r}") from None


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


@runtime_checkable
class EventBus(Protocol):
    """The kernel's event bus as plugins get it (``context.component("bus")``).

    Events are the structs of :mod:`hrkernel.bus.events`."""

    async def publish(self, topic: str, event: Any) -> None:
        """Publish ``event`` on ``topic`` (the bus's backpressure policy applies)."""
        ...

    def subscribe(self, topic: str, group: str, *, consumer: str | None = None) -> Any:
        """An async iterator of deliveries (``delivery.event``; ``await delivery.ack()``) for the
        consumer group ``group``; ``aclose()`` it when done."""
        ...


class KernelContext(Protocol):
    """What the kernel hands to plugin factories and lifecycle hooks."""

    @property
    def instance_id(self) -> str: ...

    @property
    def data_dir(self) -> str: ...

    @property
    def component_id(self) -> str:
        """The id of the config table the object is built from (``paper`` for
        ``[exchanges.paper]``); empty outside a factory call. Name logs and breakers after it."""
        ...

    @property
    def shared_redis_url(self) -> str | None:
        """The Redis every kernel sharing this one's state reaches (the HA backend's, when
        ``[ha] backend = "redis"``), or None: where a plugin keeps state shared across processes."""
        ...

    @property
    def log(self) -> structlog.typing.FilteringBoundLogger: ...

    def component(self, name: str) -> Any:
        """The public handle of the part called ``name`` (KeyError if there is none):

        - ``bus``: the :class:`EventBus`;
        - ``exchange:<id>``: the :class:`hrkernel.exchange.Exchange` built from ``[exchanges.<id>]``
          (the kernel's guarded wrapper around the plugin's adapter);
        - ``datasource:<id>``: the object the data-source plugin built from ``[datasources.<id>]``.

        Other parts of the kernel are not handed to plugins.
        """
        ...
