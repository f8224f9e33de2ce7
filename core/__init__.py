"""hrkernel: a high-reliability kernel for automated crypto trading.

The public surface for plugin authors is small and documented:

- ``hrkernel.hookimpl``: the marker for hook implementations;
- ``hrkernel.spec``: the hook specifications (the plugin contract);
- ``hrkernel.types``: value types shared with plugins (config base struct, durations, amounts,
  health results, the kernel context a plugin is handed);
- ``hrkernel.errors``: the error hierarchy;
- ``hrkernel.exchange``: the exchange contract (protocol, order/fill structs, typed errors);
- ``hrkernel.resilience``: breakers, retry, rate limiting, pools, usable by any plugin.
- ``hrkernel.testing``: the conformance kit an exchange plugin runs in its own tests.

Everything else (``hrkernel.kernel``, ``hrkernel.config``, ``hrkernel.plugins``, ``hrkernel.cli``,
...) is internal and may change without notice. ``tests/test_plugin_boundary.py`` keeps the
built-in plugins on the public surface. ``hrkernel.compat`` is for applications written against
the design documents' API (docs/compat.md), not for plugins.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "hrkernel"
"""The pluggy project name and the entry-point group plugins register under."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Decorate a plugin's hook implementations with this marker."""

__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
