"""The documents' LeaderElection on a real Redis: one leader at a time, hooks, fencing tokens,
hand-over on stop, and a paused leader that stops acting before its key could expire."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from hrkernel.compat import FailoverMonitor, LeaderElection
from hrkernel.compat.leader import redis_url_of

pytestmark = pytest.mark.anyio


def test_the_lease_connects_where_the_callers_client_points() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=6390, db=2, password="p@ss")
    assert redis_url_of(client) == "redis://:p%40ss@127.0.0.1:6390/2"
    assert redis_url_of("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    with pytest.raises(ValueError, match="redis_client must be"):
        redis_url_of(object())


async def test_one_leader_hooks_run_and_the_standby_takes_over_on_stop(redis_server: Any) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    log: list[str] = []
    a = LeaderElection(client, "compat-trader", ttl_seconds=3, instance_id="hr-a")
    b = LeaderElection(client, "compat-trader", ttl_seconds=3, instance_id="hr-b")
    a.on_become_leader = lambda: log.append("a+")
    a.on_lose_leader = lambda: log.append("a-")

    async def b_gained() -> None:
        log.append("b+")

    b.on_become_leader = b_gained
    monitor = FailoverMonitor(target_failover_seconds=30)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.run_leader_election)
            with anyio.fail_after(5):
                while not a.is_leader:
                    await anyio.sleep(0.01)
            tg.start_soon(b.run_leader_election)
            await anyio.sleep(0.6)  # b contends for a while: a keeps it, b never leads
            assert a.is_leader and not b.is_leader and log == ["a+"]
            first_token = a.fencing_token
            assert first_token is not None and await a.fence_check()
            began = time.monotonic()
            await a.stop()  # releases the key at once
            with anyio.fail_after(5):
                while not b.is_leader:
                    await anyio.sleep(0.01)
            monitor.record_failover("hr-a", "hr-b", time.monotonic() - began)
            assert not a.is_leader and log == ["a+", "a-", "b+"]
            assert b.fencing_token is not None and b.fencing_token > first_token
            assert not await a.fence_check()
            await b.stop()
            tg.cancel_scope.cancel()
    finally:
        await a.stop()
        await b.stop()
        await client.aclose()
    event = monitor.history[-1]
    assert event.within_target and event.failover_time_seconds < 2


async def test_a_leader_cut_off_from_redis_stops_leading_before_the_key_expires(redis_server: Any) -> None:
    election = LeaderElection(redis_server.url, "compat-cut", ttl_seconds=1, instance_id="hr-cut")
    lost_at: list[float] = []
    election.on_lose_leader = lambda: lost_at.append(time.monotonic())
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(election.run_leader_election)
            with anyio.fail_after(5):
                while not election.is_leader:
                    await anyio.sleep(0.01)
            renewed = election.lease.last_renewal
            assert renewed is not None
            redis_server.stop()  # Redis is gone: no renewal can succeed
            # ttl - margin (0.8 s) after the last renewal was sent, is_leader is false without
            # any I/O: before the key's 1 s TTL could let another instance in.
            await anyio.sleep(max(0.0, renewed + 0.85 - time.monotonic()))
            assert not election.is_leader
            with anyio.fail_after(5):
                while not lost_at:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    finally:
        await election.stop()
