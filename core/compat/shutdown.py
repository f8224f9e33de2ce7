"""The design's ``GracefulShutdown(trading_engine).shutdown_sequence()``.

The documented sequence, each step under its own timeout, each logged with its outcome:

1. stop accepting new orders (30 s);
2. cancel open orders (60 s);
3. close positions — only when asked (120 s, off by default);
4. flush pending writes (30 s);
5. release the lease and close connections (30 s).

The trading engine is anything with those steps as async methods (:class:`TradingEngineSteps`).
A step that fails or times out is recorded and the sequence goes on: a shutdown that stops half
way would keep the lease and leave connections open. The kernel's own shutdown (``hrkernel run``)
runs this order of steps itself; this class is for code written against the documents.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import anyio
import msgspec

from hrkernel.logging import get_logger

__all__ = ["DEFAULT_TIMEOUTS", "GracefulShutdown", "ShutdownReport", "StepOutcome", "TradingEngineSteps"]

DEFAULT_TIMEOUTS: dict[str, float] = {
    "stop_new_orders": 30.0,
    "cancel_open_orders": 60.0,
    "close_positions": 120.0,
    "flush": 30.0,
    "release_and_close": 30.0,
}
STEPS = tuple(DEFAULT_TIMEOUTS)


@runtime_checkable
class TradingEngineSteps(Protocol):
    """What :class:`GracefulShutdown` needs from a trading engine."""

    async def stop_new_orders(self) -> None:
        """Refuse new orders from now on (signals keep arriving; none becomes an order)."""

    async def cancel_open_orders(self) -> None:
        """Cancel every resting order this engine placed."""

    async def close_positions(self) -> None:
        """Flatten open positions (run only with ``close_positions=True``)."""

    async def flush(self) -> None:
        """Make pending writes durable (journal, ledger, buffered events)."""

    async def release_and_close(self) -> None:
        """Release the leadership lease and close connections."""


class StepOutcome(msgspec.Struct, frozen=True, kw_only=True):
    step: str
    outcome: str
    """``ok``, ``skipped``, ``timeout`` or ``error``."""
    seconds: float
    timeout: float
    detail: str = ""


class ShutdownReport(msgspec.Struct, frozen=True, kw_only=True):
    steps: list[StepOutcome]

    @property
    def clean(self) -> bool:
        return all(s.outcome in ("ok", "skipped") for s in self.steps)


class GracefulShutdown:
    """Runs the five steps on ``trading_engine`` (see the module docstring).

    ``timeouts`` overrides the defaults by step name; ``close_positions`` turns step 3 on.
    """

    def __init__(self, trading_engine: TradingEngineSteps, *, close_positions: bool = False,
                 timeouts: dict[str, float] | None = None) -> None:
        missing = [s for s in STEPS if not callable(getattr(trading_engine, s, None))]
        if missing:
            raise TypeError(f"GracefulShutdown: the trading engine ({type(trading_engine).__name__}) lacks "
                            f"{', '.join(missing)} (see TradingEngineSteps)")
        unknown = sorted(set(timeouts or {}) - set(STEPS))
        if unknown:
            raise ValueError(f"GracefulShutdown: unknown step(s) {', '.join(unknown)} (steps: {', '.join(STEPS)})")
        self.engine = trading_engine
        self.close_positions = close_positions
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self.report: ShutdownReport | None = None
        self.log = get_logger("hrkernel.compat.shutdown")

    async def shutdown_sequence(self) -> ShutdownReport:
        """Run every step in order, each under its timeout; returns (and keeps) the report."""
        outcomes: list[StepOutcome] = []
        # Shielded: a shutdown cancelled half way (a second Ctrl-C) must still release the lease.
        with anyio.CancelScope(shield=True):
            for step in STEPS:
                outcomes.append(await self._run(step))
        self.report = ShutdownReport(steps=outcomes)
        return self.report

    async def _run(self, step: str) -> StepOutcome:
        limit = self.timeouts[step]
        if step == "close_positions" and not self.close_positions:
            self.log.info("shutdown_step", step=step, outcome="skipped")
            return StepOutcome(step=step, outcome="skipped", seconds=0.0, timeout=limit)
        started = time.perf_counter()
        outcome, detail = "ok", ""
        try:
            with anyio.fail_after(limit):
                await getattr(self.engine, step)()
        except TimeoutError:
            outcome, detail = "timeout", f"not done within {limit:g}s"
        except Exception as exc:
            outcome, detail = "error", f"{type(exc).__name__}: {exc}"
        took = time.perf_counter() - started
        log = self.log.info if outcome == "ok" else self.log.error
        log("shutdown_step", step=step, outcome=outcome, seconds=round(took, 3), detail=detail or None)
        return StepOutcome(step=step, outcome=outcome, seconds=took, timeout=limit, detail=detail)
