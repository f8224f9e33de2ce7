"""Hot standby with real processes: two `hrkernel run`s on one private Redis, trading on one
simulator over HTTP; SIGKILL of the leader; a standby whose stream was trimmed."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.helpers.process import wait_for_answer as wait_until

pytestmark = pytest.mark.slow

SECRET = "repl-webhook-secret"
ADMIN = {"X-Sim-Admin-Token": "sim-admin"}
PREFIX = "hs"


@pytest.fixture
def simulator(unused_port: Callable[[], int], tmp_path: Path) -> Iterator[str]:
    port = unused_port()
    cfg = tmp_path / "sim.toml"
    cfg.write_text('admin_token = "sim-admin"\n[rate_limits]\nenabled = false\n')
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
    def __init__(self, name: str, cfg: Path, web: int, proc: Any) -> None:
        self.name, self.cfg, self.web, self.proc = name, cfg, web, proc

    def get(self, path: str) -> Any:
        return httpx.get(f"http://127.0.0.1:{self.web}{path}", timeout=5).json()["data"]

    def lag(self) -> dict[str, Any]:
        return self.get("/api/leadership").get("replication_lag") or {}

    def venue_balances(self) -> dict[str, Decimal]:
        return {row["currency"].upper(): Decimal(row["balance"]) for row in self.get("/api/ledger")["balances"]
                if row["account"] == f"main:{row['currency']}"}


@pytest.fixture
def node(kernel_process: Any, redis_server: Any, simulator: str, tmp_path: Path, unused_port: Callable[[], int]) -> Any:
    def start(name: str, interval: str = "50ms") -> Node:
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
key_prefix = "{PREFIX}"
lease_ttl = "2s"
renew_interval = "200ms"
margin = "600ms"
replication_interval = "{interval}"
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
reconcile_interval = "10s"  # under wallets 20 per 2 min with the budget shared: a new leader's start-up reconciliation must find a slot
halt_on_drift = false
max_open_orders = 100
""")
        proc = kernel_process(cfg, env={"HR_SECRET": SECRET}, cwd=tmp_path)
        proc.wait_for("ready", timeout=30)
        return Node(name, cfg, web, proc)

    return start


def send(leader: Node, n: int, first: int = 0) -> None:
    for i in range(first, first + n):
        body = {"secret": SECRET, "ticker": "BTCIRT", "action": "buy" if i % 2 else "sell", "amount": "0.001",
                "id": f"hs-{i}"}
        response = httpx.post(f"http://127.0.0.1:{leader.web}/webhooks/tradingview", json=body, timeout=5)
        assert response.status_code == 200, response.text
        time.sleep(0.05)


def exchange_balances(sim: str) -> dict[str, Decimal]:
    body = httpx.get(f"{sim}/_sim/balances", headers=ADMIN, timeout=5).json()["balances"]["default"]
    return {cur.upper(): Decimal(v["balance"]) for cur, v in body.items() if Decimal(v["balance"]) != 0}


def verified(n: Node) -> int:
    return int((n.get("/api/orders?limit=1").get("counts") or {}).get("VERIFIED", 0))


def cli(*args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HRKERNEL_")}
    out = subprocess.run([sys.executable, "-m", "hrkernel", *args], capture_output=True, text=True, timeout=60,
                         env={**env, "HR_SECRET": SECRET})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def orders_cli(cfg: Path) -> list[dict[str, Any]]:
    data = cli("orders", "list", "--json", "--config", str(cfg))
    return list(data["orders"] if isinstance(data, dict) else data)


def status_cli(n: Node) -> dict[str, Any]:
    return dict(cli("status", str(n.cfg), "--json"))


def lag_metrics(n: Node) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{n.web}/metrics", timeout=5).text
    return {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("hrkernel_replication_lag_")}


def test_the_standby_follows_the_leader_and_takes_over_with_its_history(node: Any, simulator: str) -> None:
    a = node("hr-a")
    a.proc.wait_for("orders_trading_enabled", timeout=30)
    b = node("hr-b")
    send(a, 12)
    wait_until(lambda: verified(a) == 12, 30, "12 orders verified on the leader")
    # the standby has the leader's rows: same seqs, same balances, within a bounded lag
    wait_until(lambda: b.lag().get("seq") == a.lag().get("seq") and b.lag().get("tx") == a.lag().get("tx"), 10,
               "standby caught up")
    assert b.lag()["mode"] == "follow" and a.lag()["mode"] == "lead"
    assert b.venue_balances() == a.venue_balances() == exchange_balances(simulator)
    status = wait_until(lambda: (st := status_cli(b))["replication_seq"] == b.lag()["seq"] and st, 5, "status reported")
    assert status["role"] == "standby" and status["replication_mode"] == "follow"
    assert status["replication_lag"] == 0.0 and status["replication_behind"] == 0
    assert lag_metrics(b) == {"hrkernel_replication_lag_seconds": 0.0, "hrkernel_replication_lag_entries": 0.0}
    lag = b.lag()
    print(f"\nreplication commit-to-apply delay on the standby: p50 {lag['p50'] * 1000:.1f} ms, "
          f"max {lag['max'] * 1000:.1f} ms")
    assert lag["max"] < 5.0  # bounded: the standby is never seconds behind an idle-ish leader
    a_orders = {o["client_order_id"]: o for o in a.get("/api/orders?limit=100")["orders"]}

    a.proc.kill()  # SIGKILL: the standby takes over with the history and reconciles only the tail
    b.proc.wait_for("trading_enabled", timeout=15)
    b.proc.wait_for("orders_trading_enabled", timeout=30)
    wait_until(lambda: b.lag().get("mode") == "lead", 10, "standby leads")
    wait_until(lambda: b.venue_balances() == exchange_balances(simulator), 15, "new leader's ledger equals the exchange")
    events = [e for e in b.proc.events if e.get("event") == "reconciled"]
    assert events and all(e.get("discrepancies") == [] for e in events), events
    assert not any("opening balance" in str(e.get("drift")) for e in events)  # history, not a fresh opening
    b.proc.signal(signal.SIGTERM)
    assert b.proc.wait(20) == 0
    listed = {o["client_order_id"]: o for o in orders_cli(b.cfg)}
    assert set(a_orders) <= set(listed)
    assert all(listed[c]["state"] == "VERIFIED" for c in a_orders)


def test_a_standby_behind_a_trimmed_stream_rebuilds_and_leads_with_the_exchanges_balances(
    node: Any, simulator: str, redis_server: Any
) -> None:
    a = node("hr-a")
    a.proc.wait_for("orders_trading_enabled", timeout=30)
    send(a, 6)
    wait_until(lambda: verified(a) == 6, 30, "6 orders verified")
    with redis.Redis.from_url(redis_server.url) as client:
        client.xtrim(f"{PREFIX}:replication", maxlen=1)  # the history is gone from the stream
    b = node("hr-b")
    b.proc.wait_for("replication_rebuild", timeout=15)
    wait_until(lambda: b.lag().get("mode") == "rebuild", 10, "standby in rebuild")
    status = wait_until(lambda: (st := status_cli(b))["replication_mode"] == "rebuild" and st, 5, "status reported")
    assert status["replication_lag"] is None and "trimmed" in status["replication_reason"]
    a.proc.kill()
    b.proc.wait_for("trading_enabled", timeout=15)
    b.proc.wait_for("orders_trading_enabled", timeout=30)
    wait_until(lambda: b.venue_balances() == exchange_balances(simulator), 15, "rebuilt ledger equals the exchange")
    opening = [e for e in b.proc.events if e.get("event") == "reconciled" and "opening balance" in str(e.get("drift"))]
    assert opening  # rebuilt from the exchange: a fresh opening balance
    send(b, 2, first=100)
    wait_until(lambda: verified(b) == 2, 30, "the rebuilt leader trades")
    wait_until(lambda: b.venue_balances() == exchange_balances(simulator), 15, "ledger equals the exchange")


def test_replication_lag_during_a_run_with_orders_flowing(node: Any) -> None:
    """Reports commit-to-apply delays on the standby while 40 orders flow (figures, not a gate)."""
    a = node("hr-a")
    a.proc.wait_for("orders_trading_enabled", timeout=30)
    b = node("hr-b")
    send(a, 40)
    wait_until(lambda: verified(a) == 40, 60, "40 orders verified")
    wait_until(lambda: b.lag().get("seq") == a.lag().get("seq"), 10, "standby caught up")
    lag = b.lag()
    assert lag["entries"] == 0 and lag["seconds"] == 0.0
    print(f"\nstandby delays with orders flowing: p50 {lag['p50'] * 1000:.1f} ms, max {lag['max'] * 1000:.1f} ms "
          f"(leader commit-to-publish p50 {a.lag()['p50'] * 1000:.1f} ms)")
    assert statistics.median([lag["p50"]]) < 2.0


def test_orders_the_killed_leader_never_published_are_adopted_and_the_ledger_equals_the_exchange(
    node: Any, simulator: str
) -> None:
    """The leader publishes every 8 s: its opening balance reaches the standby, the orders after
    it do not before the SIGKILL. The new leader adopts them (our client order ids) from the
    exchange instead of reporting their fills as strangers and the balance as drift."""
    a = node("hr-a", interval="8s")
    a.proc.wait_for("orders_trading_enabled", timeout=30)
    b = node("hr-b")
    wait_until(lambda: (b.lag().get("tx") or 0) >= 1, 20, "the opening balance replicated")
    seq = b.lag()["seq"]
    send(a, 3)
    wait_until(lambda: verified(a) == 3, 6, "3 orders verified on the leader")
    assert b.lag()["seq"] == seq  # none of them replicated yet
    a.proc.kill()
    b.proc.wait_for("trading_enabled", timeout=15)
    b.proc.wait_for("orders_trading_enabled", timeout=30)
    adopted = [e for e in b.proc.events if e.get("event") == "orders_unreplicated_order_adopted"]
    assert len(adopted) == 3, [e for e in b.proc.events if e.get("level") in ("warning", "error")
                               or "reconcil" in str(e.get("event"))]
    wait_until(lambda: verified(b) == 3, 15, "the adopted orders verified")
    wait_until(lambda: b.venue_balances() == exchange_balances(simulator), 15, "ledger equals the exchange")
    events = [e for e in b.proc.events if e.get("event") == "reconciled"]
    assert events and all(e.get("discrepancies") == [] for e in events), events


def test_a_frozen_leader_resumes_as_a_follower_of_its_successor(node: Any, simulator: str) -> None:
    """SIGSTOP past the lease: the successor trades; on SIGCONT the old leader's appends are
    refused (fenced), it follows and ends with the successor's rows and balances."""
    a = node("hr-a")
    a.proc.wait_for("orders_trading_enabled", timeout=30)
    b = node("hr-b")
    send(a, 4)
    wait_until(lambda: verified(a) == 4, 30, "4 orders verified")
    a.proc.signal(signal.SIGSTOP)
    try:
        b.proc.wait_for("trading_enabled", timeout=15)
        b.proc.wait_for("orders_trading_enabled", timeout=30)
        send(b, 3, first=50)
        wait_until(lambda: verified(b) == 7, 30, "7 orders verified on the successor")
    finally:
        a.proc.signal(signal.SIGCONT)
    a.proc.wait_for("replication_demoted", timeout=15)
    wait_until(lambda: a.lag().get("mode") == "follow" and a.lag().get("seq") == b.lag().get("seq")
               and a.lag().get("tx") == b.lag().get("tx"), 15, "the old leader follows")
    assert a.venue_balances() == b.venue_balances() == exchange_balances(simulator)
    assert {o["client_order_id"] for o in a.get("/api/orders?limit=100")["orders"]} == \
        {o["client_order_id"] for o in b.get("/api/orders?limit=100")["orders"]}
