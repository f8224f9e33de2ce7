"""Run a chaos scenario against real processes and check the invariants.

The simulator's admin log is the ground truth: which orders reached the exchange, from which
instance, under which fencing token. The kernels' JSON logs give failovers and errors; the
surviving leader's dashboard API gives its ledger."""

from __future__ import annotations

import json
import random
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from hrkernel.chaos.alerts import AlertReceiver, Injected, describe, find_alert
from hrkernel.chaos.faults import ADMIN, FaultInjection
from hrkernel.chaos.flow import orders_flow_invariant
from hrkernel.chaos.netcut import TcpProxy
from hrkernel.chaos.procs import Child, Processes, free_port, wait_for_port
from hrkernel.chaos.readonly import ReadOnlyDir
from hrkernel.chaos.report import Failover, Invariant, KernelInfo, Report
from hrkernel.chaos.scenario import Fault, Scenario
from hrkernel.ha.config import HASection
from hrkernel.orders.pipeline import client_order_id_for

__all__ = ["ADMIN", "ChaosRun", "Failover", "Invariant", "KernelInfo", "Report", "run_scenario"]
SECRET = "chaos-webhook-secret"
EXCHANGE = "sim"
FINAL = {"Done", "Canceled"}
TERMINAL = {"REJECTED", "VERIFIED", "FAILED"}

# Error-level log events that are the expected, handled consequence of injected faults.
EXPECTED_ERRORS = {
    "alert_raised", "order_outcome_unknown", "order_lookup_failed", "order_verify_poll_failed",
    "leadership_lost", "redis_unreachable", "lease_renew_failed", "exchange_request_failed",
    "breaker_opened", "order_rejected", "order_unresolved", "health_check_failed", "reconcile_failed",
    "orders_alert",
}

# ... and those of a data dir made read-only (duckdb_readonly): every DuckDB write fails
READONLY_ERRORS = {
    "alert_history_write_failed", "health_history_write_failed", "signal_inbox_write_failed",
    "orders_reconcile_failed", "replication_failed",
}

Say = Callable[[str], None]




def _kernel_config(name: str, data: Path, web: int, sim: int, redis_url: str | None, prefix: str,
                   bus: str, alerts_url: str = "", feed: str = "") -> str:
    ha = (f'[ha]\nbackend = "redis"\nredis_url = "{redis_url}"\nkey_prefix = "{prefix}"\n'
          if redis_url else '[ha]\nbackend = "local"\n')
    if bus == "redis" and redis_url:
        ha += f'[bus]\nbackend = "redis"\n[bus.redis]\nurl = "{redis_url}"\nprefix = "{prefix}:bus:"\n'

    return f"""# written by hrkernel chaos
[kernel]
instance_id = "{name}"
data_dir = "{data}"
[logging]
format = "json"
level = "info"
{ha}[dashboard]
port = {web}
required = true
[webhook]
enabled = true
secret = "${{HR_CHAOS_SECRET}}"
exchange = "{EXCHANGE}"
[exchanges.{EXCHANGE}]
type = "nobitex"
token = "${{HR_CHAOS_SIM_TOKEN}}"
base_url = "http://127.0.0.1:{sim}"
bot_name = "{name}"
retry_base_delay = "50ms"
breaker_reset_timeout = "3s"
[orders]
verify_deadline = "20s"
reconcile_interval = "10s"
halt_on_drift = false
max_open_orders = 100
[health]
default_interval = "1s"
""" + (f"""[alerts]
group_wait = "0s"
group_interval = "1s"
[alerts.channels.chaos]
type = "webhook"
url = "{alerts_url}"
max_per_minute = 0
""" if alerts_url else "") + (f"""# market data through its own adapter and sim account: a silent feed must not open the trading
# adapter's breaker; stale_for = 0: a failing exchange's old book is not served as fresh
[exchanges.simfeed]
type = "nobitex"
token = "${{HR_CHAOS_FEED_TOKEN}}"
base_url = "http://127.0.0.1:{sim}"
bot_name = "{name}-feed"
timeout = "2s"
retry_attempts = 1
breaker_reset_timeout = "2s"
stale_for = "0s"
[datasources.feed]
type = "sim"
exchange = "simfeed"
symbols = ["{feed}"]
interval = "500ms"
ticker = false
max_age = "3s"
backoff_max = "1s"
""" if feed else "")


SIM_CONFIG = """# written by hrkernel chaos
# Nobitex's rate limits are on (the simulator's default), as the kernels meet them in production.
admin_token = "sim-admin"
[faults]
seed = {seed}
hang_for = "3s"
back_off = 1
[accounts.default]
token = "sim-token-default"
balances = {{ rls = "100000000000", usdt = "10000", btc = "1", eth = "10" }}
[accounts.feed]
token = "sim-token-feed"
"""


class ChaosRun(FaultInjection):
    """One run of a scenario: start the processes, drive the signals and faults, check."""

    def __init__(self, scenario: Scenario, *, seed: int | None = None, workdir: Path | None = None,
                 say: Say | None = None, single_process: bool = False) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.rng = random.Random(self.seed)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="hrkernel-chaos-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.say: Say = say or (lambda _msg: None)
        self.kernel_count = 1 if single_process else scenario.kernels
        self.procs = Processes(self.workdir)
        self.http = httpx.Client(timeout=5.0)
        self.kernels: list[KernelInfo] = []
        self.redis: Child | None = None
        self.redis_port = 0
        self.sim_port = 0
        self.report = Report(scenario.name, self.seed, workdir=str(self.workdir))
        self.sent: list[dict[str, Any]] = []
        self.threads: list[threading.Thread] = []
        self.base_faults: dict[str, Any] = {}
        self.started = 0.0
        self.dashboard_url = ""
        self.killed: set[int] = set()
        self._narrated: dict[str, int] = {}
        self.bus = scenario.bus if scenario.bus != "auto" else ("redis" if self.kernel_count > 1 else "memory")
        self.receiver = AlertReceiver()
        self.proxies: dict[str, TcpProxy] = {}
        """Per kernel name: the TCP proxy its Redis connections go through (redis_cut)."""
        self.readonly: list[ReadOnlyDir] = []
        self.injected: list[Injected] = []
        self.feed = scenario.symbol if (scenario.feed or any(f.kind == "feed_stale" for f in scenario.faults)) else ""
        self._fault_index = 0
        self._current: Injected | None = None

    # -- processes -------------------------------------------------------------------------------

    @property
    def sim(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    def start(self) -> None:
        self.started = time.time()
        self.sim_port = free_port()
        sim_cfg = self.workdir / "sim.toml"
        sim_cfg.write_text(SIM_CONFIG.format(seed=self.seed))
        self.procs.simulator(self.sim_port, sim_cfg)
        self.say(f"simulator listening on {self.sim}")
        self.base_faults = self.http.get(f"{self.sim}/_sim/faults", headers=ADMIN).json()["faults"]
        self.receiver.start()
        if self.kernel_count > 1:
            self.redis_port = free_port()
            self.redis = self.procs.redis(self.redis_port)
            self.say(f"private redis-server on 127.0.0.1:{self.redis_port}")
        prefix = f"chaos{self.rng.randrange(1 << 30)}"
        for i in range(self.kernel_count):
            name = f"hr-{chr(ord('a') + i)}"
            redis_url = None
            if self.redis_port:
                # each kernel reaches Redis through its own proxy, so that a cut can isolate one
                proxy = self.proxies[name] = TcpProxy(self.redis_port)
                redis_url = f"redis://127.0.0.1:{proxy.start()}/0"
            web = free_port()
            cfg = self.workdir / f"{name}.toml"
            cfg.write_text(_kernel_config(name, self.workdir / name, web, self.sim_port, redis_url, prefix, self.bus,
                                          self.receiver.url, self.feed))
            child = self._start_kernel(name, cfg)
            self.kernels.append(KernelInfo(name, cfg, web, child))
            # the first kernel leads: start the next only once it trades
            if i == 0:
                # the router subscribes once start-up reconciliation finished: signals accepted
                # before that are not guaranteed to reach it (see the README, known limits)
                child.wait_for("orders_trading_enabled", self.scenario.startup_timeout)
                time.sleep(1.0)  # the signal router polls leadership every 0.5 s before it subscribes
                self.say(f"kernel {name} is the leader (dashboard http://127.0.0.1:{web}/)")
            else:
                child.wait_for("ready", self.scenario.startup_timeout)
                self.say(f"kernel {name} stands by (dashboard http://127.0.0.1:{web}/)")
        for k in self.kernels:
            wait_for_port(k.web, self.scenario.startup_timeout, k.child.proc)
        self.dashboard_url = f"http://127.0.0.1:{self.kernels[0].web}/"

    def _start_kernel(self, name: str, cfg: Path) -> Child:
        return self.procs.kernel(name, cfg, {"HR_CHAOS_SECRET": SECRET, "HR_CHAOS_SIM_TOKEN": "sim-token-default",
                                             "HR_CHAOS_FEED_TOKEN": "sim-token-feed"})

    def close(self) -> None:
        for t in self.threads:
            t.join(30)
        for ro in self.readonly:
            ro.restore()  # also on failure: an immutable temp dir could not even be deleted
        for proxy in self.proxies.values():
            proxy.restore()
        for k in self.kernels:
            k.child.stop(15)
        self.procs.close()
        for proxy in self.proxies.values():
            proxy.close()
        self.receiver.close()
        self.http.close()

    # -- leadership ------------------------------------------------------------------------------

    def _leadership(self, k: KernelInfo) -> dict[str, Any] | None:
        if not k.child.alive or k.child.paused:
            return None
        try:
            body = self.http.get(f"http://127.0.0.1:{k.web}/api/leadership", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None
        data = body.get("data") if isinstance(body, dict) else None
        return data if isinstance(data, dict) else None

    def leader(self, timeout: float = 0.0) -> KernelInfo | None:
        deadline = time.monotonic() + timeout
        while True:
            for k in self.kernels:
                info = self._leadership(k)
                if info and info.get("role") == "leader" and info.get("trading"):
                    return k
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    # -- signals ---------------------------------------------------------------------------------

    def send_signal(self, index: int) -> None:
        action = "buy" if index % 2 else "sell"
        sid = f"chaos-{self.seed}-{index}"
        record: dict[str, Any] = {"index": index, "id": sid, "action": action, "accepted_by": None, "signal_id": None,
                                  "at": time.time()}
        body = {"secret": SECRET, "ticker": self.scenario.symbol, "action": action, "amount": self.scenario.amount, "id": sid}
        if self.scenario.deliver == "all":
            for k in self.kernels:
                if not k.child.alive or k.child.paused:
                    continue
                try:
                    response = self.http.post(f"http://127.0.0.1:{k.web}/webhooks/tradingview", json=body, timeout=5)
                except httpx.HTTPError:
                    continue
                if response.status_code == 200 and record["signal_id"] is None:
                    record["accepted_by"] = k.name
                    record["child"] = id(k.child)
                    record["signal_id"] = response.json().get("signal_id", sid)
            self.sent.append(record)
            return
        deadline = time.monotonic() + self.scenario.failover_timeout
        while time.monotonic() < deadline:
            target = self.leader(timeout=min(2.0, max(0.0, deadline - time.monotonic())))
            if target is None:
                continue
            try:
                response = self.http.post(f"http://127.0.0.1:{target.web}/webhooks/tradingview", json=body, timeout=5)
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            if response.status_code == 200:
                record["accepted_by"] = target.name
                record["child"] = id(target.child)
                record["signal_id"] = response.json().get("signal_id", sid)
                break
            time.sleep(0.2)
        self.sent.append(record)

    # -- the run ---------------------------------------------------------------------------------

    def drive(self) -> None:
        by_index: dict[int, list[Fault]] = defaultdict(list)
        for fault in self.scenario.faults:
            by_index[fault.at].append(fault)
        rnd = self.scenario.random
        for index in range(1, self.scenario.signals + 1):
            for fault in by_index.get(index, []):
                self.inject(fault)
            if rnd.rate and self.rng.random() < rnd.rate:
                kind = self.rng.choice(rnd.kinds)
                endpoint = self.rng.choice(rnd.endpoints)
                count = self.rng.randint(1, max(1, rnd.max_count))
                self.inject(Fault(at=index, kind="sim_script", endpoint=endpoint, fault=kind, count=count))
            self.send_signal(index)
            self._narrate_events()
            if index % 10 == 0:
                self.say(f"{index}/{self.scenario.signals} signals sent")
            time.sleep(self.scenario.interval)
        for t in self.threads:
            t.join(60)
        self._restore_faults()

    NARRATED = {
        "breaker_state_changed": lambda e: f"circuit breaker {e.get('breaker') or e.get('name') or ''} "
                                           f"{e.get('from_state') or e.get('old') or ''} -> {e.get('to_state') or e.get('new') or e.get('state') or ''}"
                                           f" ({e.get('reason', '')})",
        "leadership_lost": lambda e: f"leadership lost ({e.get('reason', '')})",
        "orders_halted": lambda e: f"new orders halted: {e.get('reason', '')}",
        "orders_resumed": lambda e: "new orders resumed",
        "order_outcome_unknown": lambda e: f"placement outcome unknown, looking it up by client order id ({str(e.get('error', ''))[:60]})",
        "order_resubmitting": lambda e: "order proven absent on the exchange, placing it again",
        "orders_alert": lambda e: f"alert: {str(e.get('message', ''))[:90]}",
    }

    def _narrate_events(self) -> None:
        for k in self.kernels:
            events = k.child.events
            start = self._narrated.get(k.name, 0)
            self._narrated[k.name] = len(events)
            for e in events[start:len(events)]:
                fmt = self.NARRATED.get(str(e.get("event")))
                if fmt is not None:
                    self.say(f"  [{k.name}] {fmt(e)}")

    def run(self) -> Report:
        try:
            self.start()
            self.drive()
            self.say("all signals sent; waiting for orders to settle")
            self.check()
        except Exception as exc:
            self.report.invariants.append(Invariant("run completed", False, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            self.close()
        return self.report

    # -- invariants ------------------------------------------------------------------------------

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
        coids = {client_order_id_for(EXCHANGE, s["signal_id"]): s for s in self.sent if s["signal_id"]}
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
            orders_flow_invariant(self.report.failovers, self.sent, accepted, float(HASection().lease_ttl) + 3.0))

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


def run_scenario(scenario: Scenario, *, seed: int | None = None, workdir: Path | None = None,
                 say: Say | None = None, single_process: bool = False) -> Report:
    return ChaosRun(scenario, seed=seed, workdir=workdir, say=say, single_process=single_process).run()
