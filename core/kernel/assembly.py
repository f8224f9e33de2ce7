"""Which components a config produces, and in what order they start.

Start order is dependency order; shutdown runs it backwards, which gives the graceful sequence
the map asks for: intake stops first, then in-flight work drains, then state is flushed, then
connections close. Each area contributes one builder below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hrkernel.alerts.build import build_alerts
from hrkernel.bus.component import build_bus
from hrkernel.ha.component import build_ha
from hrkernel.kernel.component import PluginComponent
from hrkernel.kernel.routing import build_routing
from hrkernel.orders.component import build_orders
from hrkernel.resilience.component import build_resilience
from hrkernel.signals.component import build_signals
from hrkernel.web.app import build_web

if TYPE_CHECKING:
    from hrkernel.kernel.kernel import Kernel


def build_exchanges(kernel: Kernel) -> None:
    for item in kernel.plugin_config.exchanges:
        obj = item.registration.factory(item.config, kernel.context.for_component(item.id))
        kernel.add(PluginComponent(f"exchange:{item.id}", "exchange", obj, item.registration.plugin))


def build_datasources(kernel: Kernel) -> None:
    for item in kernel.plugin_config.datasources:
        obj = item.registration.factory(item.config, kernel.context.for_component(item.id))
        kernel.add(PluginComponent(f"datasource:{item.id}", "datasource", obj, item.registration.plugin))


def build_health(kernel: Kernel) -> None:
    from hrkernel.ha.health import HealthMonitor

    kernel.add(HealthMonitor.from_kernel(kernel))


BUILDERS: list[Callable[[Kernel], None]] = [
    build_bus,  # early: everything else may publish or consume
    build_ha,
    build_resilience,  # before the exchanges that use its breakers/limiters; stops after them
    build_alerts,
    build_exchanges,
    build_datasources,
    build_orders,  # after the exchanges it trades on; stops before them
    build_health,
    build_signals,  # before web: the web app mounts its route
    build_routing,  # signals → orders; stops before the pipeline halts
    build_web,  # last: starts after what it shows, stops first (no actions during drain)
]


def assemble(kernel: Kernel) -> None:
    for builder in BUILDERS:
        builder(kernel)
