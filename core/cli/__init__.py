"""``hrkernel`` command line (internal). Plugins add commands through ``hr_register_commands``."""

from hrkernel.cli.main import cli, main

__all__ = ["cli", "main"]
