"""The intake as a kernel component (``signals``): routes for the web app, the processor task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anyio.abc import TaskGroup
from starlette.routing import BaseRoute

from hrkernel.lifecycle import Component, ShutdownStage
from hrkernel.signals.intake import WebhookIntake
from hrkernel.signals.outcomes import SignalOutcomes


class SignalsComponent(Component):
    name = "signals"
    shutdown_stage = ShutdownStage.STOP_INTAKE

    def __init__(self, intake: WebhookIntake, outcomes_path: Path | None = None) -> None:
        self.intake = intake
        self.prometheus_registry = intake.prometheus_registry
        self.outcomes_path = outcomes_path
        self.outcomes: SignalOutcomes | None = None
        """Every signal's outcome (accepted / ordered / refused); opened at start."""

    async def start(self, tg: TaskGroup) -> None:
        self.intake.inbox.open()
        if self.outcomes_path is not None:
            self.outcomes = SignalOutcomes(self.outcomes_path)
            self.intake.outcomes = self.outcomes
        tg.start_soon(self.intake.run_processor)

    async def stop(self) -> None:
        self.intake.inbox.close()
        # The outcome table stays open: the router (stopped after this) may still record.

    def web_routes(self) -> list[BaseRoute]:
        # Without [webhook] enabled the intake still takes local operators' signals
        # (`hrkernel signal`, POST /api/signals) but offers no TradingView route.
        return self.intake.routes() if self.intake.config.enabled else []

    def stats(self) -> dict[str, Any]:
        return self.intake.stats()

    def describe(self) -> dict[str, Any]:
        webhook = self.intake.config.path if self.intake.config.enabled else "off (local signals only)"
        return {"name": self.name, "kind": "signals", "exchange": self.intake.config.exchange, "webhook": webhook}
