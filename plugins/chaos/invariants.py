"""The invariants a chaos run checks once its signals are sent (internal): every order settled,
at most one order per signal, fencing, the ledger against the exchange, failovers, alerts, clean
logs. A mixin of :class:`hrkernel_chaos.runner.ChaosRun`, which owns the state these methods use.

The simulator's admin log is the ground truth: which orders reached the exchange, from which
instance, under which fencing token. The kernels' JSON logs give failovers and errors; the
surviving leader's dashboard API gives its ledger."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from hrkernel_chaos.alerts import AlertReceiver, Injected, describe, find_alert
from hrkernel_chaos.faults import ADMIN
from hrkernel_chaos.flow import orders_flow_invariant
from hrkernel_chaos.report import Invariant, KernelInfo, Report
from hrkernel_chaos.scenario import Fault, Scenario
from hrkernel_chaos.settings import (
    EXCHANGE,
    EXPECTED_ERRORS,
    FINAL,
    LEASE_TTL,
    READONLY_ERRORS,
    TERMINAL,
    client_order_id,
)


class InvariantChecks:
    """``check()``: every invariant of a finished run, appended to ``self.report``."""

    if TYPE_CHECKING:
        scenario: Scenario
        http: httpx.Client
        report: Report
        kernels: list[KernelInfo]
        kernel_count: int
        killed: set[int]
        sent: list[dict[str, Any]]
        receiver: AlertReceiver
        injected: list[Injected]
        workdir: Path
        started: float
        bus: str
        say: Callable[[str], None]

        @property
        def sim(self) -> str: ...

        def leader(self, timeout: float = 0.0) -> KernelInfo | None: ...

        def _leadership(self, k: KernelInfo) -> dict[str, Any] | None: ...

    def _sim_orders(self) -> list[dict[str, Any]]:
        body = self.http.get(f"{self.sim}/_sim/orders", headers=ADMIN).json()
        return list(body["orders"] if isinstance(body, dict) else body)

    def _ledger_diff(self, leader: KernelInfo) -> dict[str, tuple[Decimal, Decimal]]:
        ledger = self.http.get(f"http://127.0.0.1:{leader.web}/api/ledger").json()["data"]
        ours = {row["currency"].upper(): Decimal(row["balance"]) for row in ledger["balances"]
                if row["account"] == f"{EXCHANGE}:{row['currency']}"}
        theirs_body = self.http.get(f"{self.sim}/_sim/balances", headers=ADMIN).json()["balances"]["default"]
        theirs = {cur.upper(): Decimal(v["balance"]) for cur, v in theirs_body.items()}
        diff = {}
        for cur in set(ours) | set(theirs):
            a, b = ours.get(cur, Decimal(0)), theirs.get(cur, Decimal(0))
            if a != b:
                diff[cur] = (a, b)
        return diff

    def _journal_counts(self, k: KernelInfo) -> dict[str, int] | None:
        try:
            data = self.http.get(f"http://127.0.0.1:{k.web}/api/orders", params={"limit": 1}).json()["data"]
            return {str(s): int(n) for s, n in (data.get("counts") or {}).items()}
        except (httpx.HTTPError, KeyError, ValueError, TypeError, AttributeError):
            return None

    def _unjournaled(self) -> tuple[list[str], list[str]]:
        """Accepted signals no kernel journaled or refused yet: (by live kernels, by killed ones)."""
        journaled: set[str] = set()
        for k in self.kernels:
            for e in (e for c in k.all_children() for e in list(c.events)):
                if e.get("event") in ("order_prepared", "signal_rejected", "order_refused", "signal_duplicate"):
                    journaled.add(str(e.get("signal_id")))
        lost = [s["signal_id"] for s in self.sent
                if s["signal_id"] and s.get("child") not in self.killed and s["signal_id"] not in journaled]
        lost_to_kill = [s["signal_id"] for s in self.sent
                        if s["signal_id"] and s.get("child") in self.killed and s["signal_id"] not in journaled]
        return lost, lost_to_kill

    def check(self) -> None:
        report = self.report
        sc = self.scenario
        # settle: every order final on the exchange and the leader's ledger equal to the balances
        deadline = time.monotonic() + sc.settle
        leader = None
        diff: dict[str, tuple[Decimal, Decimal]] = {}
        orders: list[dict[str, Any]] = []
        while True:
            orders = self._sim_orders()
            leader = self.leader(timeout=1.0)
            open_orders = [o for o in orders if o.get("status") not in FINAL]
            counts = self._journal_counts(leader) if leader is not None else None
            in_flight = {s: n for s, n in (counts or {}).items() if n and s not in TERMINAL}
            waiting = self._unjournaled()[0]
            if leader is not None and not open_orders and counts is not None and not in_flight and not waiting:
                try:
                    diff = self._ledger_diff(leader)
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    diff = {"?": (Decimal(0), Decimal(0))}
                    self.say(f"ledger not readable yet: {exc}")
                if not diff:
                    break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        counts = self._journal_counts(leader) if leader is not None else None
        in_flight = {s: n for s, n in (counts or {}).items() if n and s not in TERMINAL}
        report.invariants.append(Invariant(
            "every order settled", counts is not None and not in_flight and not any(
                o.get("status") not in FINAL for o in orders),
            f"journal of the leader: {counts}" + (f"; still in flight: {in_flight}" if in_flight else "")))
        coids = {client_order_id(EXCHANGE, s["signal_id"]): s for s in self.sent if s["signal_id"]}
        per_coid: dict[str, int] = defaultdict(int)
        for o in orders:
            per_coid[o.get("clientOrderId") or ""] += 1
        dupes = {c: n for c, n in per_coid.items() if n > 1}
        strangers = [c for c in per_coid if c not in coids]
        report.invariants.append(Invariant(
            "at most one order per signal", not dupes and not strangers,
            f"{len(orders)} orders for {len(coids)} accepted signals"
            + (f"; duplicated: {dupes}" if dupes else "") + (f"; unknown client ids: {strangers}" if strangers else "")))
        # exactly one where the exchange accepted it: every placement the exchange answered with an
        # order id (or accepted and then dropped) is one order in its book
        requests = self.http.get(f"{self.sim}/_sim/requests", headers=ADMIN, params={"endpoint": "orders_add"}).json()
        reqs = requests["requests"] if isinstance(requests, dict) else requests
        accepted = {r["client_order_id"] for r in reqs if r.get("order_id") and r.get("client_order_id")}
        missing = [c for c in accepted if per_coid.get(c, 0) != 1]
        report.invariants.append(Invariant(
            "exactly one order where the exchange accepted", not missing,
            f"{len(accepted)} signals accepted by the exchange" + (f"; not exactly one: {missing}" if missing else "")))
        # fencing: tokens never go back in the order the exchange saw them, one instance per token
        ordered = sorted(orders, key=lambda o: int(o.get("request_seq") or 0))
        back, owners = [], defaultdict(set)
        highest = -1
        for o in ordered:
            token = int(o.get("fencing_token") or -1)
            owners[token].add(str(o.get("instance")))
            if token < highest:
                back.append(f"order {o.get('id')} from {o.get('instance')} with token {token} after token {highest}")
            highest = max(highest, token)
        shared = {t: sorted(i) for t, i in owners.items() if len(i) > 1}
        report.invariants.append(Invariant(
            "never two instances submitting", not back and not shared,
            f"tokens in order: {sorted(owners)}; submitters: {sorted({str(o.get('instance')) for o in orders})}"
            + (f"; stale: {back[:3]}" if back else "") + (f"; token shared: {shared}" if shared else "")))
        # the ledger
        if leader is None:
            report.invariants.append(Invariant("ledger equals exchange balances", False, "no leader at the end"))
        else:
            report.invariants.append(Invariant(
                "ledger equals exchange balances", not diff,
                f"leader {leader.name}: " + ("every asset equal" if not diff else
                                              "; ".join(f"{c}: ledger {a} vs exchange {b}" for c, a, b in
                                                        ((c, *v) for c, v in diff.items())))))
        # failovers
        kills = [f for f in sc.faults if f.kind in ("kill_leader", "pause_leader") and self.kernel_count > 1]
        done = [f for f in report.failovers if f.to_instance is not None]
        history_ok = True
        history_detail = f"{len(done)} failover(s) observed for {len(kills)} leader kill(s)/freeze(s)"
        if kills:
            history_ok = len(done) >= len(kills)
            if leader is not None and self.kernel_count > 1:
                info = self._leadership(leader) or {}
                # The lease takeovers (failover_time counts takeovers once orders flowed).
                count = (info.get("lease_takeover_time") or info.get("failover_time") or {}).get("count") or 0
                history_detail += f"; {leader.name}'s failover history has {count}"
                history_ok = history_ok and count >= 1
        report.invariants.append(Invariant("every failover in the history", history_ok, history_detail))
        self._check_orders_flow(kills)
        self._check_alerts()
        # unhandled errors in the logs
        allowed = EXPECTED_ERRORS | set(sc.expected_errors)
        if any(f.kind == "duckdb_readonly" for f in sc.faults):
            allowed |= READONLY_ERRORS
        bad: list[str] = []
        for k in self.kernels:
            for line in (line for c in k.all_children() for line in c.lines):
                if "Traceback" in line:
                    bad.append(f"{k.name}: Traceback")
                    break
            for e in (e for c in k.all_children() for e in c.events):
                fenced = str(e.get("error", "")).startswith("NotLeaderError")  # the fence refusing: by design
                if e.get("level") in ("error", "critical", "exception") and e.get("event") not in allowed and not fenced:
                    bad.append(f"{k.name}: {e.get('event')}")
        report.invariants.append(Invariant("no unhandled exception in any log", not bad,
                                           "clean" if not bad else "; ".join(sorted(set(bad))[:8])))
        # every signal a kernel accepted reached its order path (journaled or refused with a reason),
        # unless that kernel was killed before it could
        lost, lost_to_kill = self._unjournaled()
        report.invariants.append(Invariant(
            "every accepted signal reached the order path", not lost,
            f"{len(self.sent) - len(lost) - len(lost_to_kill)} of {len(self.sent)}"
            + (f"; lost: {lost[:5]}" if lost else "")
            + (f"; {len(lost_to_kill)} accepted by a killed kernel before it journaled them" if lost_to_kill else "")))
        inv = self.http.get(f"{self.sim}/_sim/invariants", headers=ADMIN).json()
        broken = inv.get("problems", inv) if isinstance(inv, dict) else inv
        report.invariants.append(Invariant("exchange balances never negative", not broken, "ok" if not broken else str(broken)[:200]))
        report.figures.update({
            "signals sent": len(self.sent),
            "signals accepted by a kernel": len(coids),
            "orders on the exchange": len(orders),
            "placements refused/failed without an order": len(coids) - len(per_coid.keys() & coids.keys()),
            "kernels": self.kernel_count,
            "bus": self.bus,
            "duration": f"{time.time() - self.started:.1f}s",
        })


    def _check_orders_flow(self, kills: list[Fault]) -> None:
        if not kills:
            return
        reqs = self.http.get(f"{self.sim}/_sim/requests", headers=ADMIN, params={"endpoint": "orders_add"}).json()
        accepted = [r for r in (reqs["requests"] if isinstance(reqs, dict) else reqs)
                    if r.get("status") == 200 and r.get("order_id")]
        self.report.invariants.append(
            orders_flow_invariant(self.report.failovers, self.sent, accepted, LEASE_TTL + 3.0))

    def _check_alerts(self) -> None:
        """Every fault produced the alerts it declares (or declared none), delivered in time."""
        deadline = max((f.at + e.within for f in self.injected for e in f.expects), default=0.0)
        while True:
            received = self.receiver.snapshot()
            missing = [(f, e) for f in self.injected for e in f.expects if find_alert(e, f, received) is None]
            if not missing or time.time() > deadline + 5.0:
                break
            time.sleep(0.5)
        expected = seen = none = 0
        lines: list[str] = []
        problems: list[str] = []
        for f in self.injected:
            if not f.expects:
                none += 1
                lines.append(f"#{f.index} {f.what}: no alert expected (declared)")
                continue
            for e in f.expects:
                expected += 1
                got = find_alert(e, f, received)
                f.seen.append((e, got))
                if got is None:
                    problems.append(f"#{f.index} {f.kind}: no {describe(e)}")
                    lines.append(f"#{f.index} {f.what}: MISSING {describe(e)}")
                    continue
                seen += 1
                first = float(got.alert.get("first_seen") or got.at)
                when = f"raised {first - f.at:+.1f}s" if first >= f.at else "already firing"
                lines.append(f"#{f.index} {f.what}: {got.alert.get('source')} '{got.alert.get('title')}' "
                             f"[{got.alert.get('level')}] from {got.instance} ({when}, delivered {got.at - f.at:+.1f}s)")
        self.report.alerts = lines
        with (self.workdir / "alerts.jsonl").open("w") as out:
            for got in received:
                out.write(json.dumps({"received": got.at, "instance": got.instance, "kind": got.kind,
                                      "alert": got.alert}, default=str) + "\n")
        self.report.figures["alerts delivered"] = f"{len(received)} in {self.receiver.notifications} notifications"
        self.report.invariants.append(Invariant(
            "every fault produced its alert", not problems,
            f"{len(self.injected)} faults: {seen} of {expected} expected alerts delivered, {none} declared none"
            + (f"; missing: {'; '.join(problems[:4])}" if problems else "")))
