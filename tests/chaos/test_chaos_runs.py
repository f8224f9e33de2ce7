"""Fixed-seed chaos runs with real processes: the invariants must hold (no timing assertions)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hrkernel_chaos import ChaosRun, load_scenario, parse_scenario
from hrkernel_chaos.runner import ADMIN

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # every test here runs a scenario with real processes


def _invariants(report: object) -> dict[str, bool]:
    return {i.name: i.ok for i in report.invariants}  # type: ignore[attr-defined]


def test_single_kernel_under_exchange_errors_drops_and_429s(tmp_path: Path) -> None:
    scenario = parse_scenario({
        "name": "ci-exchange-faults", "seed": 3, "kernels": 1, "signals": 30, "interval": 0.1, "settle": 120,
        "faults": [
            {"at": 3, "kind": "sim_script", "endpoint": "orders_add", "fault": "error_500", "count": 2},
            {"at": 6, "kind": "sim_script", "endpoint": "orders_add", "fault": "drop_after_accept", "count": 1},
            {"at": 10, "kind": "sim_script", "endpoint": "orders_add", "fault": "error_429", "count": 3},
            {"at": 14, "kind": "sim_script", "endpoint": "orders_status", "fault": "error_503", "count": 2},
            {"at": 18, "kind": "sim_errors", "endpoint": "orders_add", "fault": "error_502", "rate": 0.5, "duration": 1.0},
            {"at": 22, "kind": "sim_latency", "latency": 0.2, "duration": 1.0},
        ],
        "random": {"rate": 0.15, "kinds": ["error_500", "error_503", "error_429"], "endpoints": ["orders_add"]},
    }, "ci")
    report = ChaosRun(scenario, workdir=tmp_path).run()
    assert report.safe, report.render()
    assert report.figures["signals sent"] == 30
    assert report.figures["orders on the exchange"] >= 15  # most signals still became orders
    assert len(report.faults) >= 6


@pytest.mark.parametrize(("bus", "deliver"), [("redis", "leader"), ("redis", "all"), ("memory", "all")])
def test_two_kernels_leader_sigkilled_mid_stream(tmp_path: Path, needs_redis: None, bus: str, deliver: str) -> None:
    """deliver=all: every signal goes to both kernels' webhooks. Redis bus: both copies land in
    the one stream and the leader's journal dedupes them. Memory bus: each kernel queues its own
    copies; the new leader looks the ones accepted before its tenure up on the exchange and adopts
    what the old leader placed, and its ledger must not count those fills twice (it did before
    348dc45). Either way: one order per signal and the ledger equals the exchange."""
    scenario = load_scenario(ROOT / "scenarios" / "leader-kill.toml")
    scenario.deliver = deliver  # type: ignore[assignment]
    scenario.bus = bus  # type: ignore[assignment]
    report = ChaosRun(scenario, workdir=tmp_path).run()
    assert report.safe, report.render()
    assert [f.to_instance for f in report.failovers] == ["hr-b"]
    assert _invariants(report)["never two instances submitting"]
    assert _invariants(report)["ledger equals exchange balances"]
    assert _invariants(report)["every fault produced its alert"]


def test_two_kernels_leader_frozen_past_its_lease_then_resumed(tmp_path: Path, needs_redis: None) -> None:
    """SIGSTOP the leader, the standby takes over, SIGCONT: the old leader never submits again
    with its old token (no token goes back in the exchange's order of arrival)."""
    report = ChaosRun(load_scenario(ROOT / "scenarios" / "leader-pause.toml"), workdir=tmp_path).run()
    assert report.safe, report.render()
    assert [(f.cause, f.to_instance) for f in report.failovers] == [("SIGSTOP", "hr-b")]


def test_leader_frozen_then_redis_restarted(tmp_path: Path, needs_redis: None) -> None:
    """SIGSTOP past the lease, then Redis stopped and restarted under the new leader: found a
    lost failover record, a resent order whose fill never reached the ledger, and a takeover
    step logged as an error while Redis came back; every invariant holds now."""
    report = ChaosRun(load_scenario(ROOT / "scenarios" / "pause-and-redis.toml"), workdir=tmp_path).run()
    assert report.safe, report.render()


def test_a_duplicate_order_on_the_exchange_fails_the_report(tmp_path: Path) -> None:
    """The checks can fail: a second order with a signal's client order id, placed behind the
    kernel's back, is reported as a duplicate."""
    scenario = parse_scenario({"name": "ci-dupe", "seed": 5, "signals": 3, "interval": 0.1, "settle": 60}, "ci")
    run = ChaosRun(scenario, workdir=tmp_path)
    try:
        run.start()
        run.drive()
        run.check()  # first settle: every order verified
        first = run.sent[0]["signal_id"]
        from hrkernel.orders.pipeline import client_order_id_for

        coid = client_order_id_for("sim", first)
        placed = httpx.post(f"{run.sim}/market/orders/add", headers={"Authorization": "Token sim-token-default"},
                            json={"type": "buy", "execution": "market", "srcCurrency": "btc", "dstCurrency": "rls",
                                  "amount": "0.001", "clientOrderId": coid, "pro": "yes"}, timeout=5)
        assert placed.json().get("status") == "ok", placed.text
        assert len([o for o in httpx.get(f"{run.sim}/_sim/orders", headers=ADMIN).json()["orders"]
                    if o["clientOrderId"] == coid]) == 2
        run.report.invariants.clear()
        run.scenario.settle = 3.0  # the ledger will not match now; do not wait for it
        run.check()
    finally:
        run.close()
    assert not run.report.passed
    assert not _invariants(run.report)["at most one order per signal"]


@pytest.mark.parametrize("extra", [[], ["--single"]], ids=["pair", "single"])
def test_demo_fast_ends_with_a_passing_report(tmp_path: Path, extra: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "hrkernel", "demo", "--fast", *extra, "--workdir", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.stdout.rstrip().endswith("RESULT: PASS")
    assert "took over" in proc.stdout or "single-process" in proc.stdout


def test_chaos_run_interrupted_stops_every_process(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('name = "ctrl-c"\nsignals = 200\ninterval = 0.2\n')
    proc = subprocess.Popen([sys.executable, "-m", "hrkernel", "chaos", "run", str(scenario), "--workdir",
                             str(tmp_path / "w")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "10/200 signals sent" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    # the kernel and the simulator it started are gone: their ports no longer answer
    kernel_cfg = (tmp_path / "w" / "hr-a.toml").read_text()
    port = int(kernel_cfg.split("[dashboard]\nport = ")[1].split("\n")[0])
    try:
        httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1)
        raise AssertionError("the kernel still answers after Ctrl-C")
    except httpx.HTTPError:
        pass
