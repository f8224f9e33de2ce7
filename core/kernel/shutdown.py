"""The graceful shutdown sequence: no exposure is left on an exchange without someone watching it.

Five stages, each bounded by its own ``[shutdown]`` timeout and logged once as
``shutdown_stage`` (``stage``, ``outcome`` = ok / partial / skipped / timeout / error,
``detail``, ``duration_ms``); every component's ``stop`` is also logged as ``shutdown_step``:

1. ``stop_intake`` (``stop_intake``, 30 s): stop the dashboard, the signal router, the webhook
   intake and the health monitor; halt new orders and wait for placements already under way to
   be acknowledged, so the next stage sees every order this tenure will ever have.
2. ``cancel_orders`` (``cancel_timeout``, 60 s): cancel this kernel's open orders and record their
   final states and fills — as the ``cancel_orders`` policy says (below).
3. ``close_positions`` (``close_timeout``, 120 s; off unless ``close_positions = true``): flatten
   the net position this kernel's orders built, with market orders. Skipped when stage 2 left
   the orders to a standby: the standby then owns the positions too.
4. ``flush`` (``flush_timeout``, 30 s): stop the orders component — the ledger writer's last
   group commit, the replication stream's last rows — before the lease goes.
5. ``release_and_close`` (``step_timeout`` per component): data sources, exchanges, alerts,
   resilience, HA (releases the lease, publishing the loss) and the bus, in reverse start order.

The cancel policy. ``always`` cancels; ``never`` leaves orders resting (someone else watches
them: a human, another system). ``unless_standby`` (default) cancels unless a live standby will
take over: a leader that hands over must not pull orders its successor will manage — the
successor replicates the journal, reconciles on takeover and follows every order up, and
cancelling would only throw away queue position and, for an order half filled, leave the
successor a position it did not choose. Without a live standby nobody would watch the orders
after this process ends, so they are cancelled. A standby never cancels, whatever the policy:
the orders belong to the leader, which is still running.

A stage that overruns its timeout is cancelled, logged ``timeout``, and the sequence goes on: a
cancel step stuck on an unresponsive exchange must not keep the journal from being flushed or
the lease from being released. ``force_after`` bounds the whole shutdown (exit 1 past it).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from hrkernel.lifecycle import Component, ShutdownStage
from hrkernel.logging import get_logger

if TYPE_CHECKING:
    from hrkernel.config.schema import ShutdownSection

log = get_logger("hrkernel.kernel.shutdown")


@runtime_checkable
class ExposureOwner(Protocol):
    """A component holding orders on exchanges (the orders component)."""

    async def stop_new_orders(self, reason: str) -> int:
        """Refuse new orders, wait for placements under way; return how many were waited for."""
        ...

    async def cancel_open_orders(self, reason: str) -> Any:
        """Cancel this kernel's open orders; return a report with ``outcome``, ``done``, ``failed``."""
        ...

    async def close_positions(self, reason: str) -> Any:
        """Flatten this kernel's positions; return a report like :meth:`cancel_open_orders`."""
        ...


@runtime_checkable
class Leadership(Protocol):
    """What the cancel policy asks of HA."""

    def is_leader(self) -> bool: ...

    async def live_standbys(self) -> list[str]: ...


class StageOutcome(Exception):
    """Raised inside a stage to end it early with an outcome other than ``ok``."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


def _report_detail(report: Any) -> tuple[str, str]:
    problems = "; ".join(getattr(report, "problems", []) or [])
    detail = f"done={report.done} already_closed={getattr(report, 'already_closed', 0)} failed={report.failed}"
    return str(report.outcome), detail + (f": {problems}" if problems else "")


class ShutdownSequence:
    """Runs the five stages over the started components (popping each as it is stopped)."""

    def __init__(self, config: ShutdownSection, started: list[Component], reason: str | None, *,
                 logger: Any = None) -> None:
        self.log = logger or log
        self.config = config
        self.started = started
        self.reason = reason or "shutdown"
        self.cancelled_left_to: list[str] = []
        """The standbys the cancel stage left the orders to (stage 3 is then skipped too)."""
        self.outcomes: dict[str, str] = {}

    def _find(self, kind: type[Any]) -> Any:
        return next((c for c in self.started if isinstance(c, kind)), None)

    async def run(self) -> None:
        cfg = self.config
        owner = self._find(ExposureOwner)
        await self._stage(ShutdownStage.STOP_INTAKE, float(cfg.stop_intake), lambda: self._stop_intake(owner))
        await self._stage(ShutdownStage.CANCEL_ORDERS, float(cfg.cancel_timeout), lambda: self._cancel(owner))
        await self._stage(ShutdownStage.CLOSE_POSITIONS, float(cfg.close_timeout), lambda: self._close(owner))
        await self._stage(ShutdownStage.FLUSH, float(cfg.flush_timeout),
                          lambda: self._stop_components(ShutdownStage.FLUSH, None))
        await self._stage(ShutdownStage.RELEASE_AND_CLOSE, None,
                          lambda: self._stop_components(None, float(cfg.step_timeout)))

    async def _stage(self, stage: ShutdownStage, timeout: float | None, body: Callable[[], Awaitable[str]]) -> None:
        began = time.monotonic()
        outcome, detail = "ok", ""
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(timeout) if timeout is not None else anyio.CancelScope():
                    detail = await body()
            except StageOutcome as exc:
                outcome, detail = exc.outcome, exc.detail
            except TimeoutError:
                outcome, detail = "timeout", f"did not finish within {timeout:g}s; going on with the next stage"
            except Exception as exc:
                outcome, detail = "error", f"{type(exc).__name__}: {exc}"
        self.outcomes[stage.value] = outcome
        emit = self.log.info if outcome in ("ok", "skipped") else self.log.error
        emit("shutdown_stage", stage=stage.value, outcome=outcome, detail=detail,
             duration_ms=round((time.monotonic() - began) * 1000, 1))

    async def _stop_intake(self, owner: Any) -> str:
        stopped = await self._stop_components(ShutdownStage.STOP_INTAKE, float(self.config.step_timeout))
        if owner is None:
            return stopped
        waited = await owner.stop_new_orders(f"the kernel is shutting down ({self.reason})")
        return f"{stopped}; new orders halted, {waited} placement(s) waited for"

    async def _cancel(self, owner: Any) -> str:
        policy = self.config.cancel_orders
        if owner is None:
            raise StageOutcome("skipped", "no orders component")
        if policy == "never":
            raise StageOutcome("skipped", 'policy "never": open orders stay on the exchanges')
        ha = self._find(Leadership)
        if ha is not None and not ha.is_leader():
            raise StageOutcome("skipped", "this instance is a standby: the orders belong to the leader")
        if policy == "unless_standby" and ha is not None:
            try:
                with anyio.fail_after(5):
                    standbys = await ha.live_standbys()
            except Exception as exc:
                # Cannot tell whether anyone will watch the orders: cancel (no unwatched exposure).
                self.log.warning("shutdown_standby_check_failed", error=f"{type(exc).__name__}: {exc}")
                standbys = []
            if standbys:
                self.cancelled_left_to = standbys
                raise StageOutcome("skipped", f"live standby {', '.join(standbys)} takes the orders over")
        report = await owner.cancel_open_orders(f"shutdown ({self.reason}), policy {policy}")
        outcome, detail = _report_detail(report)
        if outcome != "ok":
            raise StageOutcome(outcome, detail)
        return detail

    async def _close(self, owner: Any) -> str:
        if not self.config.close_positions:
            raise StageOutcome("skipped", "close_positions = false")
        if owner is None:
            raise StageOutcome("skipped", "no orders component")
        if self.outcomes.get(ShutdownStage.CANCEL_ORDERS.value) == "skipped":
            raise StageOutcome("skipped", "the cancel stage was skipped: positions stay with whoever keeps the orders")
        report = await owner.close_positions(f"shutdown ({self.reason})")
        outcome, detail = _report_detail(report)
        if outcome != "ok":
            raise StageOutcome(outcome, detail)
        return detail

    async def _stop_components(self, stage: ShutdownStage | None, step_timeout: float | None) -> str:
        """Stop, in reverse start order, the started components of ``stage`` (None: all left)."""
        names = []
        for component in reversed(list(self.started)):
            if stage is not None and component.shutdown_stage is not stage:
                continue
            self.started.remove(component)
            names.append(component.name)
            await stop_component(component, step_timeout, self.log)
        return f"stopped {len(names)} component(s)"


async def stop_component(component: Component, timeout: float | None, logger: Any = log) -> str:
    """Stop one component under ``timeout`` (None: the enclosing stage's), log ``shutdown_step``.

    Not shielded here: the stage around it is, and its own deadline must still reach the stop."""
    began = time.monotonic()
    outcome, error = "ok", None
    try:
        with anyio.fail_after(timeout) if timeout is not None else anyio.CancelScope():
            await component.stop()
    except TimeoutError:
        outcome = "timeout"
    except Exception as exc:
        outcome, error = "error", f"{type(exc).__name__}: {exc}"
    logger.info("shutdown_step", component=component.name, outcome=outcome, error=error,
             duration_ms=round((time.monotonic() - began) * 1000, 1))
    return outcome
