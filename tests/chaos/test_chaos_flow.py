"""The invariant "orders flow again within TTL + 3 s after every takeover" can fail."""

from __future__ import annotations

from hrkernel_chaos.flow import orders_flow_invariant
from hrkernel_chaos.report import Failover


def _failover() -> Failover:
    return Failover("SIGKILL", "hr-a", "hr-b", 3.4, at=100.0)


def test_orders_accepted_from_the_new_leader_within_the_limit_pass() -> None:
    fo = _failover()
    accepted = [{"time": 99.0, "instance": "hr-a"}, {"time": 104.5, "instance": "hr-b"}]
    inv = orders_flow_invariant([fo], [{"at": 101.0}], accepted, 6.0)
    assert inv.ok and fo.orders_after == 4.5 and "4.50s" in inv.detail


def test_a_late_first_order_or_none_at_all_fails() -> None:
    late = orders_flow_invariant([_failover()], [{"at": 101.0}], [{"time": 107.5, "instance": "hr-b"}], 6.0)
    assert not late.ok and "7.50s" in late.detail
    # the old leader's orders do not count: the new one placed nothing
    none = orders_flow_invariant([_failover()], [{"at": 101.0}], [{"time": 101.0, "instance": "hr-a"}], 6.0)
    assert not none.ok and "no order accepted" in none.detail
    assert not orders_flow_invariant([Failover("SIGKILL", "hr-a", None, None, at=100.0)], [], [], 6.0).ok


def test_the_orders_flow_invariant_is_a_timing_target_the_suite_does_not_gate_on() -> None:
    from hrkernel_chaos.report import Invariant, Report

    late = orders_flow_invariant([_failover()], [{"at": 101.0}], [{"time": 107.5, "instance": "hr-b"}], 6.0)
    report = Report("x", 1, invariants=[Invariant("at most one order per signal", True, ""), late])
    assert late.timing and not report.passed and report.safe
    report.invariants.append(Invariant("ledger equals exchange balances", False, ""))
    assert not report.safe


def test_a_takeover_after_the_last_signal_is_not_measured() -> None:
    fo = _failover()
    inv = orders_flow_invariant([fo], [{"at": 90.0}], [], 6.0)
    assert inv.ok and fo.orders_after is None and "no signal after a takeover" in inv.detail
