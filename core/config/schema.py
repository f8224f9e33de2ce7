"""The root of hr.toml as typed structs.

Each area owns its section's struct in its own package (``hrkernel.ha.config`` and so on) and the
root only names it. Tables that belong to plugins (``[exchanges.<id>]``, ``[datasources.<id>]``,
``[health.checks.<name>]``, ``[alerts.channels.<id>]``) stay plain tables here and are validated
against the plugin's own struct once plugins are loaded (see :mod:`hrkernel.config.plugin_tables`).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from hrkernel.alerts.config import AlertsSection
from hrkernel.bus.config import BusSection
from hrkernel.ha.config import HASection
from hrkernel.orders.config import OrdersSection
from hrkernel.resilience.config import ResilienceSection
from hrkernel.signals.config import WebhookSection
from hrkernel.types import ConfigStruct, Duration
from hrkernel.web.config import DashboardSection

PluginTables = dict[str, dict[str, Any]]


class KernelSection(ConfigStruct, kw_only=True):
    instance_id: str = "hr-1"
    """Names this process in logs, the lease, the journal and the simulator's request log."""
    data_dir: str = ".hrkernel"
    """Where DuckDB files (journal, ledger, health history) live; created if missing."""


class LoggingSection(ConfigStruct, kw_only=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    """``auto``: JSON lines unless stdout is a terminal."""


class PluginsSection(ConfigStruct, kw_only=True):
    strict: bool = True
    """A plugin that fails to import or raises in a hook stops start-up (exit 2) when true."""
    disable: list[str] = msgspec.field(default_factory=list)
    """Entry-point names of plugins not to load."""


class ShutdownSection(ConfigStruct, kw_only=True):
    """The graceful shutdown sequence (see :mod:`hrkernel.kernel.shutdown`): each stage has its own
    bound and is logged as ``shutdown_stage`` with its outcome; each component's ``stop`` inside a
    stage is logged as ``shutdown_step``."""

    step_timeout: Duration = Duration(5.0)
    """How long each component may take to stop before it is cancelled (within its stage)."""
    force_after: Duration = Duration(300.0)
    """Hard limit for the whole shutdown; past it the process exits with code 1. Must exceed the
    sum of the stage timeouts, so the sequence is never killed half-way by its own deadline."""
    stop_intake: Duration = Duration(30.0)
    """Stage 1: stop the intake (dashboard, webhook, signal router), halt new orders and wait for
    placements already under way to be acknowledged."""
    cancel_orders: Literal["always", "unless_standby", "never"] = "unless_standby"
    """Stage 2 policy. ``unless_standby``: cancel this leader's resting orders unless a live
    standby will take them over; ``always``; ``never``. A standby never cancels (it owns none)."""
    cancel_timeout: Duration = Duration(60.0)
    """Stage 2: cancel open orders and post their fills."""
    close_positions: bool = False
    """Stage 3 (off by default): flatten, with market orders, the net position this kernel's
    orders built per market. Skipped when the cancel step was skipped (a standby takes over)."""
    close_timeout: Duration = Duration(120.0)
    flush_timeout: Duration = Duration(30.0)
    """Stage 4: flush the journal, ledger writer and replication stream."""

    def sequence_bound(self) -> float:
        """The longest the staged part of the sequence may take (stage 5 is bounded per component)."""
        total = float(self.stop_intake) + float(self.cancel_timeout) + float(self.flush_timeout)
        return total + (float(self.close_timeout) if self.close_positions else 0.0)

    def __post_init__(self) -> None:
        bound = self.sequence_bound()
        if float(self.force_after) <= bound:
            raise ValueError(
                f"force_after ({float(self.force_after):g}s) must exceed the shutdown stages' timeouts "
                f"(stop_intake + cancel_timeout + flush_timeout{' + close_timeout' if self.close_positions else ''}"
                f" = {bound:g}s): the process would be killed half-way through its own shutdown")


class HealthSection(ConfigStruct, kw_only=True):
    default_interval: Duration = Duration(10.0)
    default_timeout: Duration = Duration(2.0)
    checks: PluginTables = msgspec.field(default_factory=dict)
    startup_grace: Duration = Duration(0.0)
    """For this long after start, a check that has not been healthy yet is not reported (its
    status stays unknown: no alert, no ``/readyz`` 503); a healthy result ends the grace at once.
    ``[health.checks.<name>] startup_grace`` or ``startup_grace_for`` override it per check."""
    datasource_startup_grace: Duration = Duration(30.0)
    """The same for data-source freshness checks (``datasource:<id>``), which have no data to
    judge until the first messages arrive."""
    startup_grace_for: dict[str, Duration] = msgspec.field(default_factory=dict)
    """Per check name (any check: ``bus``, ``exchange:nobitex:breaker``, ``datasource:x``, ...)."""


class Config(ConfigStruct, kw_only=True):
    kernel: KernelSection = msgspec.field(default_factory=KernelSection)
    logging: LoggingSection = msgspec.field(default_factory=LoggingSection)
    plugins: PluginsSection = msgspec.field(default_factory=PluginsSection)
    shutdown: ShutdownSection = msgspec.field(default_factory=ShutdownSection)
    health: HealthSection = msgspec.field(default_factory=HealthSection)
    alerts: AlertsSection = msgspec.field(default_factory=AlertsSection)
    ha: HASection = msgspec.field(default_factory=HASection)
    bus: BusSection = msgspec.field(default_factory=BusSection)
    webhook: WebhookSection = msgspec.field(default_factory=WebhookSection)
    dashboard: DashboardSection = msgspec.field(default_factory=DashboardSection)
    resilience: ResilienceSection = msgspec.field(default_factory=ResilienceSection)
    orders: OrdersSection = msgspec.field(default_factory=OrdersSection)
    exchanges: PluginTables = msgspec.field(default_factory=dict)
    datasources: PluginTables = msgspec.field(default_factory=dict)
