"""Failover time as orders flowing: SIGKILL of the leader → the new leader's first order accepted.

Run: ``python -m pytest bench/test_bench_failover.py --benchmark-only -s`` (about 2-3 min).

Each round runs what a desk runs: ``hrkernel sim serve`` (Nobitex's rate limits on, its default),
a private Redis, and two ``hrkernel run`` kernels configured as the README's HA pair: the Redis
lease (hr.toml's ``[ha]`` defaults: TTL 3 s, renewal every 500 ms, margin 1 s), hot-standby
replication, the Redis bus and the webhook intake. The leader gets 20 resting limit buys (orders in flight: resting on the exchange, or
journaled and waiting for an execution slot) and is SIGKILLed once the standby holds them in its
replicated journal. From the kill on, market-buy signals are posted to both kernels' webhooks every
0.5 s (the redundant-alert setup; 2 a second is well inside Nobitex's 300 placements per 10
minutes). A round's figure is the time from the kill to the first placement by the new leader
that the simulator accepted (its request log, same clock); the kernel's own record
(``/api/leadership`` ``failover_time``, from the old leader's last renewal) and the lease
takeover (``lease_takeover_time``) are kept beside it, with every HTTP 429 the pair earned from
the kill to the end of the round, and each signal's time from its webhook post to its order on
the exchange. Targets: median <= TTL + 1 s, max <= TTL + 3 s, signal → order p99 <= TTL + 3 s,
0 answers 429 (figures in ``bench/results/failover.json`` and ``bench/report.py``'s table).

Also: the last-hop ``fence_check()`` round trip against a plain ``GET`` on the same Redis (the
peer), per call, over 1000 calls.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from hrkernel.ha.config import HASection

DEFAULTS = HASection()
TTL = float(DEFAULTS.lease_ttl)
ROUNDS = int(os.environ.get("HR_BENCH_FAILOVER_ROUNDS", "5"))
IN_FLIGHT = 20
SECRET = "bench-failover"
ADMIN = {"X-Sim-Admin-Token": "sim-admin"}
RESULTS = Path(__file__).resolve().parent / "results" / "failover.json"

pytestmark = pytest.mark.benchmark(group="ha-failover")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            value = None
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"{what} not within {timeout}s")


class Kernel:
    """``hrkernel run`` as a subprocess; its JSON log lines collected."""

    def __init__(self, name: str, workdir: Path, redis_url: str, prefix: str, sim: str) -> None:
        self.name, self.web = name, _port()
        cfg = workdir / f"{name}.toml"
        cfg.write_text(f"""
[kernel]
instance_id = "{name}"
data_dir = "{workdir / name}"
[logging]
format = "json"
[dashboard]
port = {self.web}
[ha]
backend = "redis"
redis_url = "{redis_url}"
key_prefix = "{prefix}"
[bus]
backend = "redis"
[bus.redis]
url = "{redis_url}"
prefix = "{prefix}:bus:"
[health.checks.duckdb_writable]
enabled = false
[webhook]
enabled = true
secret = "{SECRET}"
exchange = "main"
[exchanges.main]
type = "nobitex"
token = "sim-token-default"
base_url = "{sim}"
bot_name = "{name}"
[orders]
halt_on_drift = false
max_open_orders = 500
""")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HRKERNEL_")}
        self.events: list[dict[str, Any]] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "hrkernel", "run", str(cfg)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env, cwd=str(workdir))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.events.append(event)

    def wait_for(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        return dict(_wait(lambda: next((e for e in self.events if e.get("event") == name), None), timeout,
                          f"{self.name}: {name}"))

    def get(self, path: str) -> Any:
        return httpx.get(f"http://127.0.0.1:{self.web}{path}", timeout=5).json()["data"]

    def post(self, body: dict[str, Any]) -> None:
        httpx.post(f"http://127.0.0.1:{self.web}/webhooks/tradingview", json={"secret": SECRET, **body}, timeout=2)

    def open_orders(self) -> int:
        counts = self.get("/api/orders?limit=1").get("counts") or {}
        return sum(int(counts.get(s, 0)) for s in ("PREPARED", "SUBMITTING", "UNKNOWN", "ACKED", "PARTIALLY_FILLED"))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Round:
    """One simulator, two kernels, 20 orders in flight on the leader; then the kill."""

    def __init__(self, number: int, redis_url: str) -> None:
        self.number = number
        self.workdir = Path(tempfile.mkdtemp(prefix="hr-bench-failover-"))
        port = _port()
        (self.workdir / "sim.toml").write_text('admin_token = "sim-admin"\n')  # Nobitex's limits on
        self.sim_proc = subprocess.Popen(
            [sys.executable, "-m", "hrkernel", "sim", "serve", "--port", str(port), "--config",
             str(self.workdir / "sim.toml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.sim = f"http://127.0.0.1:{port}"
        _wait(lambda: httpx.get(f"{self.sim}/_sim/orders", headers=ADMIN, timeout=1).status_code == 200, 30, "simulator")
        # A fresh exchange per round: the token's shared rate budget in Redis must start empty too
        # (it would still count the previous round's sends against this simulator's empty windows).
        import redis

        with redis.Redis.from_url(redis_url) as client:
            client.flushdb()
        prefix = f"fb{os.getpid()}-{number}"
        self.a = Kernel("hr-a", self.workdir, redis_url, prefix, self.sim)
        self.a.wait_for("orders_trading_enabled")
        self.b = Kernel("hr-b", self.workdir, redis_url, prefix, self.sim)
        self.b.wait_for("ready")
        mid = Decimal(httpx.get(f"{self.sim}/_sim/markets/BTCIRT", headers=ADMIN, timeout=5).json()["mid"])
        for i in range(IN_FLIGHT):  # distinct prices: Nobitex ignores identical orders within 10 s
            price = (mid * Decimal("0.96")).quantize(Decimal("10")) - 10 * i
            self.a.post({"ticker": "BTCIRT", "action": "buy", "amount": "0.001", "order_type": "limit",
                         "price": str(price), "id": f"rest-{number}-{i}"})
        _wait(lambda: self.a.open_orders() == IN_FLIGHT and self.b.open_orders() == IN_FLIGHT, 60, "20 in flight")
        self.posted: dict[str, float] = {}
        self._stop = threading.Event()
        self.killed_at = 0.0

    def _feed(self) -> None:
        i = 0
        while not self._stop.is_set():
            signal_id = f"after-{self.number}-{i}"
            body = {"ticker": "BTCIRT", "action": "buy", "amount": str(Decimal("0.001") + Decimal(i) / 10**6),
                    "id": signal_id}
            self.posted[signal_id] = time.time()
            for kernel in (self.a, self.b):  # both intakes, as the README's HA setup has it
                try:
                    kernel.post(body)
                except httpx.HTTPError:
                    pass  # the killed one
            i += 1
            self._stop.wait(0.5)

    def requests(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.sim}/_sim/requests", headers=ADMIN, timeout=5).json()["requests"])

    def kill_and_wait_for_orders(self) -> float:
        self.killed_at = time.time()
        self.a.kill()
        threading.Thread(target=self._feed, daemon=True).start()
        first = _wait(lambda: [r for r in self.requests() if r["endpoint"] == "orders_add" and r["instance"] == "hr-b"
                               and r["status"] == 200 and not r["code"] and r["time"] >= self.killed_at], 60,
                      "the new leader's first accepted order")
        self.first_at = min(r["time"] for r in first)
        return self.first_at - self.killed_at

    def finish(self) -> dict[str, Any]:
        time.sleep(3.0)  # signals keep coming a little after the takeover
        self._stop.set()
        time.sleep(1.0)
        from hrkernel.orders.pipeline import client_order_id_for

        placed: dict[str, float] = {}
        for r in self.requests():
            if r["endpoint"] == "orders_add" and r["status"] == 200 and not r["code"] and r["client_order_id"]:
                placed.setdefault(r["client_order_id"], r["time"])
        latencies = [placed[c] - t for s, t in self.posted.items()
                     if (c := client_order_id_for("main", f"-:{s}")) in placed]
        lead = self.b.get("/api/leadership")
        out = {
            "failover_s": self.first_at - self.killed_at,
            "kernel_failover_s": (lead.get("failover_time") or {}).get("last"),
            "lease_takeover_s": (lead.get("lease_takeover_time") or {}).get("last"),
            "answers_429": len([r for r in self.requests() if r["status"] == 429 and r["time"] >= self.killed_at]),
            "signals": len(self.posted), "signals_placed": len(latencies), "latencies": latencies,
        }
        self.close()
        return out

    def close(self) -> None:
        self._stop.set()
        self.a.kill()
        self.b.kill()
        self.sim_proc.kill()
        self.sim_proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _write(figures: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    ratios = [
        {"label": "SIGKILL -> first order accepted, median vs lease TTL + 1 s", "ours": f"{figures['median_s']} s",
         "peer": f"{TTL + 1:g} s", "ratio": round(figures["median_s"] / (TTL + 1), 2), "target": "<= 1.0",
         "met": figures["median_s"] <= TTL + 1},
        {"label": "SIGKILL -> first order accepted, max vs lease TTL + 3 s", "ours": f"{figures['max_s']} s",
         "peer": f"{TTL + 3:g} s", "ratio": round(figures["max_s"] / (TTL + 3), 2), "target": "<= 1.0",
         "met": figures["max_s"] <= TTL + 3},
        {"label": "signal posted -> order on the exchange during failovers, p99 vs lease TTL + 3 s",
         "ours": f"{figures['signal_p99_s']} s", "peer": f"{TTL + 3:g} s",
         "ratio": round(figures["signal_p99_s"] / (TTL + 3), 2), "target": "<= 1.0",
         "met": figures["signal_p99_s"] <= TTL + 3},
        {"label": "HTTP 429 answers earned by the pair from the kills to the rounds' end", "ours": figures["answers_429"],
         "peer": 0, "ratio": float(figures["answers_429"]), "target": "0", "met": figures["answers_429"] == 0},
    ]
    RESULTS.write_text(json.dumps({**figures, "ratios": ratios}, indent=2) + "\n")


def test_failover_time_until_orders_flow_after_sigkill_of_the_leader(benchmark: Any, redis_url: str) -> None:
    rounds: list[Round] = []
    results: list[dict[str, Any]] = []
    counter = iter(range(1000))

    def setup() -> tuple[tuple[Round], dict[str, Any]]:
        if rounds:
            results.append(rounds[-1].finish())
        rounds.append(Round(next(counter), redis_url))
        return (rounds[-1],), {}

    try:
        benchmark.pedantic(Round.kill_and_wait_for_orders, setup=setup, rounds=ROUNDS, iterations=1)
        results.append(rounds[-1].finish())
    finally:
        for r in rounds:
            r.close()
    times = [r["failover_s"] for r in results]
    latencies = sorted(x for r in results for x in r["latencies"])
    p99 = latencies[max(0, int(len(latencies) * 0.99 + 0.999) - 1)] if latencies else float("nan")
    figures = {
        "rounds": len(results), "ttl_s": TTL, "in_flight": IN_FLIGHT,
        "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
        "kernel_failover_s": [r["kernel_failover_s"] and round(r["kernel_failover_s"], 3) for r in results],
        "lease_takeover_s": [r["lease_takeover_s"] and round(r["lease_takeover_s"], 3) for r in results],
        "answers_429": sum(r["answers_429"] for r in results),
        "signals": sum(r["signals"] for r in results), "signals_placed": len(latencies),
        "signal_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "signal_p99_s": round(p99, 3),
    }
    benchmark.extra_info.update(figures)
    _write(figures)
    print(f"\nSIGKILL -> first order accepted over {len(times)} rounds, {IN_FLIGHT} orders in flight, simulator "
          f"limits on: median {figures['median_s']} s, max {figures['max_s']} s (TTL {TTL:g} s: targets median <= "
          f"{TTL + 1:g} s, max <= {TTL + 3:g} s); lease takeover {figures['lease_takeover_s']}; "
          f"signal -> order p50 {figures['signal_p50_s']} s, p99 {figures['signal_p99_s']} s over "
          f"{figures['signals_placed']}/{figures['signals']} signals; 429 answers: {figures['answers_429']}")


CALLS = 1000


def _round_trips(url: str, fenced: bool) -> float:
    """Seconds per call over CALLS calls: ``fence_check()`` or (peer) a plain ``GET``."""
    import anyio

    from hrkernel.ha.redis_lease import RedisLease, connect

    async def go() -> float:
        lease = RedisLease("bench-fence", url, key_prefix="fence-bench", ttl=30.0, renew_interval=0.5, margin=1.0)
        client = connect(url, 1.0)
        try:
            await lease.tick()
            assert lease.is_leader and await lease.fence_check()
            await client.get("fence-bench:lease")  # both sides start with a warm connection
            began = time.perf_counter()
            for _ in range(CALLS):
                if fenced:
                    await lease.fence_check()
                else:
                    await client.get("fence-bench:lease")
            return (time.perf_counter() - began) / CALLS
        finally:
            await lease.stop()
            await client.aclose()

    return anyio.run(go)


@pytest.mark.benchmark(group="ha-fence")
def test_peer_plain_get_round_trip(benchmark: Any, redis_url: str) -> None:
    per_call = benchmark.pedantic(_round_trips, args=(redis_url, False), rounds=5, iterations=1)
    benchmark.extra_info["per_call_ms"] = round(per_call * 1000, 4)


@pytest.mark.benchmark(group="ha-fence")
def test_fence_check_round_trip(benchmark: Any, redis_url: str) -> None:
    per_call = benchmark.pedantic(_round_trips, args=(redis_url, True), rounds=5, iterations=1)
    # Compare the two rows of the "ha-fence" group (each round = 1000 calls); a single extra
    # baseline run here would be too noisy to divide by.
    benchmark.extra_info["per_call_ms"] = round(per_call * 1000, 4)
