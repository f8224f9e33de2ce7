"""Plugin discovery through the ``hrkernel`` entry-point group, and what plugins registered.

Every hook implementation is called one plugin at a time, so an exception is always attributed
to the plugin (and distribution) that raised it. ``strict`` decides what a failure means:
stop start-up (:class:`~hrkernel.errors.PluginError`, exit code 2) or log it, mark the plugin
failed and go on without it.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import pluggy

from hrkernel import PROJECT_NAME, spec
from hrkernel.errors import PluginError

PluginState = Literal["loaded", "failed", "disabled"]

#: registration hook name → the kind of thing it registers (as shown by ``hrkernel plugins``)
REGISTRATION_HOOKS: dict[str, str] = {
    "hr_register_exchanges": "exchange",
    "hr_register_datasources": "datasource",
    "hr_register_alert_channels": "alert_channel",
    "hr_register_health_checks": "health_check",
}


def _log() -> Any:
    # Imported on first use: ``hrkernel --help`` discovers plugins, and structured logging (with
    # the config package it reads secrets from) is a large part of a start-up's import time.
    from hrkernel.logging import get_logger

    return get_logger("hrkernel.plugins")


@dataclass
class PluginRecord:
    """One discovered plugin and what became of it."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    state: PluginState = "loaded"
    reason: str | None = None
    hooks: list[str] = field(default_factory=list)
    provides: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "state": self.state,
            "reason": self.reason,
            "hooks": self.hooks,
            "provides": self.provides,
        }


@dataclass(frozen=True)
class Registration:
    """A type a plugin offered through a registration hook."""

    kind: str
    name: str
    factory: Callable[[Any, Any], Any]
    config: type | None
    plugin: str


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _name_and_version(dist: importlib.metadata.Distribution) -> tuple[str | None, str | None]:
    """A distribution's name and version, read from its metadata's header only.

    ``Distribution.name`` and ``.version`` each parse the whole metadata file with the email
    parser, long description included: for a package that ships its README that is most of the
    time ``hrkernel --help`` takes. The header (everything before the first blank line) holds
    both fields.
    """
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    header = email.parser.HeaderParser().parsestr(text.partition("\n\n")[0])
    if header.get("Name") is None:  # not the layout the core metadata spec describes
        return dist.name, dist.version
    return header.get("Name"), header.get("Version")


class PluginHost:
    """Owns the pluggy manager, the plugin records and the registries."""

    def __init__(self, *, strict: bool = True, disable: Iterable[str] = (), quiet: bool = False) -> None:
        self.strict = strict
        self.quiet = quiet
        self.disable = set(disable)
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(spec)
        self.records: dict[str, PluginRecord] = {}
        self.registry: dict[str, dict[str, Registration]] = {k: {} for k in REGISTRATION_HOOKS.values()}
        self._collected = False

    # -- discovery ---------------------------------------------------------------------------

    def discover(self, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None) -> None:
        """Import and register every plugin of the entry-point group (minus disabled ones)."""
        eps = (
            entry_points
            if entry_points is not None
            else importlib.metadata.entry_points(group=PROJECT_NAME)
        )
        seen: set[str] = set()
        # One distribution usually provides several plugins (hrkernel itself provides five).
        about: dict[int, tuple[str | None, str | None]] = {}
        for ep in sorted(eps, key=lambda e: e.name):
            if ep.name in seen:
                continue
            seen.add(ep.name)
            dist = getattr(ep, "dist", None)
            if dist is not None and id(dist) not in about:
                about[id(dist)] = _name_and_version(dist)
            distribution, version = about[id(dist)] if dist is not None else (None, None)
            record = PluginRecord(
                name=ep.name, module=ep.value, distribution=distribution, version=version
            )
            self.records[ep.name] = record
            if ep.name in self.disable:
                record.state = "disabled"
                record.reason = "listed in [plugins] disable"
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a plugin's import may raise anything
                self._fail(record, f"import failed: {_describe(exc)}", exc)
                continue
            self._register(record, module)
        self._check_pending()

    def add(self, module: ModuleType | object, name: str, *, distribution: str | None = None) -> None:
        """Register an in-process plugin object (tests, embedding)."""
        record = PluginRecord(name=name, module=getattr(module, "__name__", repr(module)), distribution=distribution)
        self.records[name] = record
        if name in self.disable:
            record.state, record.reason = "disabled", "listed in [plugins] disable"
            return
        self._register(record, module)
        self._check_pending()

    def _register(self, record: PluginRecord, module: object) -> None:
        try:
            self.pm.register(module, name=record.name)
        except Exception as exc:
            self._fail(record, f"registration failed: {_describe(exc)}", exc)
            return
        record.hooks = sorted(
            caller.name for caller in self.pm.get_hookcallers(module) or []
        )

    def _check_pending(self) -> None:
        # pluggy accepts a misspelled hookimpl silently until check_pending() runs.
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            plugin = exc.plugin
            name = self.pm.get_name(plugin) or repr(plugin)
            record = self.records.get(name)
            if record is None:
                raise
            self._fail(record, f"invalid hook implementation: {exc}", exc)
            self._check_pending()

    def _fail(self, record: PluginRecord, reason: str, exc: BaseException | None = None) -> None:
        record.state = "failed"
        record.reason = reason
        plugin = self.pm.get_plugin(record.name)
        if plugin is not None:
            self.pm.unregister(plugin)
        for kind in self.registry.values():
            for key in [k for k, r in kind.items() if r.plugin == record.name]:
                del kind[key]
        record.provides = []
        if self.strict:
            raise PluginError(record.name, record.distribution, reason)
        if self.quiet:
            return
        _log().error(
            "plugin_failed",
            plugin=record.name,
            distribution=record.distribution,
            reason=reason,
            traceback="".join(traceback.format_exception(exc)) if exc else None,
        )

    # -- registration hooks ------------------------------------------------------------------

    def collect(self) -> None:
        """Call every registration hook, one plugin at a time, and fill the registries."""
        if self._collected:
            return
        self._collected = True
        for hook_name, kind in REGISTRATION_HOOKS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in reversed(caller.get_hookimpls()):
                record = self.records.get(impl.plugin_name)
                if record is None or record.state != "loaded":
                    continue
                register = self._registrar(kind, record)
                try:
                    impl.function(register=register)
                except Exception as exc:
                    self._fail(record, f"{hook_name} raised {_describe(exc)}", exc)

    def _registrar(self, kind: str, record: PluginRecord) -> spec.Register:
        def register(name: str, factory: Callable[[Any, Any], Any], *, config: type | None = None) -> None:
            if not isinstance(name, str) or not name:
                raise ValueError(f"{kind} name must be a non-empty string, got {name!r}")
            existing = self.registry[kind].get(name)
            if existing is not None and existing.plugin != record.name:
                raise ValueError(
                    f"{kind} {name!r} is already registered by plugin {existing.plugin!r}"
                )
            self.registry[kind][name] = Registration(kind, name, factory, config, record.name)
            record.provides.append(f"{kind} {name}")

        return register

    def registrations(self, kind: str) -> dict[str, Registration]:
        self.collect()
        return self.registry[kind]

    # -- notifications -----------------------------------------------------------------------

    def notify(
        self,
        hook_name: str,
        *,
        on_error: Callable[[str, Exception], None] | None = None,
        **kwargs: Any,
    ) -> None:
        """Call a lifecycle hook on every plugin; a raising plugin is logged, never fatal.

        ``on_error(plugin_name, exc)``, when given, reports a raising plugin instead of the log
        (the command line warns on stderr: its stdout is the command's output).
        """
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                if on_error is not None:
                    on_error(impl.plugin_name, exc)
                    continue
                _log().error(
                    "plugin_hook_failed",
                    plugin=impl.plugin_name,
                    hook=hook_name,
                    error=_describe(exc),
                    traceback="".join(traceback.format_exception(exc)),
                )

    def loaded(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.state == "loaded"]
