"""Failover that resumes trading: two `hrkernel run`s with the Redis lease and hot-standby
replication on one private Redis, trading on `hrkernel sim serve` over HTTP.

- The leader is SIGKILLed with 20 orders in flight: the new leader's first new order is on the
  exchange while it still recovers those 20 (serial recovery in front of trading held it back).
- A leader SIGSTOPped past its lease and resumed goes quiet at once: no verification polls,
  look-ups or resubmissions from it reach the exchange after it learns it lost the lease.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from hrkernel.orders.pipeline import client_order_id_for
from tests.helpers.process import wait_for_answer as wait_until

pytestmark = pytest.mark.slow

SECRET = "failover-trading-secret"
ADMIN = {"X-Sim-Admin-Token": "sim-admin"}
OPEN = ("PREPARED", "SUBMITTING", "UNKNOWN", "ACKED", "PARTIALLY_FILLED")


@pytest.fixture
def simulator(unused_port: Callable[[], int], tmp_path: Path) -> Iterator[str]:
    port = unused_port()
    cfg = tmp_path / "sim.toml"
    # The identical-order window is off: twenty identical resting buys are twenty signals here.
    cfg.write_text('admin_token = "sim-admin"\nduplicate_window = "0s"\n[rate_limits]\nenabled = false\n')
    proc = subprocess.Popen([sys.executable, "-m", "hrkernel", "sim", "serve", "--port", str(port), "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/_sim/orders", headers=ADMIN, timeout=1).status_code == 200, 30, "simulator up")
        yield url
    finally:
        proc.kill()
        proc.wait(10)


class Node:
    def __init__(self, name: str, web: int, proc: Any) -> None:
        self.name, self.web, self.proc = name, web, proc

    def get(self, path: str) -> Any:
        return httpx.get(f"http://127.0.0.1:{self.web}{path}", timeout=5).json()["data"]

    def open_orders(self) -> int:
        counts = self.get("/api/orders?limit=1").get("counts") or {}
        return sum(int(counts.get(state, 0)) for state in OPEN)

    def post(self, body: dict[str, Any]) -> None:
        response = httpx.post(f"http://127.0.0.1:{self.web}/webhooks/tradingview", json={"secret": SECRET, **body},
                              timeout=5)
        assert response.status_code == 200, response.text


@pytest.fixture
def node(kernel_process: Any, redis_server: Any, simulator: str, tmp_path: Path, unused_port: Callable[[], int]) -> Any:
    def start(name: str, verify_deadline: str = "5s") -> Node:
        web = unused_port()
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(f"""
[kernel]
instance_id = "{name}"
data_dir = "{tmp_path / name}"
[logging]
format = "json"
[dashboard]
port = {web}
required = true
[ha]
backend = "redis"
redis_url = "{redis_server.url}"
key_prefix = "ft"
lease_ttl = "2s"
renew_interval = "200ms"
margin = "600ms"
replication_interval = "50ms"
[health.checks.duckdb_writable]
enabled = false
[webhook]
enabled = true
secret = "${{HR_SECRET}}"
exchange = "main"
[exchanges.main]
type = "nobitex"
token = "sim-token-default"
base_url = "{simulator}"
bot_name = "{name}"
[orders]
reconcile_interval = "2s"
halt_on_drift = false
max_open_orders = 100
verify_deadline = "{verify_deadline}"
""")
        proc = kernel_process(cfg, env={"HR_SECRET": SECRET}, cwd=tmp_path)
        proc.wait_for("ready", timeout=30)
        return Node(name, web, proc)

    return start


def resting_price(sim: str) -> str:
    """A buy price 4% under the market: the order rests (stays open) on the exchange."""
    mid = Decimal(httpx.get(f"{sim}/_sim/markets/BTCIRT", headers=ADMIN, timeout=5).json()["mid"])
    return str((mid * Decimal("0.96")).quantize(Decimal("10")))


def sim_orders(sim: str, **query: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{sim}/_sim/orders", headers=ADMIN, params=query, timeout=5).json()["orders"])


def place_resting(leader: Node, sim: str, n: int) -> None:
    price = resting_price(sim)
    for i in range(n):
        leader.post({"ticker": "BTCIRT", "action": "buy", "amount": "0.001", "order_type": "limit", "price": price,
                     "id": f"rest-{i}"})


def test_the_new_leaders_first_order_is_accepted_while_twenty_in_flight_orders_are_still_recovered(
    node: Any, simulator: str
) -> None:
    a = node("hr-a")
    a.proc.wait_for("orders_trading_enabled", timeout=30)
    b = node("hr-b")
    place_resting(a, simulator, 20)
    # Twenty orders in flight, in the journal the standby replicated: resting on the exchange
    # (verified until the deadline), or sent and not seen yet, or waiting for an execution slot.
    wait_until(lambda: a.open_orders() == 20 and b.open_orders() == 20, 30, "20 open orders replicated")
    wait_until(lambda: len(sim_orders(simulator, status="Active")) >= 4, 30, "orders resting on the exchange")

    a.proc.kill()
    b.proc.wait_for("trading_enabled", timeout=15)  # the lease: takeover
    b.post({"ticker": "BTCIRT", "action": "buy", "amount": "0.001", "id": "after-kill"})
    coid = client_order_id_for("main", "-:after-kill")  # the webhook's signal id: "<strategy or ->:<id>"
    # The first order of the new tenure reaches the exchange. Recovering 20 orders one after
    # another in front of trading (each verified up to verify_deadline = 5 s) held it ~100 s.
    new = wait_until(lambda: sim_orders(simulator, clientOrderId=coid), 30, "the new leader's first order on the exchange")
    recovery_done = [e for e in b.proc.events if e.get("event") == "orders_recovery_finished"]
    assert recovery_done == [], "the new order waited for every in-flight order to be recovered"
    started = b.proc.wait_for("orders_recovery_started", timeout=5)
    assert started["orders"] == 20
    assert new[0]["instance"] == "hr-b"
    # Failover time is SIGKILL (the old leader's last renewal) → this first accepted order; the
    # lease takeover is reported beside it, in the API, the log and the metrics.
    flowing = b.proc.wait_for("orders_flowing", timeout=10)
    leadership = wait_until(lambda: (d := b.get("/api/leadership"))["failover_time"]["count"] == 1 and d, 10,
                            "failover time recorded")
    lease, trading = leadership["lease_takeover_time"], leadership["failover_time"]
    assert lease["count"] == 1 and trading["last"] == pytest.approx(flowing["failover_s"], abs=1e-3)
    assert trading["last"] > lease["last"] > 0
    metrics = httpx.get(f"http://127.0.0.1:{b.web}/metrics", timeout=5).text
    assert 'hrkernel_failover_duration_seconds_count{group="trading"} 1.0' in metrics
    assert 'hrkernel_failover_duration_seconds_count{group="leadership"} 1.0' in metrics
    finished = b.proc.wait_for("orders_recovery_finished", timeout=90)
    assert finished["orders"] == 20 and finished["resolved"] == 20
    # Recovery resolved each of them exactly once: one order per client order id on the exchange.
    coids = [o["clientOrderId"] for o in sim_orders(simulator)]
    assert len(coids) == len(set(coids)) == 21


def test_a_deposed_leader_stops_polling_the_exchange_at_once(node: Any, simulator: str) -> None:
    a = node("hr-a", verify_deadline="60s")
    a.proc.wait_for("orders_trading_enabled", timeout=30)
    b = node("hr-b", verify_deadline="60s")
    place_resting(a, simulator, 4)
    wait_until(lambda: len(sim_orders(simulator, status="Active")) == 4, 30, "4 orders resting, verified by hr-a")

    a.proc.signal(signal.SIGSTOP)  # past its 2 s lease: hr-b takes over
    b.proc.wait_for("trading_enabled", timeout=15)
    seq = max([int(r["seq"]) for r in httpx.get(f"{simulator}/_sim/requests", headers=ADMIN, timeout=5)
               .json()["requests"]] or [0])
    a.proc.signal(signal.SIGCONT)
    a.proc.wait_for("leadership_lost", timeout=10)
    time.sleep(6)  # several of the old leader's poll intervals (poll_max is 2 s)
    from_a = [r for r in httpx.get(f"{simulator}/_sim/requests", headers=ADMIN, params={"since": seq, "instance": "hr-a"},
                                   timeout=5).json()["requests"]]
    # At most what was already on the wire when it stopped; nothing after it knew.
    assert len(from_a) <= 1, from_a
    noisy = [e for e in a.proc.events if e.get("event") in ("order_verify_poll_failed", "order_resubmitting",
                                                             "order_lookup_failed", "order_verify_rate_limited")]
    assert noisy == [], noisy
