"""The chaos invariant that failover is over only when orders flow again."""

from __future__ import annotations

from typing import Any

from hrkernel_chaos.report import Failover, Invariant

__all__ = ["ORDERS_FLOW", "orders_flow_invariant"]

ORDERS_FLOW = "orders flow again within TTL + 3 s"
"""The start of this invariant's name. A timing target (``Invariant.timing``): ``hrkernel chaos
run`` fails on it; the test suite gates on the safety invariants (``Report.safe``) and leaves
timing figures to bench/."""


def orders_flow_invariant(failovers: list[Failover], sent: list[dict[str, Any]], accepted: list[dict[str, Any]],
                          limit: float) -> Invariant:
    """After every takeover the new leader's first order reaches the exchange within ``limit``
    seconds of the fault (TTL + 3 s), whenever a signal came after the fault (a signal stream
    that ended before it leaves nothing to measure). ``accepted``: the simulator's log of the
    ``orders_add`` requests it accepted (epoch ``time``, ``instance``). Sets each failover's
    ``orders_after``."""
    late: list[str] = []
    measured: list[str] = []
    for fo in failovers:
        if fo.to_instance is None:
            late.append(f"{fo.cause} of {fo.from_instance}: no takeover")
            continue
        if not any(s.get("at", 0.0) > fo.at for s in sent):
            continue
        after = [r["time"] for r in accepted if r.get("instance") == fo.to_instance and r["time"] >= fo.at]
        fo.orders_after = min(after) - fo.at if after else None
        measured.append(f"{fo.orders_after:.2f}s" if fo.orders_after is not None else "never")
        if fo.orders_after is None or fo.orders_after > limit:
            late.append(f"{fo.cause} of {fo.from_instance} -> {fo.to_instance}: "
                        + ("no order accepted" if fo.orders_after is None else f"{fo.orders_after:.2f}s"))
    return Invariant(
        f"{ORDERS_FLOW} ({limit:g} s) after every takeover", not late,
        f"fault -> first order accepted: {', '.join(measured) or 'no signal after a takeover'}"
        + (f"; late: {late}" if late else ""), timing=True)
