"""Entry point of the built-in alerts plugin. Imports only the kernel's public API."""

from __future__ import annotations
