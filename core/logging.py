"""Structured logging: JSON lines in production, a readable console in a terminal, secrets redacted.

:func:`configure` is called once by the CLI. The redaction processor runs last before rendering,
so nothing a component binds or passes (however deep inside a dict, list or exception text) can
carry a configured secret or a credential-looking key's value to the output.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from hrkernel.config.secrets import is_secret_key

REDACTED = "***"


class Redactor:
    """structlog processor replacing secret values and credential-looking keys with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        # Longest first so a secret that contains another is replaced whole; very short values
        # would redact innocent text everywhere, so they are only matched as whole values.
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._exact = frozenset(values)
        long_values = [re.escape(v) for v in values if len(v) >= 4]
        self._pattern = re.compile("|".join(long_values)) if long_values else None

    def _scrub(self, value: Any, depth: int = 0) -> Any:
        if depth > 8:
            return value
        if isinstance(value, str):
            if value in self._exact:
                return REDACTED
            return self._pattern.sub(REDACTED, value) if self._pattern else value
        if isinstance(value, dict):
            return {
                k: REDACTED if isinstance(k, str) and is_secret_key(k) and v not in (None, "")
                else self._scrub(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            items = [self._scrub(v, depth + 1) for v in value]
            return items if isinstance(value, list) else type(value)(items)
        if isinstance(value, int | float | bool) or value is None:
            return value
        # Anything else (exceptions, URLs, structs) is rendered as text first, then scrubbed.
        return self._scrub(str(value), depth + 1) if self._pattern else value

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            value = event_dict[key]
            if is_secret_key(key) and value not in (None, ""):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self._scrub(value)
        return event_dict


_redactor = Redactor()


def add_secrets(secrets: Iterable[str]) -> None:
    """Register more secret values to redact (e.g. once the config has been read)."""
    _redactor.set_secrets(set(_redactor._exact) | set(secrets))


def configure(level: str = "info", fmt: str = "auto", secrets: Iterable[str] = (), stream: Any = None) -> None:
    """Set up structlog for the process. ``fmt``: ``auto`` | ``json`` | ``console``."""
    stream = stream or sys.stdout
    _redactor.set_secrets(secrets)
    use_console = fmt == "console" or (fmt == "auto" and hasattr(stream, "isatty") and stream.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=True)
        if use_console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks become text before redaction, in both renderers, so they are scrubbed too.
        structlog.processors.format_exc_info,
        _redactor,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None, **bound: Any) -> Any:
    """A lazy structlog logger: it picks up :func:`configure` even when created at import time."""
    if name:
        bound = {"module": name, **bound}
    return structlog.get_logger(**bound)
