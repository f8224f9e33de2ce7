"""Redis Streams bus against a private redis-server (the ``redis_server`` fixture)."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import anyio
import pytest

from hrkernel.bus.config import RedisBusSettings, TopicPolicy
from hrkernel.bus.errors import BusUnavailable
from hrkernel.bus.events import SignalAction, SignalEvent
from hrkernel.bus.redis_streams import RedisStreamsBus

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def sig(n: int | str) -> SignalEvent:
    return SignalEvent(time=NOW, signal_id=f"s{n}", source="t", exchange="nobitex", symbol="BTCIRT",
                       action=SignalAction.SELL, percent=Decimal("50"))


def settings(url: str, prefix: str, **kw: object) -> RedisBusSettings:
    base = {"url": url, "prefix": prefix, "block": 0.1, "claim_idle": 0.5, "reconnect_min": 0.05, "reconnect_max": 0.2}
    base.update(kw)
    return RedisBusSettings(**base)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_published_events_are_consumed_and_acked_once(redis_server) -> None:  # type: ignore[no-untyped-def]
    bus = RedisStreamsBus(settings(redis_server.url, "p1:"), consumer_name="c1")
    async with bus.subscribe("jobs", "g") as sub:
        for n in range(5):
            await bus.publish("jobs", sig(n))
        got = []
        with anyio.fail_after(5):
            async for d in sub:
                got.append(d.event.signal_id)  # type: ignore[attr-defined]
                await d.ack()
                if len(got) == 5:
                    break
    assert got == [f"s{n}" for n in range(5)]
    client = bus._client()
    pending = await client.xpending("p1:jobs", "g")
    assert pending["pending"] == 0
    await bus.aclose()


@pytest.mark.anyio
async def test_stream_is_trimmed_to_about_maxlen(redis_server) -> None:  # type: ignore[no-untyped-def]
    bus = RedisStreamsBus(settings(redis_server.url, "p2:", maxlen=100))
    for n in range(1000):
        await bus.publish("ticks", sig(n))
    length = await bus._client().xlen("p2:ticks")
    assert 100 <= length < 400
    await bus.aclose()


@pytest.mark.anyio
async def test_message_of_a_sigkilled_consumer_is_reclaimed_and_processed_once(redis_server, doomed_consumer_script) -> None:  # type: ignore[no-untyped-def]
    prefix = f"k{uuid.uuid4().hex[:6]}:"
    bus = RedisStreamsBus(settings(redis_server.url, prefix), consumer_name="survivor")
    # The group exists before publishing so the doomed process reads the first message.
    await bus._client().xgroup_create(prefix + "jobs", "workers", id="0", mkstream=True)
    proc = subprocess.Popen([*doomed_consumer_script, redis_server.url, prefix], stdout=subprocess.PIPE, text=True)
    try:
        await bus.publish("jobs", sig("only"))
        assert proc.stdout is not None
        line = await anyio.to_thread.run_sync(proc.stdout.readline)
        assert line.strip() == "GOT sonly"
    finally:
        proc.kill()  # SIGKILL mid-processing: no ack, no cleanup
        proc.wait()
    pending = await bus._client().xpending("p:jobs".replace("p:", prefix), "workers")
    assert pending["pending"] == 1
    processed: list[str] = []
    async with bus.subscribe("jobs", "workers") as sub:
        with anyio.move_on_after(2.0):  # > claim_idle: the re-claim happens, then nothing more
            async for d in sub:
                processed.append(d.event.signal_id)  # type: ignore[attr-defined]
                assert d.redelivered
                await d.ack()
    assert processed == ["sonly"]
    pending = await bus._client().xpending(prefix + "jobs", "workers")
    assert pending["pending"] == 0
    assert bus.reclaimed == 1
    await bus.aclose()


@pytest.mark.anyio
async def test_publishers_and_consumers_recover_after_a_redis_restart(redis_server) -> None:  # type: ignore[no-untyped-def]
    bus = RedisStreamsBus(settings(redis_server.url, "p3:"), policy=lambda t: TopicPolicy(on_unavailable="buffer"))
    got: list[str] = []
    async with anyio.create_task_group() as tg:
        async def consume() -> None:
            async with bus.subscribe("jobs", "g") as sub:
                async for d in sub:
                    got.append(d.event.signal_id)  # type: ignore[attr-defined]
                    await d.ack()
        tg.start_soon(consume)
        await bus.publish("jobs", sig("before"))
        with anyio.fail_after(5):
            while got != ["sbefore"]:
                await anyio.sleep(0.02)
        await anyio.to_thread.run_sync(redis_server.kill)
        await bus.publish("jobs", sig("while-down"))  # buffered locally
        assert bus.stats()["buffered_now"] == 1
        await anyio.to_thread.run_sync(redis_server.start)  # comes back empty (no persistence)
        with anyio.fail_after(10):
            while await bus.flush_buffers():
                await anyio.sleep(0.05)
        await bus.publish("jobs", sig("after"))
        with anyio.fail_after(10):
            while len(got) < 3:
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert got == ["sbefore", "swhile-down", "safter"]
    await bus.aclose()


@pytest.mark.anyio
async def test_critical_topic_fails_loudly_while_redis_is_down(redis_server) -> None:  # type: ignore[no-untyped-def]
    bus = RedisStreamsBus(settings(redis_server.url, "p4:", buffer_size=2),
                          policy=lambda t: TopicPolicy(on_unavailable="fail" if t == "orders" else "buffer"))
    redis_server.kill()
    with pytest.raises(BusUnavailable, match="orders"):
        await bus.publish("orders", sig(1))
    await bus.publish("ticks", sig(1))
    await bus.publish("ticks", sig(2))
    with pytest.raises(BusUnavailable, match="buffer full"):
        await bus.publish("ticks", sig(3))
    await bus.aclose()


@pytest.mark.anyio
async def test_a_restarted_consumer_resumes_after_the_last_acknowledged_event(redis_server) -> None:  # type: ignore[no-untyped-def]
    first = RedisStreamsBus(settings(redis_server.url, "p5:"), consumer_name="kernel-a")
    async with first.subscribe("jobs", "g") as sub:
        for n in range(3):
            await first.publish("jobs", sig(n))
        with anyio.fail_after(5):
            d = await sub.__anext__()
        await d.ack()
    await first.aclose()  # "kernel restart": s1 and s2 were delivered or not, but never acked
    second = RedisStreamsBus(settings(redis_server.url, "p5:", claim_idle=0.05), consumer_name="kernel-b")
    await second.publish("jobs", sig(3))
    got: list[str] = []
    async with second.subscribe("jobs", "g") as sub:
        with anyio.move_on_after(1.0):
            async for d in sub:
                got.append(d.event.signal_id)  # type: ignore[attr-defined]
                await d.ack()
    assert sorted(got) == ["s1", "s2", "s3"]  # s0 was acknowledged before the restart
    await second.aclose()
