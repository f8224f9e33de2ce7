"""``hrkernel demo``: the built-in game day, narrated.

Two kernels on a private redis-server (one kernel when ``redis-server`` is not on PATH), the
simulator, a stream of signals, then on a timeline: exchange errors open the circuit breaker,
a placement is accepted and its answer dropped, the leader is SIGKILLed and the standby takes
over. Ends with the invariant report."""

from __future__ import annotations

import shutil

from hrkernel_chaos.scenario import Fault, Scenario


def demo_scenario(fast: bool = False, kernels: int | None = None) -> Scenario:
    if kernels is None:
        kernels = 2 if shutil.which("redis-server") else 1
    n = 16 if fast else 40
    # 0.5 s apart in the fast run too: the leader must alert about the breaker before it is killed
    # (at signal 13), and with one breaker per endpoint group that takes ~3-4 s after the errors start.
    interval = 0.5

    def at(fraction: float) -> int:
        return max(1, int(n * fraction))

    faults = [
        # exchange errors: every placement fails for a moment, the adapter's breaker opens
        Fault(at=at(0.15), kind="sim_errors", endpoint="*", fault="error_503", rate=1.0, duration=4.0),
        # the exchange takes an order and the answer never arrives: looked up, never duplicated
        Fault(at=at(0.45), kind="sim_script", endpoint="orders_add", fault="drop_after_accept", count=1),
    ]
    # late enough that the leader has alerted about the breaker before it dies: the exchange's
    # health check reports it after two results a second apart, the alert follows within a second
    if kernels > 1:
        faults.append(Fault(at=at(0.85), kind="kill_leader"))
    else:
        faults.append(Fault(at=at(0.85), kind="sim_down", duration=2.0))
    return Scenario(
        name="demo" + (" (fast)" if fast else ""),
        description="exchange errors open a breaker, a dropped answer, the leader is killed",
        seed=2026, kernels=kernels, signals=n, interval=interval, settle=120.0, faults=faults,
        # 4 s of errors (fast too): with one breaker per endpoint group (market data, account,
        # trading) a group sees only its own calls, and 2 s of errors did not always open one
        # before the errors ended. 120 s to settle: look-ups that ran into Nobitex's 30-per-minute
        # list limits during the faults wait out the window before they resolve.
    )
