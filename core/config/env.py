"""``${VAR}`` and ``${VAR:-default}`` expansion in config strings, and secret detection.

Which values become secrets is spelt out in :mod:`hrkernel.config.secrets` (rules 1-4).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from hrkernel.config.secrets import is_secret_key, is_url_key, url_passwords
from hrkernel.config.validate import join
from hrkernel.errors import ConfigIssue

_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Expansion:
    """The outcome of expanding a whole TOML document."""

    data: dict[str, object]
    issues: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    shown_as: dict[str, str] = field(default_factory=dict)
    """Text that came from the environment → how to show it in an error (its ``${VAR}`` form)."""


@dataclass
class _Piece:
    name: str
    value: str
    from_env: bool


def expand(data: dict[str, object], environ: Mapping[str, str]) -> Expansion:
    """Expand every ``${...}`` reference; collect missing variables, secret values and what came
    from the environment. A credential-looking key (or table) holding a literal is warned about.
    """
    out = Expansion(data={})

    def walk(value: object, path: str, key: str, secret_table: bool) -> object:
        if isinstance(value, dict):
            return {k: walk(v, join(path, k), k, secret_table or is_secret_key(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, join(path, i), key, secret_table) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        pieces: list[_Piece] = []

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in environ:
                pieces.append(_Piece(name, environ[name], True))
                return environ[name]
            if default is not None:
                pieces.append(_Piece(name, default, False))
                return default
            pieces.append(_Piece(name, "", False))
            out.issues.append(
                ConfigIssue(path, f"environment variable {name} is not set (referenced as ${{{name}}})")
            )
            return ""

        expanded = _REF.sub(substitute, value)
        if secret_table and not pieces and expanded:
            out.warnings.append(
                ConfigIssue(path, "holds a literal secret; write it as ${VAR} and set VAR in the environment")
            )
        _collect(out, value, expanded, pieces, secret_table, is_url_key(key))
        return expanded

    out.data = {k: walk(v, k, k, is_secret_key(k)) for k, v in data.items()}
    return out


def _collect(out: Expansion, raw: str, expanded: str, pieces: list[_Piece], secret_table: bool, url_key: bool) -> None:
    """Record the secrets (rules 1-4) and the environment-derived text of one expanded string."""
    secret: set[str] = set(url_passwords(expanded))  # rule 4
    if secret_table:  # rule 1: the whole value and every piece it is built from
        secret.add(expanded)
        secret.update(p.value for p in pieces)
    for p in pieces:
        if is_secret_key(p.name):  # rule 2
            secret.update((p.value, expanded))
    if url_key and any(p.from_env and p.value for p in pieces):  # rule 3
        secret.add(expanded)
    out.secrets.update(s for s in secret if s)
    for p in pieces:
        if p.from_env and p.value:
            out.shown_as[p.value] = f"${{{p.name}}}"
    if expanded != raw and any(p.from_env and p.value for p in pieces) and expanded not in out.shown_as:
        # A secret whole value is masked rather than shown with its literal parts.
        out.shown_as[expanded] = "***" if expanded in out.secrets else raw
