"""Decode plain TOML data into config structs, collecting *every* error with its key path.

msgspec stops at the first error it meets. A config file usually has several, and a user fixing
them one run at a time is a user who gives up, so this walks the struct's fields itself: unknown
and missing keys are found table by table, and each leaf value is converted by msgspec on its
own, so one bad value never hides the next.
"""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, TypeVar

import msgspec

from hrkernel.config.secrets import conceal, is_secret_key
from hrkernel.errors import ConfigIssue, ConfigKeyError
from hrkernel.types import Amount, Duration, SignedAmount

T = TypeVar("T")

_CUSTOM_PARSERS: dict[type, Any] = {
    Duration: Duration.parse,
    Amount: Amount.parse,
    SignedAmount: SignedAmount.parse,
}
_AT_PATH = re.compile(r" - at `\$(.*)`$")
_SHOWN_AS: ContextVar[Mapping[str, str]] = ContextVar("hrkernel_config_shown_as", default=MappingProxyType({}))


@contextmanager
def showing_env(shown_as: Mapping[str, str]) -> Iterator[None]:
    """While decoding, a rejected value that came from the environment is quoted as its
    ``${VAR}`` reference (``shown_as``: expanded text → how to show it), never in clear."""
    token = _SHOWN_AS.set(shown_as)
    try:
        yield
    finally:
        _SHOWN_AS.reset(token)


def hide_found(message: str, value: object) -> str:
    """``message`` with this rejected value, where it is quoted, replaced by its reference.

    Only this value, only quoted: an environment value that is also a word of the message (a
    choice such as 'redis' listed beside it) is left alone.
    """
    shown = _SHOWN_AS.get().get(value) if isinstance(value, str) else None
    if shown is None or not isinstance(value, str):
        return message
    return message.replace(repr(value), repr(shown)).replace(f'"{value}"', f'"{shown}"')


def dec_hook(tp: type, value: object) -> object:
    """msgspec decoding hook for the kernel's custom config types."""
    parser = _CUSTOM_PARSERS.get(tp)
    if parser is None:
        raise NotImplementedError(f"no decoder for {tp!r}")
    return parser(value)


_PLAIN_KEY = re.compile(r"[^.\[\]\"'\s]+")


def join(path: str, key: str | int) -> str:
    """``path.key`` (``path[i]`` for an index); a key that is empty or holds dots, brackets,
    quotes or spaces is quoted as TOML writes it (``[""]`` → ``""``) so the path stays readable."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not _PLAIN_KEY.fullmatch(key):
        key = json.dumps(key, ensure_ascii=False)
    return f"{path}.{key}" if path else key


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def _struct_of(tp: Any) -> type[msgspec.Struct] | None:
    """The Struct type behind ``tp`` (also through ``X | None``), or None."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        structs = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(structs) == 1:
            return _struct_of(structs[0])
    return None


def _choices(tp: Any) -> list[Any] | None:
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return [m.value for m in tp]
    if typing.get_origin(tp) is typing.Literal:
        return list(typing.get_args(tp))
    return None


def convert_value(value: object, tp: Any, path: str, issues: list[ConfigIssue]) -> object:
    """Convert one value; on failure append an issue at ``path`` and return None.

    The value found is quoted in the message, except under a credential-looking key or table
    (values from the environment are replaced by their ``${VAR}`` form by the loader).
    """
    describe = (lambda v: "a value (hidden: secret key)") if is_secret_key(path) else _describe
    struct = _struct_of(tp)
    if struct is not None:
        return convert_struct(value, struct, path, issues)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    # Containers are walked item by item so each bad item is reported under its own path.
    if origin is dict and args and args[0] is str:
        if not isinstance(value, dict):
            issues.append(ConfigIssue(path, f"expected a table, found {_describe(value)}"))
            return None
        return {k: convert_value(v, args[1], join(path, k), issues) for k, v in value.items()}
    if origin is list and args:
        if not isinstance(value, list):
            issues.append(ConfigIssue(path, f"expected an array, found {_describe(value)}"))
            return None
        return [convert_value(v, args[0], join(path, i), issues) for i, v in enumerate(value)]
    choices = _choices(tp)
    if choices is not None and value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        issues.append(ConfigIssue(path, f"expected one of {listed}, found {hide_found(describe(value), value)}"))
        return None
    # A number or flag written as a string is what ${VAR} expansion yields (port = "${PORT}"):
    # read it as the number it spells; anything else is still an error.
    lax = isinstance(value, str) and tp in (int, float, bool)
    try:
        return msgspec.convert(value, tp, dec_hook=dec_hook, strict=not lax)
    except msgspec.ValidationError as exc:
        message = str(exc)
        where = _AT_PATH.search(message)
        if where:
            message = message[: where.start()]
            inner = where.group(1)
            path = f"{path}{inner}" if path or inner.startswith("[") else inner.lstrip(".")
        if message.startswith("Expected"):
            message = message[0].lower() + message[1:] + f" ({describe(value)})"
        issues.append(ConfigIssue(path, hide_found(message, value)))
        return None


def convert_struct(
    data: object, struct: type[T], path: str, issues: list[ConfigIssue]
) -> T | None:
    """Build ``struct`` from a TOML table, appending every problem found to ``issues``."""
    if not isinstance(data, dict):
        issues.append(ConfigIssue(path, f"expected a table, found {_describe(data)}"))
        return None
    fields = msgspec.structs.fields(struct)  # type: ignore[arg-type]
    by_name = {f.encode_name: f for f in fields}
    before = len(issues)
    for key in data:
        if key not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            issues.append(ConfigIssue(join(path, key), f"unknown key (known keys here: {known})"))
    values: dict[str, Any] = {}
    for f in fields:
        if f.encode_name not in data:
            if f.required:
                issues.append(ConfigIssue(join(path, f.encode_name), "required key is missing"))
            continue
        values[f.name] = convert_value(data[f.encode_name], f.type, join(path, f.encode_name), issues)
    if len(issues) > before:
        return None
    try:
        return struct(**values)
    except ConfigKeyError as exc:
        where = path
        for segment in (exc.key,) if isinstance(exc.key, str) else exc.key:
            where = join(where, segment)
        issues.append(ConfigIssue(where, conceal(str(exc), _SHOWN_AS.get())))
        return None
    except (ValueError, TypeError, msgspec.ValidationError) as exc:
        # A check across fields may quote any of them: each environment value it holds is shown
        # as its reference (here the whole text is searched, so short values only where quoted).
        issues.append(ConfigIssue(path or "(top level)", conceal(str(exc), _SHOWN_AS.get())))
        return None


def decode(data: object, struct: type[T], path: str = "") -> tuple[T | None, list[ConfigIssue]]:
    """Decode ``data`` into ``struct``; returns the value (None on error) and every issue."""
    issues: list[ConfigIssue] = []
    value = convert_struct(data, struct, path, issues)
    return value, issues
