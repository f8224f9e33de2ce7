"""A minimal process that competes for a RedisLease and "trades" only behind the fence.

Run as ``python lease_holder.py URL INSTANCE PREFIX TTL RENEW MARGIN``. Prints one JSON line per
leadership event (``{"event": "gained"|"lost", "token": .., "t": epoch}``). Every ``period``
seconds, if it holds the lease with margin and ``fence_check()`` passes, it appends
``"<instance>:<token>"`` to the Redis list ``<prefix>:writes`` — the stand-in for an order. Tests
kill, pause and resume it to prove that no write passes from a stale leader.
"""

from __future__ import annotations

import json
import sys
import time

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hrkernel.ha.lease import LeadershipEvent
from hrkernel.ha.redis_lease import RedisLease


def say(**fields: object) -> None:
    print(json.dumps({**fields, "t": time.time()}), flush=True)


async def main(url: str, instance: str, prefix: str, ttl: float, renew: float, margin: float, period: float = 0.01) -> None:
    lease = RedisLease(instance, url, key_prefix=prefix, ttl=ttl, renew_interval=renew, margin=margin)

    def report(event: LeadershipEvent) -> None:
        say(event="gained" if event.gained else "lost", token=event.token, reason=event.reason, gap=event.gap)

    lease.add_listener(report)
    client = aioredis.Redis.from_url(url, decode_responses=True)
    async with anyio.create_task_group() as tg:
        await lease.start(tg)
        say(event="started")
        while True:
            # The local margin again after the fence's round trip: frozen during it, it sends nothing.
            if lease.holds_with_margin() and await lease.fence_check() and lease.holds_with_margin():
                try:
                    await client.rpush(f"{prefix}:writes", f"{instance}:{lease.token}")
                except RedisError:  # Redis went away between the fence and the write
                    pass
            await anyio.sleep(period)


if __name__ == "__main__":
    url, instance, prefix, ttl, renew, margin = sys.argv[1:7]
    anyio.run(main, url, instance, prefix, float(ttl), float(renew), float(margin))
