"""What an :class:`~hrkernel.exchange.Exchange`'s methods must look like and return (public API).

msgspec structs do not check their fields when built in Python, so a plugin can hand the kernel
an ``Order`` whose ``amount`` is a float, or ``None`` where a list is due, and nothing complains
until reconciliation adds a float to a Decimal. These checks are what the conformance kit
(:mod:`hrkernel.testing`), ``hrkernel check`` and the kernel's exchange wrapper use:

- :func:`contract_problems`: the methods of the contract an object lacks or cannot be called
  like (checked on the object, without calling anything);
- :func:`result_problems`: how a value returned by one of those methods differs from the
  contract's return annotation (recursively: lists, optionals, structs, Decimal amounts, enums).
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

import msgspec

from hrkernel.exchange.protocol import Exchange

__all__ = ["CONTRACT_METHODS", "contract_problems", "result_problems"]

CONTRACT_METHODS: tuple[str, ...] = (
    "start", "aclose", "ping", "markets", "market", "place_order", "cancel_order", "get_order",
    "find_order_by_client_id", "list_open_orders", "order_fills", "recent_fills", "balances",
    "order_book", "recent_trades", "market_stats",
)
"""Every coroutine method of the contract, in the order the guide lists them."""


@cache
def _signature(name: str) -> inspect.Signature:
    return inspect.signature(getattr(Exchange, name))


@cache
def _return_type(name: str) -> Any:
    return typing.get_type_hints(getattr(Exchange, name))["return"]


def contract_problems(exchange: object) -> list[str]:
    """Sentences naming each way ``exchange`` does not fit the contract's shape: a missing
    ``name``, a missing or non-async method, a parameter the kernel passes that it does not
    accept. Empty when it fits."""
    problems: list[str] = []
    if not isinstance(getattr(exchange, "name", None), str):
        problems.append("attribute 'name' (str) is missing")
    for name in CONTRACT_METHODS:
        method = getattr(exchange, name, None)
        if method is None or not callable(method):
            problems.append(f"method {name}() is missing")
            continue
        if not inspect.iscoroutinefunction(method):
            problems.append(f"{name}() must be 'async def'")
            continue
        if name in ("start", "aclose"):
            continue  # the kernel calls start(tg) or start(), whichever the method takes
        try:
            actual = inspect.signature(method)
        except (TypeError, ValueError):
            continue  # a C-level or wrapped callable: nothing to compare
        problems += _parameter_problems(name, _signature(name), actual)
    return problems


def _parameter_problems(name: str, wanted: inspect.Signature, actual: inspect.Signature) -> list[str]:
    params = list(actual.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params) and any(
            p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return []  # (*args, **kwargs): accepts whatever the kernel passes
    problems = []
    has_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    for want in list(wanted.parameters.values())[1:]:  # skip self
        have = actual.parameters.get(want.name)
        if have is None:
            if not (has_kwargs and want.kind is inspect.Parameter.KEYWORD_ONLY):
                problems.append(f"{name}() lacks parameter {want.name!r}")
            continue
        if want.kind is inspect.Parameter.KEYWORD_ONLY and have.kind is inspect.Parameter.POSITIONAL_ONLY:
            problems.append(f"{name}() takes {want.name!r} positionally only; the kernel passes it by keyword")
        if want.default is not inspect.Parameter.empty and have.default is inspect.Parameter.empty:
            problems.append(f"{name}() requires {want.name!r}; the contract makes it optional")
    for have in params:
        if have.default is inspect.Parameter.empty and have.kind in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY,
                inspect.Parameter.POSITIONAL_ONLY) and have.name not in wanted.parameters:
            problems.append(f"{name}() requires parameter {have.name!r} the kernel never passes")
    return problems


def result_problems(method: str, value: object) -> list[str]:
    """How ``value``, returned by the contract's ``method``, differs from its declared return
    type; empty when it matches."""
    problems: list[str] = []
    _check(value, _return_type(method), f"{method}()", problems)
    return problems


def _check(value: object, expected: Any, where: str, problems: list[str]) -> None:
    if len(problems) >= 10:
        return  # enough to name the fault
    origin = typing.get_origin(expected)
    if expected is type(None) or expected is None:
        if value is not None:
            problems.append(f"{where}: expected None, got {type(value).__name__}")
        return
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(expected)
        for option in options:
            attempt: list[str] = []
            _check(value, option, where, attempt)
            if not attempt:
                return
        names = " | ".join(getattr(o, "__name__", str(o)) for o in options)
        problems.append(f"{where}: expected {names}, got {type(value).__name__} {_short(value)}")
        return
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {type(value).__name__} {_short(value)}")
            return
        (item,) = typing.get_args(expected)
        for index, element in enumerate(value):
            _check(element, item, f"{where}[{index}]", problems)
        return
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{where}: expected a number, got {type(value).__name__} {_short(value)}")
        return
    if expected is Decimal:
        if not isinstance(value, Decimal):
            problems.append(f"{where}: expected Decimal (money is never float), got {type(value).__name__} {_short(value)}")
        elif not value.is_finite():
            problems.append(f"{where}: {value} is not a finite amount")
        return
    if isinstance(expected, type) and issubclass(expected, enum.Enum):
        if not isinstance(value, expected):
            problems.append(f"{where}: expected {expected.__name__}, got {type(value).__name__} {_short(value)}")
        return
    if isinstance(expected, type) and issubclass(expected, msgspec.Struct):
        if not isinstance(value, expected):
            problems.append(f"{where}: expected {expected.__name__}, got {type(value).__name__} {_short(value)}")
            return
        hints = _struct_hints(expected)
        for field in expected.__struct_fields__:
            _check(getattr(value, field), hints[field], f"{where}.{field}", problems)
        return
    if expected in (str, int, bool, datetime):
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            problems.append(f"{where}: expected {expected.__name__}, got {type(value).__name__} {_short(value)}")
        return
    # Anything else (a type the contract does not use today) is not checked.


@cache
def _struct_hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _short(value: object) -> str:
    text = repr(value)
    return f"({text[:60]}...)" if len(text) > 60 else f"({text})"
