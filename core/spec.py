"""The plugin contract: hook specifications of the ``hrkernel`` project (public API).

A plugin is a module with functions decorated by :data:`hrkernel.hookimpl` whose names match the
functions below, registered under the ``hrkernel`` entry-point group::

    [project.entry-points.hrkernel]
    my_plugin = "my_package.plugin"

Registration hooks receive a ``register`` callback rather than returning lists. They run once at
start-up (for ``hrkernel run``, ``check`` and ``plugins``) before plugin config tables are
validated, so they must be cheap and synchronous: hand over classes and factories, and let the
objects they build do the async work. A plugin that raises in a registration hook is reported by
name with its distribution and the exception; ``[plugins] strict`` decides whether start-up stops
(exit code 2) or goes on without that plugin.

Lifecycle hooks are notifications: an exception there is logged with the plugin's name and
otherwise ignored, because a notification must never stop a trading kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from hrkernel import PROJECT_NAME

if TYPE_CHECKING:
    import click

    from hrkernel.types import ConfigStruct, KernelContext

hookspec = pluggy.HookspecMarker(PROJECT_NAME)

Factory = Callable[[Any, "KernelContext"], Any]
"""``factory(config, context) -> instance``: ``config`` is an instance of the registered struct."""


class Register(Protocol):
    """The callback a registration hook receives."""

    def __call__(
        self, name: str, factory: Factory, *, config: type[ConfigStruct] | None = None
    ) -> None:
        """Offer one type called ``name``.

        ``config`` is the struct the kernel validates the type's hr.toml table against (errors
        read like the kernel's own, with the full key path); ``None`` means the type takes no
        options. ``factory(config, context)`` builds one instance.
        """


@hookspec
def hr_register_exchanges(register: Register) -> None:
    """Offer exchange types.

    Called once at start-up. For each type call ``register(name, factory, config=Struct)``.
    An exchange instance is built for every ``[exchanges.<id>]`` table whose ``type`` (default:
    the table's id) names this type; the built object must implement
    :class:`hrkernel.exchange.Exchange` and is started and stopped by the kernel.
    """


@hookspec
def hr_register_datasources(register: Register) -> None:
    """Offer market-data source types.

    Called once at start-up. Built for each ``[datasources.<id>]`` table whose ``type`` names
    the registered type; the object is started and stopped by the kernel.
    """


@hookspec
def hr_register_alert_channels(register: Register) -> None:
    """Offer alert-channel types (console, webhook, Telegram, ...).

    Called once at start-up. Built for each ``[alerts.channels.<id>]`` table whose ``type``
    names the registered type.
    """


@hookspec
def hr_register_health_checks(register: Register) -> None:
    """Offer health checks.

    Called once at start-up. Every registered check runs inside a started kernel, on the
    interval and timeout of its optional ``[health.checks.<name>]`` table (keys ``interval``,
    ``timeout``, ``enabled``; the remaining keys are validated against ``config``). The factory
    must return an object with ``async def check(self) -> hrkernel.types.HealthResult``.
    """


@hookspec
def hr_register_commands(cli: click.Group) -> None:
    """Add commands to the ``hrkernel`` command line.

    Called when the command line needs a command it does not have built in, or the list of all
    commands (``hrkernel --help``), before that command's arguments are parsed. Call
    ``cli.add_command(command)`` or use ``@cli.command()``. A name a built-in command already
    has is refused with a warning. A plugin that raises is reported and its commands are
    missing; the others still work.

    Keep it light: ``hrkernel --help`` imports every plugin module to call this hook, so the
    plugin module and the modules holding its commands must not import anything heavy at their
    top (DuckDB, the web stack, Redis or AMQP clients, httpx, asyncio): import those
    inside the command's function, or inside the other hooks, which run only when the kernel is
    built. ``tests/kernel/test_kernel_cli_lazy.py`` checks this for the installed plugins.
    """


@hookspec
def hr_kernel_started(context: KernelContext) -> None:
    """Notification: every component started and the kernel logged ``ready``."""


@hookspec
def hr_leadership_gained(context: KernelContext, fencing_token: int) -> None:
    """Notification: this instance became the leader with ``fencing_token``.

    Called after start-up reconciliation finished and before the first order is submitted.
    """


@hookspec
def hr_leadership_lost(context: KernelContext, reason: str) -> None:
    """Notification: this instance stopped being the leader (new orders already stopped)."""


@hookspec
def hr_shutting_down(context: KernelContext) -> None:
    """Notification: graceful shutdown began; components are about to be stopped."""
