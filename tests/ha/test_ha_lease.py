"""Leases: local always-leader, Redis election with fencing, margins, pauses, Redis outages."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from hrkernel.ha.lease import LeadershipEvent, LocalLease, Role
from hrkernel.ha.redis_lease import inspect_lease, request_step_down

pytestmark = pytest.mark.anyio


async def test_local_lease_is_leader_with_token_1_from_start_to_stop() -> None:
    lease = LocalLease("solo")
    events: list[LeadershipEvent] = []
    lease.add_listener(events.append)
    assert not lease.holds_with_margin()
    await lease.start()
    assert lease.is_leader and lease.token == 1 and lease.holds_with_margin()
    assert await lease.fence_check()
    await lease.stop()
    assert not await lease.fence_check()
    assert [(e.gained, e.token) for e in events] == [(True, 1), (False, 1)]
    assert lease.status().role == Role.STOPPED


async def test_first_instance_acquires_second_stays_standby(make_lease: Any, fake_clock: Any) -> None:
    a, rec_a = make_lease("a", clock=fake_clock)
    b, rec_b = make_lease("b", clock=fake_clock)
    await a.tick()
    await b.tick()
    assert a.is_leader and a.token == 1 and a.holds_with_margin()
    assert not b.is_leader and b.token is None and not b.holds_with_margin()
    assert rec_a.kinds == ["gained"] and rec_a.events[0].token == 1
    assert rec_b.events == []
    assert b.status().leader == "a" and b.status().role == Role.STANDBY
    assert await a.fence_check() and not await b.fence_check()


async def test_renewals_keep_the_lease_beyond_its_ttl(make_lease: Any) -> None:
    a, _ = make_lease("a")
    b, _ = make_lease("b")
    await a.tick()
    began = time.monotonic()
    while time.monotonic() - began < 1.2:  # more than twice the TTL
        await a.tick()
        await b.tick()
        await anyio.sleep(0.05)
    assert a.is_leader and a.holds_with_margin() and not b.is_leader


async def test_margin_expires_locally_without_io_and_steps_down(make_lease: Any, fake_clock: Any) -> None:
    a, rec = make_lease("a", clock=fake_clock, ttl=0.5, margin=0.15)
    await a.tick()
    fake_clock.advance(0.34)
    assert a.holds_with_margin()
    fake_clock.advance(0.02)  # 0.36 > ttl - margin = 0.35
    assert not a.holds_with_margin()
    assert not await a.fence_check()
    await a.check_deadline()
    assert rec.kinds == ["gained", "lost"] and "deadline" in rec.events[1].reason


async def test_standby_acquires_only_after_expiry_with_a_higher_token(make_lease: Any) -> None:
    a, _ = make_lease("a", ttl=0.4, margin=0.1)
    b, rec_b = make_lease("b", ttl=0.4, margin=0.1)
    await a.tick()
    # a stops renewing (crashed); b tries all the time and must wait for the TTL.
    began = time.monotonic()
    while not b.is_leader:
        await b.tick()
        if not b.is_leader:
            assert time.monotonic() - began < 0.4 + 1.0
            await anyio.sleep(0.01)
    waited = time.monotonic() - began
    assert waited >= 0.35  # not before the old lease expired (Redis-side TTL, tiny timer slack)
    assert b.token == 2
    assert rec_b.events[0].previous == "a" and rec_b.events[0].gap is not None and rec_b.events[0].gap >= 0.35


async def test_paused_leader_resumes_as_not_leader_and_cannot_pass_the_fence(make_lease: Any, fake_clock: Any) -> None:
    """SIGSTOP simulated: the paused leader's clock jumps when it resumes; its state is stale."""
    a, rec_a = make_lease("a", clock=fake_clock, ttl=0.4, margin=0.1)
    b, _ = make_lease("b", ttl=0.4, margin=0.1)
    await a.tick()
    assert a.token == 1
    await anyio.sleep(0.45)  # a is "paused": it neither renews nor reads its clock
    await b.tick()
    assert b.is_leader and b.token == 2
    # Even if a's clock had not moved (worst case), the last hop refuses its stale token ...
    assert a.is_leader  # local state is stale: a does not know yet
    assert not await a.fence_check()
    # ... and once its clock shows the pause, it knows before any I/O.
    fake_clock.advance(0.45)
    assert not a.holds_with_margin()
    await a.tick()
    assert rec_a.kinds == ["gained", "lost"]
    assert not a.is_leader and b.is_leader and await b.fence_check()


async def test_renew_by_a_stale_holder_does_not_extend_the_new_lease(make_lease: Any, redis_server: Any, fake_clock: Any) -> None:
    # a's clock stands still (paused process), so it really sends the renewal when it resumes.
    a, rec_a = make_lease("a", ttl=0.3, margin=0.1, clock=fake_clock)
    b, _ = make_lease("b", ttl=0.3, margin=0.1)
    await a.tick()
    await anyio.sleep(0.35)
    await b.tick()
    assert b.is_leader
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        before = await client.pttl("t:lease")
        await a.tick()  # compare-and-extend must fail: holder differs
        after = await client.pttl("t:lease")
    finally:
        await client.aclose()
    assert after <= before
    assert rec_a.kinds[-1] == "lost" and "taken over" in rec_a.events[-1].reason


async def test_graceful_stop_releases_so_the_standby_takes_over_at_once(make_lease: Any) -> None:
    a, _ = make_lease("a", ttl=5.0, renew_interval=0.5, margin=1.0)
    b, _ = make_lease("b", ttl=5.0, renew_interval=0.5, margin=1.0)
    await a.tick()
    await a.stop()
    await b.tick()
    assert b.is_leader and b.token == 2


async def test_redis_stop_makes_the_leader_step_down_within_the_deadline_and_restart_elects_one(
    make_lease: Any, redis_server: Any
) -> None:
    ttl, margin = 0.6, 0.2
    a, rec_a = make_lease("a", ttl=ttl, margin=margin, renew_interval=0.1, retry_max=0.2)
    b, rec_b = make_lease("b", ttl=ttl, margin=margin, renew_interval=0.1, retry_max=0.2)
    lost_at: list[float] = []
    a.add_listener(lambda e: lost_at.append(time.monotonic()) if not e.gained else None)
    b.add_listener(lambda e: lost_at.append(time.monotonic()) if not e.gained else None)
    async with anyio.create_task_group() as tg:
        await a.start(tg)
        await anyio.sleep(0.15)
        await b.start(tg)
        await anyio.sleep(0.3)
        leaders = [x for x in (a, b) if x.is_leader]
        assert len(leaders) == 1
        old_token = leaders[0].token
        stopped_at = time.monotonic()
        redis_server.stop()
        with anyio.fail_after(3):
            while not lost_at:
                await anyio.sleep(0.01)
        assert lost_at[0] - stopped_at <= ttl - margin + 0.25  # the deadline, plus scheduling slack
        assert not a.holds_with_margin() and not b.holds_with_margin()
        await anyio.sleep(0.5)  # nobody leads while Redis is gone
        assert not a.is_leader and not b.is_leader
        redis_server.start()
        with anyio.fail_after(5):
            while not (a.is_leader or b.is_leader):
                await anyio.sleep(0.02)
        await anyio.sleep(0.5)
        leaders = [x for x in (a, b) if x.is_leader]
        assert len(leaders) == 1
        # The restarted Redis lost the counter; the fencing token still went up.
        assert leaders[0].token is not None and old_token is not None and leaders[0].token > old_token
        assert await leaders[0].fence_check()
        await a.stop()
        await b.stop()
        tg.cancel_scope.cancel()
    assert rec_a.kinds.count("gained") + rec_b.kinds.count("gained") == 2


async def test_step_down_request_needs_the_right_secret(make_lease: Any, redis_server: Any) -> None:
    a, rec_a = make_lease("a", admin_token="s3cret-token")
    b, _ = make_lease("b", admin_token="s3cret-token")
    await a.tick()
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        state = await inspect_lease(client, "t")
        assert state["leader"] == "a" and state["token"] == 1 and 0 < state["expires_in"] <= 0.5
        await request_step_down(client, "t", "wrong-secret")
        await a.tick()
        assert a.is_leader  # refused
        await request_step_down(client, "t", "s3cret-token")
        await a.tick()
        assert not a.is_leader and "step-down" in rec_a.events[-1].reason
        await a.tick()
        assert not a.is_leader  # does not grab it back straight away
        await b.tick()
        assert b.is_leader and b.token == 2
        assert (await inspect_lease(client, "t"))["leader"] == "b"
    finally:
        await client.aclose()


async def test_writes_behind_the_fence_come_only_from_the_current_leader(make_lease: Any, redis_server: Any, fake_clock: Any) -> None:
    """Two instances race to write; only writes that passed fence_check land, all from one token."""
    a, _ = make_lease("a", clock=fake_clock, ttl=0.3, margin=0.1)
    b, _ = make_lease("b", ttl=0.3, margin=0.1)
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await a.tick()
        for _ in range(3):
            if await a.fence_check():
                await client.rpush("writes", f"a:{a.token}")
        await anyio.sleep(0.35)  # a paused past the TTL; its clock did not move
        await b.tick()
        for lease, name in ((a, "a"), (b, "b"), (a, "a")):
            if await lease.fence_check():
                await client.rpush("writes", f"{name}:{lease.token}")
        writes = await client.lrange("writes", 0, -1)
    finally:
        await client.aclose()
    assert writes == ["a:1", "a:1", "a:1", "b:2"]


async def test_after_redis_lost_its_data_the_next_leader_names_the_last_one_it_saw(
        make_lease: Any, redis_server: Any, fake_clock: Any) -> None:
    """Redis restarted without its data forgets who held the lease: the instance that acquires it
    next still reports the leader it last saw as the previous one (gap unknown), so the takeover
    is a recorded failover, not a "first leader ever" (found by the pause-and-redis chaos run)."""
    import redis as sync_redis

    a, rec_a = make_lease("a", clock=fake_clock)
    b, rec_b = make_lease("b", clock=fake_clock)
    await a.tick()
    await b.tick()
    assert a.is_leader and rec_a.events[0].previous is None  # the first leader ever
    with sync_redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    fake_clock.advance(1.0)  # past a's renewal deadline: it steps down
    await a.tick()
    assert not a.is_leader
    await b.tick()
    assert b.is_leader, b.status()
    gained = rec_b.events[-1]
    assert gained.gained and gained.previous == "a" and gained.gap is None
