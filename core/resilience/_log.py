"""A logger resolved on first use.

``hrkernel.logging`` imports the config package, whose schema imports
``hrkernel.resilience.config`` (and so this package): binding a logger at import time would close
that cycle. Resolving it on first use keeps every module importable in any order.
"""

from __future__ import annotations

from typing import Any


class LazyLogger:
    __slots__ = ("_name", "_real")

    def __init__(self, name: str) -> None:
        self._name = name
        self._real: Any = None

    def __getattr__(self, attr: str) -> Any:
        real = self._real
        if real is None:
            from hrkernel.logging import get_logger

            real = self._real = get_logger(self._name)
        return getattr(real, attr)


def get_logger(name: str) -> Any:
    return LazyLogger(name)
