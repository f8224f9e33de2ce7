"""Injecting a scenario's faults (internal): the simulator's fault API, signals to kernels, the
private redis-server and the proxies in front of it, the kernels' data dirs. A mixin of
:class:`hrkernel_chaos.runner.ChaosRun`, which owns the state these methods use."""

from __future__ import annotations

import signal as signals
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from hrkernel_chaos.alerts import Injected, default_expectations
from hrkernel_chaos.readonly import ReadOnlyDir
from hrkernel_chaos.report import Failover, KernelInfo, Report
from hrkernel_chaos.scenario import Fault, Scenario

if TYPE_CHECKING:
    from pathlib import Path

    from hrkernel_chaos.netcut import TcpProxy
    from hrkernel_chaos.procs import Child, Processes

ADMIN = {"X-Sim-Admin-Token": "sim-admin"}


class FaultInjection:
    """Every ``kind`` of :class:`~hrkernel_chaos.scenario.Fault`, injected and recorded."""

    if TYPE_CHECKING:
        scenario: Scenario
        http: httpx.Client
        report: Report
        say: Callable[[str], None]
        threads: list[threading.Thread]
        base_faults: dict[str, Any]
        kernels: list[KernelInfo]
        kernel_count: int
        killed: set[int]
        procs: Processes
        redis: Child | None
        redis_port: int
        proxies: dict[str, TcpProxy]
        readonly: list[ReadOnlyDir]
        injected: list[Injected]
        workdir: Path
        _fault_index: int
        _current: Injected | None

        @property
        def sim(self) -> str: ...

        def leader(self, timeout: float = 0.0) -> KernelInfo | None: ...

        def _start_kernel(self, name: str, cfg: Path) -> Child: ...


    def _later(self, seconds: float, fn: Callable[[], None]) -> None:
        def run() -> None:
            time.sleep(seconds)
            fn()
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.threads.append(t)

    def _put_faults(self, extra: dict[str, Any]) -> None:
        config = dict(self.base_faults)
        config.update(extra)
        self.http.put(f"{self.sim}/_sim/faults", headers=ADMIN, json=config).raise_for_status()

    def _restore_faults(self) -> None:
        try:
            self._put_faults({})
        except httpx.HTTPError:
            pass

    def inject(self, fault: Fault) -> None:
        """Inject ``fault`` and record it (time, the kernels it hit, the alerts it must raise)."""
        self._fault_index += 1
        lasts = fault.duration if fault.kind not in ("sim_script", "kill_leader") else 0.0
        record = Injected(self._fault_index, fault.kind, fault.kind, time.time(), [],
                          default_expectations(fault, self.kernel_count, self.scenario.failover_timeout), lasts)
        before = len(self.report.faults)
        self._current = record
        try:
            self._inject(fault)
        finally:
            self._current = None
        if len(self.report.faults) > before:
            record.what = self.report.faults[-1]
        if "skipped" in record.what:
            record.expects = []
        self.injected.append(record)

    def _hit(self, *names: str) -> None:
        if self._current is not None:
            self._current.faulted.extend(names)

    def _targets(self, target: str, default: str) -> list[KernelInfo]:
        target = target or default
        if target == "all":
            return [k for k in self.kernels if k.child.alive]
        leader = self.leader(timeout=self.scenario.failover_timeout)
        if target == "leader":
            return [leader] if leader is not None else []
        return [k for k in self.kernels if k is not leader and k.child.alive]

    def _inject(self, fault: Fault) -> None:
        kind = fault.kind
        if kind == "sim_script":
            self.http.post(f"{self.sim}/_sim/faults/script", headers=ADMIN,
                           json={"endpoint": fault.endpoint, "kind": fault.fault, "count": fault.count}).raise_for_status()
            self._note(f"{fault.fault} x{fault.count} on {fault.endpoint}")
        elif kind == "sim_errors":
            self._put_faults({"endpoints": {fault.endpoint: {fault.fault: fault.rate}}})
            self._note(f"{fault.fault} at rate {fault.rate} on {fault.endpoint} for {fault.duration}s")
            self._later(fault.duration, self._restore_faults)
        elif kind == "sim_down":
            self._put_faults({"endpoints": {"*": {"error_503": 1.0}}})
            self._note(f"exchange down (503 everywhere) for {fault.duration}s")
            self._later(fault.duration, self._restore_faults)
        elif kind == "sim_latency":
            self._put_faults({"latency": {"fixed": f"{int(fault.latency * 1000)}ms"}})
            self._note(f"latency {fault.latency}s on every request for {fault.duration}s")
            self._later(fault.duration, self._restore_faults)
        elif kind == "kill_leader":
            self._kill_leader(fault)
        elif kind == "pause_leader":
            self._pause_leader(fault)
        elif kind == "redis_restart":
            self._redis_restart(fault)
        elif kind == "redis_cut":
            self._redis_cut(fault)
        elif kind == "feed_stale":
            self._feed_stale(fault)
        elif kind == "duckdb_readonly":
            self._duckdb_readonly(fault)

    def _note(self, what: str) -> None:
        self.report.faults.append(what)
        self.say(f"fault: {what}")

    def _kill_leader(self, fault: Fault) -> None:
        leader = self.leader(timeout=self.scenario.failover_timeout)
        if leader is None:
            self._note("kill_leader skipped: no leader")
            return
        t0 = time.time()
        self._hit(leader.name)
        leader.child.send(signals.SIGKILL)
        leader.child.proc.wait(10)  # type: ignore[union-attr]
        self.killed.add(id(leader.child))
        self._note(f"SIGKILL {leader.name} (the leader)")
        if fault.restart:
            leader.past.append(leader.child)
            leader.child = self._start_kernel(leader.name, leader.config)
        self._await_failover("SIGKILL", leader, t0)

    def _await_failover(self, cause: str, old: KernelInfo, t0: float) -> None:
        deadline = time.monotonic() + self.scenario.failover_timeout
        while time.monotonic() < deadline:
            for k in self.kernels:
                if k is old and cause != "SIGKILL":
                    continue
                event = k.child.find("trading_enabled", since=t0)
                if event is not None:
                    took = event["_t"] - t0
                    self.report.failovers.append(Failover(cause, old.name, k.name, took, at=t0))
                    self.say(f"{k.name} took over and trades (fence {event.get('fence')}) {took:.2f}s after {cause}")
                    return
            time.sleep(0.05)
        self.report.failovers.append(Failover(cause, old.name, None, None, at=t0))
        self.say(f"no instance took over within {self.scenario.failover_timeout}s after {cause}")

    def _pause_leader(self, fault: Fault) -> None:
        leader = self.leader(timeout=self.scenario.failover_timeout)
        if leader is None:
            self._note("pause_leader skipped: no leader")
            return
        t0 = time.time()
        self._hit(leader.name)
        leader.child.send(signals.SIGSTOP)
        leader.child.paused = True
        self._note(f"SIGSTOP {leader.name} (the leader) for {fault.duration}s")

        def resume() -> None:
            leader.child.paused = False
            leader.child.send(signals.SIGCONT)
            self.say(f"SIGCONT {leader.name}")

        if len(self.kernels) > 1:
            self._await_failover("SIGSTOP", leader, t0)
            left = fault.duration - (time.time() - t0)
            self._later(max(0.0, left), resume)
        else:
            self._later(fault.duration, resume)

    def _redis_restart(self, fault: Fault) -> None:
        if self.redis is None:
            return
        leader = self.leader(timeout=2.0)
        self._hit(*([leader.name] if leader is not None else []))
        self.redis.stop(10)
        self._note(f"redis-server stopped for {fault.duration}s")

        def start_again() -> None:
            assert self.redis is not None
            self.redis = self.procs.redis(self.redis_port)
            self.say("redis-server started again")

        self._later(fault.duration, start_again)

    def _redis_cut(self, fault: Fault) -> None:
        mode = fault.mode or "rst"
        targets = self._targets(fault.target, "all")
        leader = self.leader(timeout=2.0)
        if fault.target in ("leader", "standby"):
            self._hit(*(k.name for k in targets))
        else:
            self._hit(*([leader.name] if leader is not None else []))
        for k in targets:
            self.proxies[k.name].cut(mode)
        names = ", ".join(k.name for k in targets) or "nobody"
        self._note(f"Redis cut off ({mode}) for {names} for {fault.duration}s")
        if leader is not None and leader in targets and len(targets) < len(self.kernels):
            self._later(0.0, lambda: self._await_failover("Redis cut", leader, time.time()))

        def restore() -> None:
            for k in targets:
                self.proxies[k.name].restore()
            self.say(f"Redis reachable again for {names}")

        self._later(fault.duration, restore)

    def _feed_stale(self, fault: Fault) -> None:
        symbol = (fault.symbol or self.scenario.symbol).upper()
        self.http.post(f"{self.sim}/_sim/markets/{symbol}", headers=ADMIN, json={"feed": "silent"}).raise_for_status()
        self._note(f"market data of {symbol} silent for {fault.duration}s")

        def restore() -> None:
            try:
                self.http.post(f"{self.sim}/_sim/markets/{symbol}", headers=ADMIN, json={"feed": "live"})
            except httpx.HTTPError:
                pass
            self.say(f"market data of {symbol} flows again")

        self._later(fault.duration, restore)

    def _duckdb_readonly(self, fault: Fault) -> None:
        targets = self._targets(fault.target, "leader")
        self._hit(*(k.name for k in targets))
        dirs = [ReadOnlyDir(self.workdir / k.name) for k in targets]
        how = ""
        for ro in dirs:
            self.readonly.append(ro)
            how = ro.make_readonly()
        names = ", ".join(k.name for k in targets) or "nobody"
        self._note(f"data dir of {names} read-only ({how}) for {fault.duration}s")

        def restore() -> None:
            for ro in dirs:
                ro.restore()
            self.say(f"data dir of {names} writable again")

        self._later(fault.duration, restore)
