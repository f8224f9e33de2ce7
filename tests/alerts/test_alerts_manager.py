"""The alert manager on a manual clock: dedup, grouping, repeats, resolution, routing, silences,
inhibition, throttling, history and acknowledgement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hrkernel.alerts import AlertLevel, AlertSource, AlertSystem, ChannelSpec
from hrkernel.alerts.config import AlertsSection, ChannelRouting, InhibitRule
from hrkernel.types import Duration

pytestmark = pytest.mark.anyio


def section(**overrides: Any) -> AlertsSection:
    base: dict[str, Any] = {
        "group_wait": Duration(10), "group_interval": Duration(60), "repeat_interval": Duration(3600),
        "dedup_window": Duration(300), "retry_delay": Duration(0.01), "channels": {},
    }
    base.update(overrides)
    return AlertsSection(**base)


def system(tmp_path: Path, clock: Any, channels: dict[str, Any], **overrides: Any) -> AlertSystem:
    specs = {
        name: value if isinstance(value, ChannelSpec) else ChannelSpec(value, ChannelRouting(max_per_minute=0))
        for name, value in channels.items()
    }
    return AlertSystem(section(**overrides), channels=specs, data_dir=tmp_path, clock=clock)


async def test_repeats_within_the_window_count_on_the_open_alert_and_send_once(tmp_path, clock, recording_channel):
    ch = recording_channel()
    async with system(tmp_path, clock, {"rec": ch}) as alerts:
        first = await alerts.send_alert(source=AlertSource.EXCHANGE, level=AlertLevel.WARNING,
                                        title="timeouts", message="3 in a row", context={"exchange": "nobitex"})
        for _ in range(4):
            clock.advance(1)
            again = await alerts.send_alert(source=AlertSource.EXCHANGE, level=AlertLevel.WARNING,
                                            title="timeouts", message="more", context={"exchange": "nobitex"})
        assert again.id == first.id and again.count == 5
        assert again.first_seen == first.first_seen and again.last_seen == first.first_seen + 4
        clock.advance(10)
        await alerts.wait_idle()
        assert len(ch.sent) == 1
        [note] = ch.sent
        assert note.kind == "firing" and note.alerts[0].count == 5 and note.alerts[0].message == "more"
        rows = await alerts.query()
        assert [(r["id"], r["count"], r["status"]) for r in rows] == [(first.id, 5, "firing")]
        assert rows[0]["deliveries"] == [{"channel": "rec", "kind": "firing", "at": clock.now(), "ok": True, "reason": None}]


async def test_fingerprint_uses_the_chosen_context_keys(tmp_path, clock, recording_channel):
    ch = recording_channel()
    async with system(tmp_path, clock, {"rec": ch}, fingerprint_keys=["exchange"]) as alerts:
        a = await alerts.send_alert(source="exchange", level="warning", title="down", context={"exchange": "a", "n": 1})
        b = await alerts.send_alert(source="exchange", level="warning", title="down", context={"exchange": "b", "n": 1})
        c = await alerts.send_alert(source="exchange", level="warning", title="down", context={"exchange": "a", "n": 2})
        assert a.fingerprint != b.fingerprint and c.id == a.id and c.count == 2


async def test_a_repeat_after_the_dedup_window_is_a_new_alert(tmp_path, clock, recording_channel):
    ch = recording_channel()
    async with system(tmp_path, clock, {"rec": ch}) as alerts:
        a = await alerts.send_alert(source="orders", level="error", title="rejected")
        clock.advance(301)
        b = await alerts.send_alert(source="orders", level="error", title="rejected")
        assert b.id != a.id and b.count == 1
        rows = {r["id"]: r["status"] for r in await alerts.query()}
        assert rows == {a.id: "expired", b.id: "firing"}


async def test_group_wait_collects_related_alerts_into_one_notification(tmp_path, clock, recording_channel):
    ch = recording_channel()
    async with system(tmp_path, clock, {"rec": ch}) as alerts:
        await alerts.send_alert(source="exchange", level="warning", title="a")
        clock.advance(3)
        await alerts.send_alert(source="exchange", level="error", title="b")
        await alerts.send_alert(source="ledger", level="error", title="drift")
        clock.advance(6)
        await alerts.wait_idle()
        assert ch.sent == []  # group_wait (10s) not over for either group
        clock.advance(1)
        await alerts.wait_idle()
        assert ch.titles() == [["a", "b"]]
        assert ch.sent[0].kind == "digest" and ch.sent[0].group == "source=exchange"
        clock.advance(3)
        await alerts.wait_idle()
        assert ch.titles() == [["a", "b"], ["drift"]]


async def test_later_alerts_wait_for_group_interval_and_come_as_one_digest(tmp_path, clock, recording_channel):
    ch = recording_channel()
    async with system(tmp_path, clock, {"rec": ch}) as alerts:
        await alerts.send_alert(source="exchange", level="warning", title="a")
        clock.advance(10)
        await alerts.wait_idle()
        for title in ("b", "c", "d"):
            clock.advance(5)
            await alerts.send_alert(source="exchange", level="warning", title=title)
            await alerts.wait_idle()
        assert ch.titles() == [["a"]]
        clock.advance(45)  # 60s after the first flush
        await alerts.wait_idle()
        assert ch.titles() == [["a"], ["b", "c", "d"]]
        assert ch.sent[1].kind == "digest"


async def test_unacknowledged_firing_alerts_repeat_and_acknowledged_ones_do_not(tmp_path, clock, recording_channel):
    ch = recording_channel()
    async with system(tmp_path, clock, {"rec": ch}) as alerts:
        a = await alerts.send_alert(source="ha", level="critical", title="lease lost")
        await alerts.send_alert(source="web", level="critical", title="webhook down")
        clock.advance(10)
        await alerts.wait_idle()
        assert len(ch.sent) == 2
        clock.advance(3599)
        await alerts.wait_idle()
        assert len(ch.sent) == 2
        clock.advance(1)
        await alerts.wait_idle()
        assert [n.kind for n in ch.sent[2:]] == ["repeat", "repeat"]
        assert await alerts.acknowledge(a.id, "bob", "on it") == [a.id]
        clock.advance(3600)
        await alerts.wait_idle()
        assert [(n.kind, n.alerts[0].title) for n in ch.sent[4:]] == [("repeat", "webhook down")]
        [row] = await alerts.query(source="ha")
        assert (row["ack_by"], row["ack_note"], row["ack_at"]) == ("bob", "on it", clock.now() - 3600)


async def test_resolution_notifies_channels_that_were_told_it_fired(tmp_path, clock, recording_channel):
    ch = recording_channel()
    async with system(tmp_path, clock, {"rec": ch}) as alerts:
        a = await alerts.send_alert(source="resilience", level="error", title="breaker open",
                                    context={"breaker": "nobitex"}, fingerprint_keys=["breaker"])
        clock.advance(10)
        await alerts.wait_idle()
        clock.advance(20)
        resolved = alerts.resolve(source="resilience", title="breaker open", context={"breaker": "nobitex"},
                                  fingerprint_keys=["breaker"])
        assert resolved is not None and resolved.id == a.id and resolved.resolved_at == clock.now()
        assert alerts.resolve(fingerprint=a.fingerprint) is None  # already resolved
        clock.advance(40)  # group_interval after the first notification
        await alerts.wait_idle()
        assert [n.kind for n in ch.sent] == ["firing", "resolved"]
        assert ch.sent[1].alerts[0].status == "resolved"
        clock.advance(7200)
        await alerts.wait_idle()
        assert len(ch.sent) == 2  # resolved alerts never repeat
        [row] = await alerts.query()
        assert row["status"] == "resolved" and [d["kind"] for d in row["deliveries"]] == ["firing", "resolved"]


async def test_an_alert_resolved_before_anyone_was_told_sends_nothing(tmp_path, clock, recording_channel):
    ch = recording_channel()
    async with system(tmp_path, clock, {"rec": ch}) as alerts:
        a = await alerts.send_alert(source="data", level="warning", title="feed stale")
        clock.advance(2)
        assert alerts.resolve(fingerprint=a.fingerprint) is not None
        clock.advance(120)
        await alerts.wait_idle()
        assert ch.sent == []


async def test_routing_by_minimum_level_and_sources(tmp_path, clock, recording_channel):
    everything, pager, no_web = recording_channel(), recording_channel(), recording_channel()
    channels = {
        "all": ChannelSpec(everything, ChannelRouting(max_per_minute=0)),
        "pager": ChannelSpec(pager, ChannelRouting(min_level=AlertLevel.CRITICAL, sources=["exchange", "ha"], max_per_minute=0)),
        "noweb": ChannelSpec(no_web, ChannelRouting(exclude_sources=["web"], max_per_minute=0)),
    }
    plugin_source = AlertSource.define("my_plugin")
    async with system(tmp_path, clock, channels, group_by=["title"]) as alerts:
        await alerts.send_alert(source="exchange", level="critical", title="exchange down")
        await alerts.send_alert(source="web", level="critical", title="dashboard down")
        await alerts.send_alert(source="exchange", level="error", title="slow")
        await alerts.send_alert(source=plugin_source, level="info", title="custom")
        clock.advance(10)
        await alerts.wait_idle()
    assert sorted(t for n in everything.titles() for t in n) == ["custom", "dashboard down", "exchange down", "slow"]
    assert pager.titles() == [["exchange down"]]
    assert sorted(t for n in no_web.titles() for t in n) == ["custom", "exchange down", "slow"]
    assert plugin_source in AlertSource.known()
    with pytest.raises(ValueError, match="lower-case name"):
        AlertSource("Not A Name")


async def test_escalation_of_an_open_alert_is_notified_again(tmp_path, clock, recording_channel):
    ch = recording_channel()
    async with system(tmp_path, clock, {"rec": ch}) as alerts:
        await alerts.send_alert(source="ledger", level="warning", title="drift")
        clock.advance(10)
        await alerts.wait_idle()
        await alerts.send_alert(source="ledger", level="critical", title="drift")
        clock.advance(60)
        await alerts.wait_idle()
        assert [(n.kind, n.alerts[0].level, n.alerts[0].count) for n in ch.sent] == [
            ("firing", AlertLevel.WARNING, 1), ("firing", AlertLevel.CRITICAL, 2)]


async def test_silenced_alerts_are_recorded_but_not_sent_until_the_silence_ends(tmp_path, clock, recording_channel):
    ch = recording_channel()
    async with system(tmp_path, clock, {"rec": ch}) as alerts:
        silence = alerts.silence({"source": "exchange", "exchange": "nobitex"}, until=clock.now() + 100,
                                 who="carol", why="maintenance window")
        await alerts.send_alert(source="exchange", level="error", title="5xx", context={"exchange": "nobitex"})
        await alerts.send_alert(source="exchange", level="error", title="5xx", context={"exchange": "other"},
                                fingerprint_keys=["exchange"])
        clock.advance(60)
        await alerts.wait_idle()
        assert [n.alerts[0].context["exchange"] for n in ch.sent] == ["other"]
        rows = {r["context"]["exchange"]: r for r in await alerts.query()}
        assert silence.id in rows["nobitex"]["suppressed"] and "maintenance window" in rows["nobitex"]["suppressed"]
        clock.advance(60)  # silence over (t=100): the still-firing alert goes out with the next flush (t=120)
        await alerts.wait_idle()
        assert [n.alerts[0].context["exchange"] for n in ch.sent] == ["other", "nobitex"]


async def test_a_critical_exchange_down_inhibits_the_warnings_it_causes(tmp_path, clock, recording_channel):
    ch = recording_channel()
    rule = InhibitRule(source={"level": "critical", "title": "exchange down"},
                       target={"level": ["warning", "info"]}, equal=["exchange"])
    async with system(tmp_path, clock, {"rec": ch}, inhibit=[rule], fingerprint_keys=["exchange"]) as alerts:
        down = await alerts.send_alert(source="exchange", level="critical", title="exchange down", context={"exchange": "nobitex"})
        await alerts.send_alert(source="orders", level="warning", title="order timeout", context={"exchange": "nobitex"})
        await alerts.send_alert(source="orders", level="warning", title="order timeout", context={"exchange": "kraken"})
        clock.advance(10)
        await alerts.wait_idle()
        sent = sorted((n.alerts[0].title, n.alerts[0].context["exchange"]) for n in ch.sent)
        assert sent == [("exchange down", "nobitex"), ("order timeout", "kraken")]
        rows = [r for r in await alerts.query(source="orders") if r["context"]["exchange"] == "nobitex"]
        assert f"inhibited by {down.id}" in rows[0]["suppressed"]
        alerts.resolve(fingerprint=down.fingerprint)  # exchange back: the warning is news again
        clock.advance(60)
        await alerts.wait_idle()
        later = sorted((n.kind, n.alerts[0].title) for n in ch.sent[2:])
        assert later == [("firing", "order timeout"), ("resolved", "exchange down")]


async def test_a_throttled_channel_sends_the_backlog_as_the_next_digest_and_drops_nothing(tmp_path, clock, recording_channel):
    ch = recording_channel()
    channels = {"slow": ChannelSpec(ch, ChannelRouting(max_per_minute=1))}
    async with system(tmp_path, clock, channels, group_by=["title"], group_wait=Duration(0)) as alerts:
        await alerts.send_alert(source="kernel", level="info", title="t0")
        await alerts.wait_idle()
        for i in range(1, 4):
            await alerts.send_alert(source="kernel", level="info", title="t9", message=f"m{i}",
                                    context={"i": i}, fingerprint_keys=["i"])
        await alerts.wait_idle()
        assert ch.titles() == [["t0"]]  # budget of 1/min spent
        clock.advance(30)
        await alerts.wait_idle()
        assert ch.titles() == [["t0"]]
        clock.advance(30)
        await alerts.wait_idle()
        assert ch.titles() == [["t0"], ["t9", "t9", "t9"]]
        assert [a.message for a in ch.sent[1].alerts] == ["m1", "m2", "m3"]


async def test_overflow_of_the_bounded_queue_is_counted_and_recorded(tmp_path, clock):
    import anyio

    calls = anyio.Event()

    class Stuck:
        async def send(self, notification: Any) -> None:
            calls.set()
            await anyio.sleep_forever()

    channels = {"stuck": ChannelSpec(Stuck(), ChannelRouting(max_per_minute=0, timeout=Duration(30)))}
    alerts = system(tmp_path, clock, channels, queue_size=2, group_by=["title"], group_wait=Duration(0))
    await alerts.start()
    try:
        await alerts.send_alert(source="kernel", level="error", title="t0")
        alerts.process_due()
        with anyio.fail_after(2):
            await calls.wait()
        for i in range(1, 5):
            await alerts.send_alert(source="kernel", level="error", title=f"t{i}")
        alerts.process_due()
        stats = alerts.stats()["channels"]["stuck"]
        # one is being delivered, two wait in the queue, two did not fit
        assert stats["overflow"] == 2 and stats["queued"] == 2
    finally:
        await alerts.stop(drain_timeout=0.1)
    rows = {r["title"]: r for r in await alerts.query()}
    assert [d["reason"] for d in rows["t3"]["deliveries"]] == ["queue full (2): not delivered"]
    assert [d["reason"] for d in rows["t4"]["deliveries"]] == ["queue full (2): not delivered"]
    assert rows["t1"]["deliveries"] == []  # still queued when the system stopped


async def test_send_alert_returns_before_any_channel_is_called(tmp_path, clock):
    import anyio

    started = anyio.Event()

    class Slow:
        async def send(self, notification: Any) -> None:
            started.set()
            await anyio.sleep(10)

    channels = {"slow": ChannelSpec(Slow(), ChannelRouting(max_per_minute=0))}
    async with system(tmp_path, clock, channels, group_wait=Duration(0)) as alerts:
        with anyio.fail_after(0.5):
            for i in range(50):
                await alerts.send_alert(source="kernel", level="error", title=f"t{i}")
        alerts.process_due()
        with anyio.fail_after(2):
            await started.wait()
        await alerts.stop(drain_timeout=0.1)


async def test_secret_values_never_reach_channels_or_the_history(tmp_path, clock, recording_channel):
    ch = recording_channel()
    specs = {"rec": ChannelSpec(ch, ChannelRouting(max_per_minute=0))}
    alerts = AlertSystem(section(), channels=specs, data_dir=tmp_path, clock=clock, secrets={"hunter2-secret-value"},
                         instance_id="hunter2-secret-value")
    async with alerts:
        await alerts.send_alert(source="exchange", level="error", title="auth failed",
                                message="server said: bad key hunter2-secret-value",
                                context={"api_key": "abc", "url": "https://x/?k=hunter2-secret-value"})
        clock.advance(10)
        await alerts.wait_idle()
        rows = await alerts.query()
    [note] = ch.sent
    text = repr(note) + repr(rows)
    assert "hunter2-secret-value" not in text and "abc" not in repr(note.alerts[0].context)
    assert note.alerts[0].message == "server said: bad key ***" and note.instance_id == "***"
    assert note.alerts[0].context == {"api_key": "***", "url": "https://x/?k=***"}


async def test_stop_flushes_groups_still_waiting_so_nothing_raised_is_lost(tmp_path, clock, recording_channel):
    ch = recording_channel()
    alerts = system(tmp_path, clock, {"rec": ch}, group_wait=Duration(600))
    await alerts.start()
    await alerts.send_alert(source="kernel", level="info", title="kernel shutting down")
    await alerts.stop()
    assert ch.titles() == [["kernel shutting down"]]
    [row] = await alerts.query()
    assert [d["ok"] for d in row["deliveries"]] == [True]


async def test_silences_need_who_and_why_and_can_be_lifted(tmp_path, clock, recording_channel):
    ch = recording_channel()
    async with system(tmp_path, clock, {"rec": ch}) as alerts:
        with pytest.raises(ValueError, match="who set it and why"):
            alerts.silence({"source": "web"}, until=clock.now() + 60, who="", why="")
        with pytest.raises(ValueError, match="ISO 8601"):
            alerts.silence({"source": "web"}, until="tomorrow", who="a", why="b")
        silence = alerts.silence({"source": "web"}, until="2099-01-01T00:00:00", who="dan", why="noisy")
        await alerts.send_alert(source="web", level="error", title="slow page")
        clock.advance(10)
        await alerts.wait_idle()
        assert ch.sent == []
        assert alerts.unsilence(silence.id) and not alerts.unsilence(silence.id)
        clock.advance(1)
        await alerts.wait_idle()
        assert ch.titles() == [["slow page"]]


def test_silences_and_inhibit_rules_in_config_are_validated_with_key_paths():
    from hrkernel.config.validate import decode

    value, issues = decode(
        {"silences": [{"matchers": {"source": "x"}, "until": "soon", "who": "a", "why": "b"}],
         "inhibit": [{"source": {"level": 3}, "target": {}}], "group_wait": "later"},
        AlertsSection, "alerts",
    )
    assert value is None
    text = "\n".join(str(i) for i in issues)
    assert "alerts.silences[0]" in text and "ISO 8601" in text
    assert "alerts.inhibit[0].source.level" in text
    assert "alerts.group_wait" in text
