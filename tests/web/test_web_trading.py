"""Orders, ledger, reconciliation and the kill switch of a real kernel trading on the simulator."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx


def wait_for(fn: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_ledger_and_reconciliation_of_a_kernel_on_the_simulator(sim_kernel: Any) -> None:
    url = sim_kernel.kernel.url

    def reconciled() -> Any:
        data = httpx.get(url + "/api/ledger").json()
        if not (data["configured"] and data["data"]["reconciliations"]):
            return None
        # the report and the balances are two reads: wait until this read sees the posting too
        return data if any(b["account"].startswith("nobitex") for b in data["data"]["balances"]) else None

    ledger = wait_for(reconciled)
    assert ledger, "no reconciliation report within 10 s"
    report = ledger["data"]["reconciliations"][0]
    assert report["exchange"] == "nobitex" and report["orphans"] == 0
    drift = {d["asset"]: d for d in ledger["data"]["drift"]}
    assert Decimal(drift["RLS"]["exchange_total"]) == Decimal("100000000000")  # the simulator's account
    assert drift["RLS"]["action"] == "opening balance"
    held = [Decimal(b["balance"]) for b in ledger["data"]["balances"] if b["currency"] == "RLS" and b["account"].startswith("nobitex")]
    assert Decimal("100000000000") in held  # the opening balance was posted to the ledger
    metrics = httpx.get(url + "/metrics").text
    assert 'hrkernel_ledger_drift{asset="RLS",exchange="nobitex"}' in metrics


def test_kill_switch_halts_the_kernels_order_pipeline(sim_kernel: Any) -> None:
    k = sim_kernel.kernel
    pipeline = wait_for(lambda: getattr(k.get("orders"), "pipeline", None))
    assert wait_for(lambda: not httpx.get(k.url + "/api/orders").json()["data"]["halted"]), "start-up halt never lifted"
    auth = {"Authorization": f"Bearer {k.token}"}
    on = httpx.post(k.url + "/api/killswitch", json={"on": True, "reason": "exchange incident"}, headers=auth)
    assert on.status_code == 200 and on.json()["result"]["halted"] is True
    assert k.call(lambda: dict(pipeline.halts)) == {"kill_switch": "exchange incident"}
    orders = httpx.get(k.url + "/api/orders").json()["data"]
    assert orders["halted"] is True and orders["halts"] == {"kill_switch": "exchange incident"}
    off = httpx.post(k.url + "/api/killswitch", json={"on": False}, headers=auth)
    assert off.json()["result"]["halted"] is False and k.call(lambda: dict(pipeline.halts)) == {}
