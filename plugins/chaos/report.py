"""What a chaos run reports: invariants, failovers, figures, faults and their alerts; and the
runner's record of each kernel it started."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrkernel_chaos.procs import Child


@dataclass
class Invariant:
    name: str
    ok: bool
    detail: str
    timing: bool = False
    """A timing target (orders flowing again after a takeover), not a safety property: the test
    suite, whose runs share a loaded machine, leaves timing to bench/ (see :attr:`Report.safe`)."""


@dataclass
class Failover:
    cause: str
    from_instance: str
    to_instance: str | None
    seconds: float | None
    """Fault → the new leader's lease takeover done (``trading_enabled``)."""
    at: float = 0.0
    """Wall-clock time of the fault (SIGKILL, SIGSTOP, ...)."""
    orders_after: float | None = None
    """Fault → the first order the exchange accepted from the new leader (None: none came)."""


@dataclass
class Report:
    scenario: str
    seed: int
    invariants: list[Invariant] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    failovers: list[Failover] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    """Per fault: the alert it was expected to raise and what arrived (or that none is expected)."""
    workdir: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.invariants) and all(i.ok for i in self.invariants)

    @property
    def safe(self) -> bool:
        """Every invariant but the timing targets holds (what the test suite gates on)."""
        return bool(self.invariants) and all(i.ok for i in self.invariants if not i.timing)

    def render(self) -> str:
        lines = [f"Chaos report: {self.scenario} (seed {self.seed})", ""]
        width = max(len(i.name) for i in self.invariants) if self.invariants else 10
        lines.append(f"  {'invariant'.ljust(width)}  result  detail")
        for inv in self.invariants:
            lines.append(f"  {inv.name.ljust(width)}  {'PASS' if inv.ok else 'FAIL'}    {inv.detail}")
        lines.append("")
        for key, value in self.figures.items():
            lines.append(f"  {key}: {value}")
        for fo in self.failovers:
            took = f"{fo.seconds:.2f}s" if fo.seconds is not None else "did not happen"
            flowing = f", orders flowing after {fo.orders_after:.2f}s" if fo.orders_after is not None else ""
            lines.append(f"  failover ({fo.cause}): {fo.from_instance} -> {fo.to_instance or '-'} in {took}{flowing}")
        if self.faults:
            lines.append(f"  faults injected ({len(self.faults)}): " + "; ".join(self.faults[:12])
                         + (" ..." if len(self.faults) > 12 else ""))
        if self.alerts:
            lines.append("  alerts per fault:")
            lines.extend(f"    {line}" for line in self.alerts[:40])
            if len(self.alerts) > 40:
                lines.append(f"    ... {len(self.alerts) - 40} more")
        lines.append(f"  logs: {self.workdir}")
        lines.append("")
        lines.append("RESULT: " + ("PASS" if self.passed else "FAIL"))
        return "\n".join(lines)


@dataclass
class KernelInfo:
    name: str
    config: Path
    web: int
    child: Child
    past: list[Child] = field(default_factory=list)
    """Earlier processes of this kernel (killed and started again)."""

    def all_children(self) -> list[Child]:
        return [*self.past, self.child]
