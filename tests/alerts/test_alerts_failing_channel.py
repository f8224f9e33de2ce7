"""A channel that fails (HTTP 500) or hangs for a while, next to a healthy one, over real HTTP.

The healthy channel delivers on time throughout; the failing channel's breaker opens, its queue
holds what fits (the rest is counted as overflow and recorded), and when it recovers the held
notifications are delivered in order.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from hrkernel.alerts import AlertSystem
from hrkernel.alerts.config import AlertsSection
from hrkernel.types import Duration

pytestmark = pytest.mark.anyio


async def wait_for(predicate, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


@pytest.mark.parametrize("fault", ["http_500", "hang"])
async def test_a_failing_channel_never_delays_the_others_and_catches_up_after_recovery(
    fault: str, tmp_path: Path, clock, make_http_server
) -> None:
    good, bad = make_http_server(), make_http_server()
    bad.reply = bad.Reply(hang=True, status=504) if fault == "hang" else bad.Reply(status=500, body={"error": "boom"})
    config = AlertsSection(
        channels={
            "good": {"type": "webhook", "url": good.url + "/good", "max_per_minute": 0},
            "bad": {"type": "webhook", "url": bad.url + "/bad", "max_per_minute": 0, "timeout": "200ms"},
        },
        group_by=["title"], group_wait=Duration(0), queue_size=3, retry_attempts=2,
        retry_delay=Duration(0.01), breaker_failures=2, breaker_reset=Duration(30),
    )
    async with AlertSystem(config, data_dir=tmp_path, clock=clock) as alerts:
        await alerts.send_alert(source="exchange", level="error", title="t0")
        alerts.process_due()
        await wait_for(lambda: len(good.ok_requests()) == 1, timeout=1.0)
        await wait_for(lambda: alerts.stats()["channels"]["bad"]["breaker"] == "open")

        for i in range(1, 6):
            began = time.monotonic()
            await alerts.send_alert(source="exchange", level="error", title=f"t{i}")
            alerts.process_due()
            await wait_for(lambda i=i: len(good.ok_requests()) == i + 1, timeout=1.0)
            assert time.monotonic() - began < 0.5  # on time, whatever the bad channel does
        stats = alerts.stats()["channels"]["bad"]
        assert stats["breaker"] == "open" and stats["overflow"] == 2 and stats["queued"] == 3
        assert stats["delivered"] == 0

        # recovery: the next probe (after breaker_reset on the injected clock) goes through
        bad.reply = bad.Reply()
        bad.release.set()
        assert bad.ok_requests() == []
        clock.advance(30)
        await alerts.wait_idle()
        delivered = [r.json()["alerts"][0]["title"] for r in bad.ok_requests()]
        assert delivered == ["t0", "t1", "t2", "t3"]
        stats = alerts.stats()["channels"]["bad"]
        assert stats["breaker"] == "closed" and stats["delivered"] == 4 and stats["overflow"] == 2
        rows = {r["title"]: r for r in await alerts.query()}
    assert [r.json()["alerts"][0]["title"] for r in good.ok_requests()] == [f"t{i}" for i in range(6)]
    for title in ("t4", "t5"):
        bad_rows = [d for d in rows[title]["deliveries"] if d["channel"] == "bad"]
        assert [(d["ok"], d["reason"]) for d in bad_rows] == [(False, "queue full (3): not delivered")]
    t0_bad = [d for d in rows["t0"]["deliveries"] if d["channel"] == "bad"]
    assert [d["ok"] for d in t0_bad][-1] is True and not any(d["ok"] for d in t0_bad[:-1])
    reason = "HTTP 500" if fault == "http_500" else "no answer within 0.2s"
    assert all(reason in d["reason"] for d in t0_bad[:-1])
