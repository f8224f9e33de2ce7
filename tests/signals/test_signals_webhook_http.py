"""The intake behind a real uvicorn on loopback, driven by real HTTP requests."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anyio
import httpx
import pytest

from hrkernel.bus.events import Event, SignalAction, SignalEvent
from hrkernel.bus.memory import MemoryBus
from hrkernel.signals.config import WebhookSection
from hrkernel.signals.intake import WebhookIntake

SECRET = "s3cret-for-tests"


def now_iso(delta: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def body(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"secret": SECRET, "ticker": "NOBITEX:BTCIRT", "action": "buy", "amount": "0.001",
                               "strategy": "t", "time": now_iso()}
    base.update(kw)
    return base


async def next_signal(sub, timeout: float = 3.0) -> SignalEvent:  # type: ignore[no-untyped-def]
    with anyio.fail_after(timeout):
        d = await sub.__anext__()
    assert isinstance(d.event, SignalEvent)
    return d.event


@pytest.mark.anyio
async def test_valid_signal_is_accepted_persisted_and_published(intake_server, memory_bus: MemoryBus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sub = memory_bus.subscribe("signals", "orders")
    async with intake_server(bus=memory_bus) as srv, httpx.AsyncClient() as c:
        r = await c.post(srv.url, json=body(signal_id="a1", order_type="limit", price="7000000000"))
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "accepted", "signal_id": "t:a1"}
        sig = await next_signal(sub)
        assert (sig.signal_id, sig.symbol, sig.action, sig.amount, sig.price, sig.exchange) == (
            "t:a1", "BTCIRT", SignalAction.BUY, Decimal("0.001"), Decimal("7000000000"), "nobitex")
        lines = (tmp_path / "inbox.jsonl").read_text().splitlines()
        assert json.loads(lines[0])["op"] == "accept"
        with anyio.fail_after(2):
            while srv.intake.stats()["processed"] < 1:
                await anyio.sleep(0.01)
        # The memory bus forgets everything in a crash: the entry stays pending until the order
        # path confirms it journaled the order; only then is it done.
        assert json.loads((tmp_path / "inbox.jsonl").read_text().splitlines()[-1])["op"] == "accept"
        assert "t:a1" in srv.intake.inbox.pending
        await srv.intake.confirm("t:a1")
        assert json.loads((tmp_path / "inbox.jsonl").read_text().splitlines()[-1]) == {"op": "done", "id": "t:a1"}


@pytest.mark.anyio
async def test_duplicate_delivery_produces_no_second_signal(intake_server, memory_bus: MemoryBus) -> None:  # type: ignore[no-untyped-def]
    sub = memory_bus.subscribe("signals", "orders")
    payload = body()  # no signal id: derived from content + time bucket
    async with intake_server(bus=memory_bus) as srv, httpx.AsyncClient() as c:
        first = await c.post(srv.url, json=payload)
        second = await c.post(srv.url, content=json.dumps(payload), headers={"content-type": "text/plain"})
        assert first.json()["status"] == "accepted"
        assert second.status_code == 200 and second.json() == {"status": "duplicate", "signal_id": first.json()["signal_id"]}
        await next_signal(sub)
        with anyio.move_on_after(0.3) as scope:
            await sub.__anext__()
        assert scope.cancelled_caught, "a duplicate must not reach the bus"
        assert srv.intake.stats()["duplicate"] == 1


@pytest.mark.anyio
async def test_bad_requests_get_the_right_4xx_naming_the_field(intake_server, memory_bus: MemoryBus) -> None:  # type: ignore[no-untyped-def]
    sub = memory_bus.subscribe("signals", "orders")
    async with intake_server(bus=memory_bus, max_body=1024) as srv, httpx.AsyncClient() as c:
        cases = [
            (body(secret="nope"), 401, "secret"),
            ({k: v for k, v in body().items() if k != "secret"}, 401, "secret"),
            (body(amount=[1]), 400, "amount"),
            (body(amount=True), 400, "amount"),
            (body(action="hold"), 400, "action"),
            (body(ticker="DOGEIRT"), 400, "ticker"),
            (body(time=now_iso(-3600)), 400, "time"),
            (body(percent="0"), 400, "percent"),
        ]
        for payload, status, field in cases:
            r = await c.post(srv.url, json=payload)
            assert (r.status_code, r.json().get("field")) == (status, field), (payload, r.text)
        r = await c.post(srv.url, content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["field"] == "body" and "not valid JSON" in r.json()["message"]
        r = await c.post(srv.url, content=b"buy BTC now", headers={"content-type": "text/plain"})
        assert r.status_code == 400 and r.json()["field"] == "body"
        r = await c.post(srv.url, content=b"\xff\xfe", headers={"content-type": "text/plain"})
        assert r.status_code == 400
        r = await c.post(srv.url, json=body(note="x" * 2000))
        assert r.status_code == 413
        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(10):
                yield b"x" * 500
        r = await c.post(srv.url, content=chunks())  # chunked: no Content-Length to check up front
        assert r.status_code == 413
        stats = srv.intake.stats()
        assert stats["accepted"] == 0 and stats["rejected_unauthorized"] == 2 and stats["rejected_too_large"] == 2
        assert stats["rejected_unknown_ticker"] == 1 and stats["rejected_stale"] == 1
    with anyio.move_on_after(0.2) as scope:
        await sub.__anext__()
    assert scope.cancelled_caught, "no rejected request may reach the bus"


@pytest.mark.anyio
async def test_allowlist_refuses_other_addresses_and_believes_only_trusted_proxies(intake_server) -> None:  # type: ignore[no-untyped-def]
    async with intake_server(allowlist=True) as srv, httpx.AsyncClient() as c:
        r = await c.post(srv.url, json=body())
        assert r.status_code == 403 and r.json()["error"] == "ip_not_allowed"
        r = await c.post(srv.url, json=body(), headers={"x-forwarded-for": "52.89.214.238"})
        assert r.status_code == 403, "X-Forwarded-For from an untrusted peer must be ignored"
    async with intake_server(allowlist=True, trusted_proxies=["127.0.0.0/8"]) as srv, httpx.AsyncClient() as c:
        r = await c.post(srv.url, json=body(), headers={"x-forwarded-for": "52.89.214.238"})
        assert r.status_code == 200, r.text
        # A client forging the leftmost hop gets judged by the hop the proxy appended.
        r = await c.post(srv.url, json=body(signal_id="x2"), headers={"x-forwarded-for": "52.89.214.238, 203.0.113.9"})
        assert r.status_code == 403


@pytest.mark.anyio
async def test_alertatron_text_and_url_secret_shapes(intake_server, memory_bus: MemoryBus) -> None:  # type: ignore[no-untyped-def]
    sub = memory_bus.subscribe("signals", "orders")
    async with intake_server(bus=memory_bus, url_secret=True) as srv, httpx.AsyncClient() as c:
        r = await c.post(srv.url, content=f"{SECRET}(BTCIRT) {{ market(side=sell, amount=0.5); }}\n#bot",
                         headers={"content-type": "text/plain"})
        assert r.status_code == 200, r.text
        assert (await next_signal(sub)).action == SignalAction.SELL
        r = await c.post(f"{srv.url}/{SECRET}", json={"ticker": "USDTIRT", "action": "buy", "quantity": 3, "price": 600000})
        assert r.status_code == 200, r.text
        sig = await next_signal(sub)
        assert (sig.symbol, sig.amount, sig.price) == ("USDTIRT", Decimal("3"), Decimal("600000"))
        r = await c.post(f"{srv.url}/wrong", json={"ticker": "USDTIRT", "action": "buy"})
        assert r.status_code == 401


class StuckBus(MemoryBus):
    async def publish(self, topic: str, event: Event) -> None:
        await anyio.sleep(3600)


@pytest.mark.anyio
async def test_slow_processing_never_blocks_the_intake(intake_server) -> None:  # type: ignore[no-untyped-def]
    async with intake_server(bus=StuckBus()) as srv, httpx.AsyncClient() as c:
        started = time.monotonic()
        for n in range(20):
            r = await c.post(srv.url, json=body(signal_id=f"s{n}"))
            assert r.status_code == 200
        assert time.monotonic() - started < 2.0
        assert srv.intake.stats()["pending"] == 20


@pytest.mark.anyio
async def test_signals_accepted_before_a_crash_are_processed_on_restart(tmp_path: Path) -> None:
    config = WebhookSection(enabled=True, secret=SECRET)
    first = WebhookIntake(config, tmp_path / "inbox.jsonl", bus=None)  # crashes before processing
    first.inbox.open()
    import starlette.applications

    app = starlette.applications.Starlette(routes=first.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
        for n in range(3):
            assert (await c.post(config.path, json=body(signal_id=f"r{n}"))).status_code == 200
    # Simulate a torn write at the moment of the crash.
    with (tmp_path / "inbox.jsonl").open("ab") as f:
        f.write(b'{"op":"accept","signal":{"kind"')
    bus = MemoryBus()
    sub = bus.subscribe("signals", "orders")
    second = WebhookIntake(config, tmp_path / "inbox.jsonl", bus=bus)
    second.inbox.open()
    assert sorted(second.inbox.pending) == ["t:r0", "t:r1", "t:r2"]
    assert await second.process_pending() == 0
    got = sorted([(await next_signal(sub)).signal_id for _ in range(3)])
    assert got == ["t:r0", "t:r1", "t:r2"]
    assert await second.process_pending() == 0  # published once, not again while unconfirmed
    for sid in got:
        await second.confirm(sid)
    # And after that restart, the same alert again is still a duplicate.
    app2 = starlette.applications.Starlette(routes=second.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app2), base_url="http://127.0.0.1") as c:
        assert (await c.post(config.path, json=body(signal_id="r1"))).json()["status"] == "duplicate"
    second.inbox.close()
    third = WebhookIntake(config, tmp_path / "inbox.jsonl", bus=bus)
    third.inbox.open()
    assert third.inbox.pending == {} and "t:r2" in third.inbox.seen
    third.inbox.close()
    first.inbox.close()


@pytest.mark.anyio
async def test_metrics_registry_counts_outcomes_and_latency(intake_server, memory_bus: MemoryBus) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client import generate_latest

    memory_bus.subscribe("signals", "orders")
    async with intake_server(bus=memory_bus) as srv, httpx.AsyncClient() as c:
        await c.post(srv.url, json=body(signal_id="m1"))
        await c.post(srv.url, json=body(signal_id="m1"))
        await c.post(srv.url, json=body(secret="bad"))
        with anyio.fail_after(2):
            while srv.intake.stats()["processed"] < 1:
                await anyio.sleep(0.01)
        text = generate_latest(srv.intake.prometheus_registry).decode()
    assert "hrkernel_signals_received_total 3.0" in text
    assert "hrkernel_signals_accepted_total 1.0" in text
    assert "hrkernel_signals_duplicates_total 1.0" in text
    assert 'hrkernel_signals_rejected_total{reason="unauthorized"} 1.0' in text
    assert "hrkernel_signals_processing_seconds_count 1.0" in text


@pytest.mark.anyio
async def test_replayed_signals_wait_for_their_consumer_on_the_memory_bus(tmp_path: Path) -> None:
    """At start-up the inbox replays before the order path subscribes: nothing may be lost."""
    from hrkernel.bus.config import BusSection

    config = WebhookSection(enabled=True, secret=SECRET)
    first = WebhookIntake(config, tmp_path / "inbox.jsonl", bus=None)
    first.inbox.open()
    await first.inbox.accept(SignalEvent(time=datetime.now(UTC), signal_id="late", source="tradingview",
                                         exchange="nobitex", symbol="BTCIRT", action=SignalAction.BUY))
    first.inbox.close()
    bus = MemoryBus(policy=BusSection().policy)  # as the kernel builds it
    second = WebhookIntake(config, tmp_path / "inbox.jsonl", bus=bus)
    second.inbox.open()
    assert await second.process_pending() == 1  # no consumer yet: kept, not dropped
    sub = bus.subscribe("signals", "orders")
    assert await second.process_pending() == 0
    assert (await next_signal(sub)).signal_id == "late"
    second.inbox.close()
