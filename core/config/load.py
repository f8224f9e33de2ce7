"""Read hr.toml: TOML syntax, ``${VAR}`` expansion, validation into :class:`Config`."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hrkernel.config.env import expand
from hrkernel.config.schema import Config
from hrkernel.config.secrets import conceal, shown_as_mask
from hrkernel.config.validate import decode, showing_env
from hrkernel.errors import ConfigError, ConfigIssue

_TOML_POSITION = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$")
_TOML_AT_END = re.compile(r"^(.*) \(at end of document\)$")


@dataclass
class LoadedConfig:
    """A validated config with what was learnt while reading it."""

    config: Config
    source: str
    raw: dict[str, object]
    """The expanded TOML data, for plugin tables validated later."""
    secrets: frozenset[str] = frozenset()
    """Values masked as ``***`` in logs, alerts and CLI output (rules in :mod:`hrkernel.config.secrets`)."""
    warnings: list[ConfigIssue] = field(default_factory=list)
    env_shown_as: Mapping[str, str] = field(default_factory=dict)
    """Environment-derived text → its ``${VAR}`` form (``***`` for a secret whole value): how a
    rejected value is quoted (:func:`hrkernel.config.validate.showing_env`)."""

    def conceal(self, text: str) -> str:
        """``text`` with every secret masked as ``***``."""
        return conceal(text, shown_as_mask(self.secrets))

    def error(self, issues: Iterable[ConfigIssue]) -> ConfigError:
        """A :class:`ConfigError` for this file whose messages carry no secret."""
        return concealed_error(self.source, issues, self.secrets)


def concealed_error(source: str, issues: Iterable[ConfigIssue], secrets: Iterable[str]) -> ConfigError:
    mask = shown_as_mask(secrets)
    return ConfigError(source, [ConfigIssue(i.path, conceal(i.message, mask)) for i in issues])


def _position(text: str, offset: int) -> str:
    before = text[:offset]
    line = before.count("\n") + 1
    return f"line {line}, column {offset - (before.rfind(chr(10)) + 1) + 1}"


def parse_toml(text: str, source: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.match(message)
        at_end = _TOML_AT_END.match(message)
        if match:
            what, line, column = match.groups()
            issue = ConfigIssue(f"line {line}, column {column}", f"invalid TOML: {what}")
        elif at_end:
            # tomllib names no line when the error is at the very end: the last line is where it is.
            issue = ConfigIssue(_position(text, len(text)), f"invalid TOML at end of file: {at_end.group(1)}")
        else:
            issue = ConfigIssue("", f"invalid TOML: {message}")
        raise ConfigError(source, [issue]) from None


def decode_utf8(data: bytes, source: str) -> str:
    """The file's text; a byte that is not UTF-8 is reported by line, column and byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        bad = data[exc.start : exc.end].hex(" ")
        raise ConfigError(source, [ConfigIssue(
            f"line {line}, column {column}",
            f"not UTF-8 (byte {bad} at offset {exc.start}); save the file as UTF-8",
        )]) from None


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Load and validate a config file; raises :class:`ConfigError` listing every issue."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, [ConfigIssue("", "file not found")]) from None
    except OSError as exc:
        raise ConfigError(source, [ConfigIssue("", f"cannot read: {exc.strerror or exc}")]) from None
    return load_config_text(decode_utf8(data, source), source, environ)


def load_config_sections(
    path: str | os.PathLike[str], sections: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Like :func:`load_config`, reading only the top-level ``sections`` (others keep their
    defaults): a command that reads ``[kernel]`` and ``[alerts]`` is not stopped by an unset
    ``${VAR}`` in ``[webhook]``."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, [ConfigIssue("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [ConfigIssue("", f"cannot read: {exc}")]) from None
    data = {k: v for k, v in parse_toml(text, source).items() if k in sections}
    return _from_data(data, source, environ)


def load_config_text(
    text: str, source: str = "<string>", environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    return _from_data(parse_toml(text, source), source, environ)


def _from_data(data: dict[str, object], source: str, environ: Mapping[str, str] | None) -> LoadedConfig:
    expansion = expand(data, os.environ if environ is None else environ)
    with showing_env(expansion.shown_as):
        config, issues = decode(expansion.data, Config)
    issues = expansion.issues + issues
    if issues or config is None:
        raise concealed_error(source, issues, expansion.secrets)
    return LoadedConfig(
        config=config,
        source=source,
        raw=expansion.data,
        secrets=frozenset(expansion.secrets),
        warnings=expansion.warnings,
        env_shown_as=expansion.shown_as,
    )
