"""Read hr.toml: TOML syntax, ``${VAR}`` expansion, validation into :class:`Config`."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hrkernel.config.env import expand
from hrkernel.config.schema import Config
from hrkernel.config.validate import decode
from hrkernel.errors import ConfigError, ConfigIssue

_TOML_POSITION = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$")


@dataclass
class LoadedConfig:
    """A validated config with what was learnt while reading it."""

    config: Config
    source: str
    raw: dict[str, object]
    """The expanded TOML data, for plugin tables validated later."""
    secrets: frozenset[str] = frozenset()
    warnings: list[ConfigIssue] = field(default_factory=list)


def parse_toml(text: str, source: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.match(str(exc))
        if match:
            what, line, column = match.groups()
            issue = ConfigIssue(f"line {line}, column {column}", f"invalid TOML: {what}")
        else:
            issue = ConfigIssue("", f"invalid TOML: {exc}")
        raise ConfigError(source, [issue]) from None


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Load and validate a config file; raises :class:`ConfigError` listing every issue."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, [ConfigIssue("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [ConfigIssue("", f"cannot read: {exc}")]) from None
    return load_config_text(text, source, environ)


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
    config, issues = decode(expansion.data, Config)
    issues = expansion.issues + issues
    if issues or config is None:
        raise ConfigError(source, issues)
    return LoadedConfig(
        config=config,
        source=source,
        raw=expansion.data,
        secrets=frozenset(expansion.secrets),
        warnings=expansion.warnings,
    )
