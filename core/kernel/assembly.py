"""The composition root: which parts a config produces, what each is handed, in what order they start.

This is the only module that knows every area. Each area builds its part on
:class:`hrkernel.lifecycle.Component` and never imports :mod:`hrkernel.kernel`; a builder below
constructs the part from its config section and hands it its collaborators as typed handles
(the bus, the lease, the exchanges, the alert system) looked up with :func:`part`, so a part
that is missing or of another type than expected fails ``hrkernel check`` with
:class:`MissingPartError` naming it, instead of a feature quietly turning itself off.

Start order is dependency order; shutdown runs it backwards, which gives the graceful sequence
the map asks for: intake stops first, then in-flight work drains, then state is flushed, then
connections close.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from anyio.abc import TaskGroup

from hrkernel.alerts.config import AlertsSection
from hrkernel.alerts.manager import AlertSystem
from hrkernel.bus.component import BusComponent, make_bus
from hrkernel.errors import ConfigError, HrkernelError, PluginError
from hrkernel.exchange.guarded import GuardedExchange
from hrkernel.ha.component import HAComponent
from hrkernel.ha.config import HASection
from hrkernel.ha.health import CheckRun, HealthMonitor, OrdersHalt, _component_check
from hrkernel.kernel.event_feed import EventFeed
from hrkernel.lifecycle import Component, Lifecycle, PluginComponent
from hrkernel.orders.component import OrdersComponent
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.routing import GROUP as ROUTING_GROUP
from hrkernel.orders.routing import SignalRouter
from hrkernel.resilience.component import ResilienceComponent
from hrkernel.resilience.config import ResilienceSection
from hrkernel.signals.component import SignalsComponent
from hrkernel.signals.intake import WebhookIntake
from hrkernel.signals.outcomes import FILE as OUTCOMES_FILE
from hrkernel.web.app import WebComponent
from hrkernel.web.config import DashboardSection

if TYPE_CHECKING:
    from hrkernel.kernel.kernel import Kernel

P = TypeVar("P", bound=Component)


class MissingPartError(HrkernelError):
    """A part needs another that this kernel did not build, or that is not what it expects."""

    def __init__(self, needed_by: str, name: str, expected: type, found: object = None) -> None:
        self.needed_by = needed_by
        self.name = name
        what = f"{expected.__module__}.{expected.__qualname__}"
        if found is None:
            reason = "which this kernel did not build"
        else:
            reason = f"but the part of that name is a {type(found).__module__}.{type(found).__qualname__}"
        super().__init__(f"{needed_by} needs the part {name!r} ({what}), {reason}")


def part(kernel: Kernel, name: str, expected: type[P], needed_by: str) -> P:
    """The part ``name`` as an ``expected``; :class:`MissingPartError` if absent or of another type."""
    found = kernel.get(name)
    if not isinstance(found, expected):
        raise MissingPartError(needed_by, name, expected, found)
    return found


def optional_part(kernel: Kernel, name: str, expected: type[P], needed_by: str) -> P | None:
    """Like :func:`part`, for a collaborator the config may leave out (None when absent)."""
    return None if kernel.get(name) is None else part(kernel, name, expected, needed_by)


# -- one builder per area, in start order (see BUILDERS) -----------------------------------------

def build_bus(kernel: Kernel) -> None:
    kernel.add(BusComponent(make_bus(kernel.config.bus, kernel.config.kernel.instance_id)))


def build_ha(kernel: Kernel) -> None:
    """First after the bus: orders depend on it. The alert system is attached once built."""
    config = getattr(kernel.config, "ha", None) or HASection()
    kernel.add(HAComponent(
        config,
        kernel.config.kernel.instance_id,
        data_dir=kernel.data_dir,
        notify=lambda hook, **kw: kernel.host.notify(hook, context=kernel.context, **kw),
        # Trading starts only once every component (orders, exchanges) has started.
        ready=lambda: len(kernel.started) >= len(kernel.components),
        bus=part(kernel, "bus", BusComponent, "ha").bus,
        # Group members are parts named in [ha.groups.*]; HA looks them up when it starts (a
        # missing one stops start-up with GroupConfigError naming it).
        members=kernel.get,
    ))


def build_resilience(kernel: Kernel) -> None:
    section = getattr(kernel.config, "resilience", None) or ResilienceSection()
    kernel.add(ResilienceComponent(section, instance_id=kernel.config.kernel.instance_id))


def build_alerts(kernel: Kernel) -> None:
    """The ``alerts`` component, its channels validated like the rest of hr.toml."""
    from hrkernel.alerts.build import channels_from_config
    from hrkernel.alerts.events import KernelAlerts
    from hrkernel.config.validate import showing_env
    from hrkernel.resilience import registry

    config: AlertsSection = getattr(kernel.config, "alerts", None) or AlertsSection()
    if not config.enabled:
        return
    try:
        # A rejected value from the environment is quoted as its ${VAR}; secrets never appear.
        with showing_env(kernel.loaded.env_shown_as):
            channels = channels_from_config(config, kernel.host, kernel.context, source=kernel.loaded.source)
    except ConfigError as exc:
        raise kernel.loaded.error(exc.issues) from None
    system = AlertSystem(config, channels=channels, data_dir=kernel.data_dir,
                         instance_id=kernel.config.kernel.instance_id, secrets=kernel.loaded.secrets)
    kernel.add(system)
    # Breakers, health and lifecycle hooks raise alerts (see hrkernel.alerts.events).
    watcher = KernelAlerts(system, components=lambda: kernel.components)
    kernel.host.pm.register(watcher, name=f"hrkernel.alerts.events:{id(system)}")
    registry.add_listener(watcher.on_breaker)
    system.watch_health = (kernel.get, 1.0)  # reads an in-memory snapshot: cheap
    ha = optional_part(kernel, "ha", HAComponent, "alerts")
    if ha is not None:
        ha.attach_alerts(system)


class _ExchangeLifecycle:
    """The exchange contract's lifecycle (``start()`` … ``aclose()``) as a :class:`Lifecycle`."""

    def __init__(self, exchange: GuardedExchange) -> None:
        self.exchange = exchange

    async def start(self, tg: TaskGroup) -> None:
        await self.exchange.start(tg)

    async def stop(self) -> None:
        await self.exchange.aclose()


def build_exchanges(kernel: Kernel) -> None:
    """Every exchange behind the kernel's wrapper (breakers per endpoint group, timeouts, read
    retries, run-time contract checks raising a critical alert that names the plugin)."""
    from hrkernel.exchange.shapes import contract_problems

    alerts = optional_part(kernel, "alerts", AlertSystem, "exchanges")
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
        kernel.add(PluginComponent(f"exchange:{item.id}", "exchange", guarded, item.registration.plugin,
                                   lifecycle=_ExchangeLifecycle(guarded)))


def contract_alert(alerts: AlertSystem | None, exchange_id: str) -> Callable[[str, str], Awaitable[None]]:
    """The critical alert raised when exchange ``exchange_id``'s plugin breaks the contract."""
    async def breach(method: str, message: str) -> None:
        if alerts is not None:
            await alerts.send_alert(source="exchange", level="critical",
                                    title=f"exchange plugin broke the contract: {exchange_id}.{method}",
                                    message=message, context={"exchange": exchange_id, "method": method})
    return breach


def build_datasources(kernel: Kernel) -> None:
    """Every data source; the contract's lifecycle is :class:`Lifecycle` (``start(tg)``/``stop()``)."""
    for item in kernel.plugin_config.datasources:
        obj = item.registration.factory(item.config, kernel.context.for_component(item.id))
        lifecycle: Lifecycle | None = None
        if isinstance(obj, Lifecycle):
            lifecycle = obj
        elif any(hasattr(obj, method) for method in ("start", "stop", "aclose")):
            raise PluginError(item.registration.plugin, None,
                              f"[datasources.{item.id}]: a data source is started with `async start(tg)` "
                              f"and stopped with `async stop()`; {type(obj).__name__} has only part of that")
        kernel.add(PluginComponent(f"datasource:{item.id}", "datasource", obj, item.registration.plugin,
                                   lifecycle=lifecycle))


def build_orders(kernel: Kernel) -> None:
    """After the exchanges: the ``orders`` component, when exchanges exist."""
    config: OrdersSection = getattr(kernel.config, "orders", None) or OrdersSection()
    exchanges = {item.id: part(kernel, f"exchange:{item.id}", PluginComponent, "orders").obj
                 for item in kernel.plugin_config.exchanges}
    if not config.enabled or not exchanges:
        return
    ha = optional_part(kernel, "ha", HAComponent, "orders")
    replication = None
    if ha is not None and ha.replication_enabled():
        hc = ha.config
        replication = {"redis_url": hc.redis_url, "key_prefix": hc.key_prefix, "instance_id": ha.instance_id,
                       "interval": float(hc.replication_interval), "maxlen": hc.replication_maxlen,
                       "batch": hc.replication_batch}
    component = OrdersComponent(config, db_path=kernel.data_dir / config.db_file, exchanges=exchanges,
                                lease=ha, alerts=optional_part(kernel, "alerts", AlertSystem, "orders"),
                                replication=replication, on_accepted=ha.order_accepted if ha is not None else None)
    if ha is not None:
        ha.add_takeover_step(component.on_takeover)
    kernel.add(component)


def build_event_feed(kernel: Kernel) -> None:
    """After orders: it stops before the orders database closes."""
    kernel.add(EventFeed(part(kernel, "bus", BusComponent, "the event feed").bus,
                         orders=optional_part(kernel, "orders", OrdersComponent, "the event feed"),
                         alerts=optional_part(kernel, "alerts", AlertSystem, "the event feed")))


def build_health(kernel: Kernel) -> None:
    """The health monitor: registered checks, every part's own checks, HA's."""
    health = kernel.config.health
    runs = [
        CheckRun(
            name=item.id,
            check=item.registration.factory(item.config, kernel.context),
            interval=item.interval,
            timeout=item.timeout,
            plugin=item.registration.plugin,
            grace=float(health.startup_grace if item.grace is None else item.grace),
        )
        for item in kernel.plugin_config.health_checks
    ]
    default_interval = float(health.default_interval)
    default_timeout = float(health.default_timeout)
    names = {run.name for run in runs}
    for component in kernel.components:
        found = _component_check(component)
        if found is not None and found[0] not in names:
            runs.append(CheckRun(name=found[0], check=found[1], interval=default_interval,
                                 timeout=default_timeout, plugin=getattr(component, "plugin", "")))
    options: dict[str, Any] = {}
    ha_config = getattr(kernel.config, "ha", None)
    ha = optional_part(kernel, "ha", HAComponent, "health")
    if ha_config is not None:
        tuning = ha_config.health
        options = {
            "hysteresis": tuning.hysteresis,
            "history": tuning.history,
            "recovery_backoff": float(tuning.recovery_backoff),
            "recovery_backoff_max": float(tuning.recovery_backoff_max),
        }
    for component in kernel.components:
        # Kernel parts that bring checks of their own (orders: reconciliation).
        offered = getattr(component, "health_checks", None)
        if component is not ha and callable(offered):
            for name, check in offered().items():
                runs.append(CheckRun(name=name, check=check, interval=default_interval, timeout=default_timeout,
                                     plugin=f"hrkernel.{component.name}"))
    if ha is not None:
        options["store"] = ha.store if ha_config is None or ha_config.health.persist else None
        for name, check in ha.health_checks().items():
            runs.append(CheckRun(name=name, check=check, interval=default_interval, timeout=default_timeout,
                                 plugin="hrkernel.ha"))
    for run in runs:
        if run.name in health.startup_grace_for:
            run.grace = float(health.startup_grace_for[run.name])
        elif run.name.startswith("datasource:") and run.grace == 0.0:
            run.grace = float(health.datasource_startup_grace)
        elif run.grace == 0.0:
            run.grace = float(health.startup_grace)
    monitor = HealthMonitor(runs, **options)
    if ha is not None:
        ha.attach_health(monitor)
    halting = {run.name for run in runs if getattr(run.check, "halts_orders", False)}
    if halting:
        orders = optional_part(kernel, "orders", OrdersComponent, "health")
        monitor.add_listener(OrdersHalt(lambda _name: orders, halting))
    kernel.add(monitor)


def build_signals(kernel: Kernel) -> None:
    """Before web: the web app mounts its route."""
    section = kernel.config.webhook
    exchanges = [item.id for item in kernel.plugin_config.exchanges]
    if not section.enabled and not exchanges:
        return
    if not section.enabled and section.exchange not in exchanges:
        # The operator's signals go to the one configured exchange (the embedded default's
        # paper account); with several, [webhook] exchange says which.
        section = msgspec.structs.replace(section, exchange=exchanges[0])
    bus = part(kernel, "bus", BusComponent, "signals").bus
    intake = WebhookIntake(section, Path(kernel.data_dir) / section.inbox_file, bus)
    kernel.add(SignalsComponent(intake, Path(kernel.data_dir) / OUTCOMES_FILE))


def build_routing(kernel: Kernel) -> None:
    """After orders and signals: route bus signals into the order pipeline."""
    orders = optional_part(kernel, "orders", OrdersComponent, "routing")
    bus_part = optional_part(kernel, "bus", BusComponent, "routing")
    if bus_part is None or orders is None:
        return
    topic = kernel.config.webhook.topic
    signals = optional_part(kernel, "signals", SignalsComponent, "routing")
    intake = signals.intake if signals is not None else None
    bus = bus_part.bus
    # The router consumes only while this instance may trade, but the webhook accepts (and the
    # intake publishes) from start-up on, and a standby's signals wait for the next leader: the
    # bus must keep them for the order path's group before it first subscribes (RabbitMQ drops
    # a message no queue is bound for, and the intake's inbox lets go of a signal once published).
    bus.require_group(topic, ROUTING_GROUP)
    kernel.add(SignalRouter(bus=bus, orders=orders, topic=topic,
                            exchanges=[item.id for item in kernel.plugin_config.exchanges],
                            on_settled=intake.confirm if intake is not None else None,
                            on_unsettled=intake.unsettled if intake is not None else None,
                            outcomes=(lambda: signals.outcomes) if signals is not None else None))


def build_web(kernel: Kernel) -> None:
    """Last: starts after what it shows, stops first (no actions during drain)."""
    config: DashboardSection | None = getattr(kernel.config, "dashboard", None)
    config = config if config is not None else DashboardSection()
    if not config.enabled:
        return
    kernel.add(WebComponent(kernel, config, kernel.config.kernel.instance_id, str(kernel.data_dir)))


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
