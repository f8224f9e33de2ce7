"""What several commands share: loading config and plugins with clear errors and exit codes."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from hrkernel.config import LoadedConfig, load_config
from hrkernel.errors import ConfigError, HrkernelError, PluginError
from hrkernel.plugins import PluginHost

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
"""Bad config, a failing plugin in strict mode, or a bad command-line argument."""


def fail(message: str, code: int = EXIT_CONFIG) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def unwrap(exc: BaseException) -> BaseException:
    """The one real error inside (possibly nested) single-member exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def load(path: str) -> LoadedConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(str(exc))


def discover(loaded: LoadedConfig | None, *, strict: bool | None = None, quiet: bool = False) -> PluginHost:
    plugins = loaded.config.plugins if loaded else None
    host = PluginHost(
        strict=plugins.strict if strict is None and plugins else bool(strict),
        disable=plugins.disable if plugins else (),
        quiet=quiet,
    )
    try:
        host.discover()
        host.collect()
    except PluginError as exc:
        fail(str(exc))
    return host


def build(loaded: LoadedConfig, host: PluginHost) -> Any:
    """Build the kernel; any error is printed without a secret or an environment value."""
    from hrkernel.kernel import Kernel

    try:
        return Kernel.build(loaded, host)
    except (ConfigError, PluginError) as exc:
        fail(loaded.conceal(str(exc)))
    except HrkernelError as exc:
        fail(loaded.conceal(str(exc)), EXIT_FAILURE)
    except Exception as exc:  # a plugin factory may raise anything
        fail(loaded.conceal(f"could not build the kernel: {type(exc).__name__}: {exc}"))
