"""What several commands share: loading config and plugins with clear errors and exit codes."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from hrkernel.config import LoadedConfig, load_config, load_config_sections
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


def load_sections(path: str, *sections: str) -> LoadedConfig:
    """Only the sections a read command needs (``kernel`` is always read for ``data_dir``)."""
    try:
        return load_config_sections(path, ("kernel", *sections))
    except ConfigError as exc:
        fail(str(exc))


def config_argument(fn: Any) -> Any:
    """The config file, one convention for every command: a positional ``CONFIG`` (default
    ``hr.toml``), with ``--config`` accepted as an alias so older invocations keep working."""
    fn = click.argument("config_arg", metavar="[CONFIG]", required=False,
                        type=click.Path(dir_okay=False))(fn)
    return click.option("--config", "config_opt", type=click.Path(dir_okay=False), hidden=True,
                        help="the same as the CONFIG argument")(fn)


def required_config(fn: Any) -> Any:
    """:func:`config_argument` for commands that need a config: the function receives it as
    ``config`` (hr.toml in this folder when none is given; an error when there is none)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, config_arg: str | None = None, config_opt: str | None = None, **kw: Any) -> Any:
        config = pick_config(config_arg, config_opt)
        if config is None:
            fail("no config given and no hr.toml here: give it as the CONFIG argument")
        return fn(*args, config=config, **kw)

    return config_argument(wrapper)


def pick_config(config_arg: str | None, config_opt: str | None, default: str | None = "hr.toml") -> str | None:
    """The config given either way; else ``default`` (hr.toml, when it exists in this folder)."""
    if config_arg and config_opt and config_arg != config_opt:
        fail(f"two config files given ({config_arg} and --config {config_opt}); give one")
    if config_arg or config_opt:
        return config_arg or config_opt
    from pathlib import Path

    return default if default and Path(default).exists() else None


def fmt_amount(value: object) -> str:
    """A number as a person reads it: ``0.01`` not ``0.010000000000000000``, ``0`` not ``0E-18``."""
    from decimal import Decimal, InvalidOperation

    if value is None:
        return "-"
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if d == 0:
        return "0"
    return format(d.normalize(), "f")


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
