"""Which components a config produces, and in what order they start.

Start order is dependency order; shutdown runs it backwards, which gives the graceful sequence
the map asks for: intake stops first, then in-flight work drains, then state is flushed, then
connections close. Each area contributes one builder below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from hrkernel.alerts.build import build_alerts
from hrkernel.bus.component import build_bus
from hrkernel.ha.component import build_ha
from hrkernel.kernel.component import PluginComponent
from hrkernel.kernel.event_feed import build_event_feed
from hrkernel.orders.component import build_orders
from hrkernel.orders.routing import build_routing
from hrkernel.resilience.component import build_resilience
from hrkernel.signals.component import build_signals
from hrkernel.web.app import build_web

if TYPE_CHECKING:
    from hrkernel.kernel.kernel import Kernel


def build_exchanges(kernel: Kernel) -> None:
    """Every exchange behind the kernel's wrapper (breakers per endpoint group, timeouts, read
    retries, run-time contract checks raising a critical alert that names the plugin)."""
    from hrkernel.errors import PluginError
    from hrkernel.exchange.guarded import GuardedExchange
    from hrkernel.exchange.shapes import contract_problems

    alerts = kernel.get("alerts")
    for item in kernel.plugin_config.exchanges:
        obj = item.registration.factory(item.config, kernel.context.for_component(item.id))
        problems = contract_problems(obj)
        if problems:
            # `hrkernel check` and start-up stop here, naming the plugin, instead of a TypeError
            # in reconciliation once trading has begun.
            raise PluginError(item.registration.plugin, None,
                              f"[exchanges.{item.id}] does not fit the exchange contract: " + "; ".join(problems))
        guarded = GuardedExchange(obj, exchange_id=item.id, plugin=item.registration.plugin,
                                  config=item.resilience, breach=contract_alert(alerts, item.id))
        kernel.add(PluginComponent(f"exchange:{item.id}", "exchange", guarded, item.registration.plugin))


def contract_alert(alerts: Any, exchange_id: str) -> Callable[[str, str], Awaitable[None]]:
    """The critical alert raised when exchange ``exchange_id``'s plugin breaks the contract."""
    async def breach(method: str, message: str) -> None:
        if alerts is not None:
            await alerts.send_alert(source="exchange", level="critical",
                                    title=f"exchange plugin broke the contract: {exchange_id}.{method}",
                                    message=message, context={"exchange": exchange_id, "method": method})
    return breach


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
    build_event_feed,  # publishes what orders/ledger/alerts did; stops (last drain) before orders closes
    build_health,
    build_signals,  # before web: the web app mounts its route
    build_routing,  # signals → orders; stops before the pipeline halts
    build_web,  # last: starts after what it shows, stops first (no actions during drain)
]


def assemble(kernel: Kernel) -> None:
    for builder in BUILDERS:
        builder(kernel)
