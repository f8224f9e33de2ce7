"""``${VAR}`` and ``${VAR:-default}`` expansion in config strings, and secret detection."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from hrkernel.config.secrets import is_secret_key
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


def expand(data: dict[str, object], environ: Mapping[str, str]) -> Expansion:
    """Expand every ``${...}`` reference; collect missing variables and secret values.

    A value is treated as a secret (redacted from every log line) when its key looks like a
    credential or when it came from a variable whose name does. A credential-looking key that
    holds a literal instead of a reference is reported as a warning.
    """
    out = Expansion(data={})

    def walk(value: object, path: str, key: str) -> object:
        if isinstance(value, dict):
            return {k: walk(v, join(path, k), k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, join(path, i), key) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        referenced: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            referenced.append(name)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            out.issues.append(
                ConfigIssue(path, f"environment variable {name} is not set (referenced as ${{{name}}})")
            )
            return ""

        expanded = _REF.sub(substitute, value)
        secret_key = is_secret_key(key)
        if secret_key and not referenced and expanded:
            out.warnings.append(
                ConfigIssue(path, "holds a literal secret; write it as ${VAR} and set VAR in the environment")
            )
        if expanded and (secret_key or any(is_secret_key(name) for name in referenced)):
            out.secrets.add(expanded)
        return expanded

    out.data = {k: walk(v, k, k) for k, v in data.items()}
    return out
