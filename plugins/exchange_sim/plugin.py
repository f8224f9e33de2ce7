"""Entry point of the built-in sim plugin. Imports only the kernel's public API."""

from __future__ import annotations
