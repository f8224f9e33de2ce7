"""Entry point of the built-in nobitex plugin. Imports only the kernel's public API."""

from __future__ import annotations
