"""A click group that imports a command's module only when that command is used.

``hrkernel --help`` has to name every command, but importing every command's module to do so
pulls in DuckDB, the web stack, Redis clients and the simulator: several times the
interpreter's own start-up. :class:`LazyGroup` lists its built-in commands from a table (name,
``module:attribute``, the short help) and imports a module on :meth:`~LazyGroup.get_command`.
``tests/kernel/test_kernel_cli_lazy.py`` checks the table's help against each command's real
help, so the two cannot drift apart.

Plugin commands cannot be listed without importing the plugins, so the group discovers the
plugins and calls ``hr_register_commands`` the first time it needs a command it does not know,
or the whole list (``--help``). A built-in command never triggers plugin discovery. What keeps
``--help`` fast with plugins is the contract in :func:`hrkernel.spec.hr_register_commands`:
plugin modules and the command modules they register import nothing heavy at the top.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class LazyCommand:
    """Where a built-in command lives and what ``--help`` says of it without importing it."""

    target: str
    """``"package.module:attribute"``: the click command object."""
    short_help: str
    """The command's one-line help as click derives it (``Command.get_short_help_str``)."""

    def load(self) -> click.Command:
        module_name, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is {type(command).__name__}, not a click command")
        return command


class LazyGroup(click.Group):
    """A group whose built-in commands are imported on use and whose plugins load on demand.

    ``lazy`` maps command names to :class:`LazyCommand`. ``load_plugins(group)`` is called at
    most once, when a name is not built in or the full list is wanted; it adds the plugins'
    commands to ``group``. A plugin command with a built-in's name is refused with a warning
    (the built-in stays), as a command line whose meaning depends on installed plugins would be
    a trap.
    """

    def __init__(
        self,
        *args: Any,
        lazy: Mapping[str, LazyCommand],
        load_plugins: Callable[[click.Group], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)
        self._load_plugins = load_plugins
        self._plugins_state = "pending"  # pending → loading → loaded

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if self._plugins_state == "loading" and name in self.lazy:
            click.echo(f"warning: a plugin's command {name!r} is ignored: it is a built-in "
                       f"command's name", err=True)
            return
        super().add_command(cmd, name)

    def plugins_loaded(self) -> None:
        """Discover the plugins and let them add their commands (once)."""
        if self._plugins_state != "pending" or self._load_plugins is None:
            return
        self._plugins_state = "loading"
        try:
            self._load_plugins(self)
        finally:
            self._plugins_state = "loaded"

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.lazy.get(cmd_name)
        if entry is not None:
            command = self.commands.get(cmd_name)
            if command is None:
                command = self.commands[cmd_name] = entry.load()
            return command
        if cmd_name not in self.commands:
            self.plugins_loaded()
        return self.commands.get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.plugins_loaded()
        return sorted(set(self.lazy) | set(self.commands))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's own version calls get_command() for every name, importing every module; this
        # one takes a not-yet-imported built-in's help from the table and shortens it the way
        # click does (a stand-in Command carrying that help), so the output is the same.
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None and name in self.lazy:
                command = click.Command(name, help=self.lazy[name].short_help)
            if command is None or command.hidden:
                continue
            commands.append((name, command))
        if not commands:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in commands)
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in commands])
