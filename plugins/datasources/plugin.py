"""Entry point of the built-in datasources plugin. Imports only the kernel's public API."""

from __future__ import annotations
