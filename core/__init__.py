"""hrkernel: a high-reliability kernel for automated crypto trading.

The public surface for plugin authors is listed here and nowhere else (the plugin-boundary test,
``tests/kernel/test_plugin_boundary.py``, reads this list: built-in plugins import nothing
outside it, and what the kernel hands plugins at run time is on it too):

- ``hrkernel``: ``hookimpl`` (the marker for hook implementations), ``PROJECT_NAME``,
  ``__version__``;
- ``hrkernel.spec``: the hook specifications (the plugin contract);
- ``hrkernel.types``: value types shared with plugins (config base struct, durations, amounts,
  health results, the kernel context a plugin is handed and the event bus it gets from it);
- ``hrkernel.errors``: the error hierarchy;
- ``hrkernel.exchange``: the exchange contract (protocol, order/fill structs, typed errors), with
  its submodules;
- ``hrkernel.resilience``: breakers, retry, rate limiting, pools, usable by any plugin, with its
  submodules;
- ``hrkernel.testing``: the conformance kit an exchange plugin runs in its own tests, with its
  submodules;
- ``hrkernel.alerts.types``: alert levels and sources (``AlertSource.define`` for a plugin's own);
- ``hrkernel.bus.events``: the typed events published on the bus (market data, orders, fills).

At run time ``context.component(name)`` hands a plugin only ``bus`` (an
``hrkernel.types.EventBus``), ``exchange:<id>`` (an ``hrkernel.exchange.Exchange``) and
``datasource:<id>`` (the object a data-source plugin built).

Everything else (``hrkernel.kernel``, ``hrkernel.lifecycle``, ``hrkernel.config``,
``hrkernel.plugins``, ``hrkernel.cli``, the other modules of each area, ...) is internal and may
change without notice. ``hrkernel.compat`` is for applications written against the design
documents' API (docs/compat.md), not for plugins.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "hrkernel"
"""The pluggy project name and the entry-point group plugins register under."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Decorate a plugin's hook implementations with this marker."""

__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
