"""The kernel's error hierarchy.

Every error says what was wrong, where, and (where it can) what to do. Areas with many errors of
their own (``hrkernel.exchange``, ``hrkernel.resilience``) keep them in their own ``errors``
module, rooted at :class:`HrkernelError`.
"""

from __future__ import annotations

from dataclasses import dataclass


class HrkernelError(Exception):
    """Base class of every error the kernel raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One thing wrong with a config file: where (key path or line) and what."""

    path: str
    """Dotted key path such as ``ha.groups.market_data.mode``, or ``line 12, column 3``."""
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigKeyError(ValueError):
    """Raised by a config Struct's ``__post_init__`` when one key (``key``, relative to the
    Struct's table; a tuple of segments for nested keys) holds a bad value or a bad combination;
    the validator reports it at the full key path, e.g. ``ha.groups.pool.min_active``."""

    def __init__(self, key: str | tuple[str, ...], message: str) -> None:
        self.key = key
        super().__init__(message)


class ConfigError(HrkernelError):
    """A config file could not be used. Carries *every* issue found, not only the first."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        count = len(self.issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        noun = "error" if count == 1 else "errors"
        super().__init__(f"{source}: {count} config {noun}\n{lines}")


class PluginError(HrkernelError):
    """A plugin failed to import or raised inside a hook."""

    def __init__(self, plugin: str, distribution: str | None, reason: str) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.reason = reason
        dist = f" (distribution {distribution})" if distribution else ""
        super().__init__(f"plugin {plugin!r}{dist} failed: {reason}")


class StartupError(HrkernelError):
    """A component failed to start; the kernel stopped the ones already started."""

    def __init__(self, component: str, reason: str) -> None:
        self.component = component
        self.reason = reason
        super().__init__(f"component {component!r} failed to start: {reason}")
