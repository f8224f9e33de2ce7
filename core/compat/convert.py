"""The one place where the design documents' floats become Decimals.

The documents write amounts and prices as floats (``amount=0.001``). Such a float is converted
here, exactly as it was written, through its shortest repr (``Decimal(repr(0.001))`` is
``Decimal("0.001")``, whereas ``Decimal(0.001)`` would carry the binary error
``0.001000000000000000020816...``), and never travels further: everything past this module is
Decimal-only.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

__all__ = ["exact_decimal", "seconds"]


def exact_decimal(value: object, what: str) -> Decimal:
    """``value`` (float, int, str or Decimal) as a finite Decimal; ``what`` names it in errors."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a number, found {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what}: expected a finite number, found {value!r}")
        result = Decimal(repr(value))  # the shortest repr is the literal the caller wrote
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what}: expected a decimal number, found {value!r}") from None
    else:
        raise ValueError(f"{what}: expected a number, found {type(value).__name__} {value!r}")
    if not result.is_finite():
        raise ValueError(f"{what}: expected a finite number, found {value!r}")
    return result


def seconds(value: object, what: str) -> float:
    """A duration in seconds (timeouts are not money: a float is what the kernel uses)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what}: expected a number of seconds >= 0, found {value!r}")
    return float(value)
