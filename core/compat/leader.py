"""The design's ``LeaderElection(redis_client, service_name, ttl_seconds=10, instance_id=None)``.

The documents elect a leader with a ``SET NX`` loop and treat "the key is mine" as leadership.
That is racy: a leader paused past the TTL (GC, SIGSTOP, a VM migration) still believes it
leads while another instance already does, and nothing stops its late writes. This class keeps
the documents' surface but runs hrkernel's fenced lease (:class:`hrkernel.ha.redis_lease.RedisLease`):
atomic acquire/renew/release scripts, a fencing token that grows with every tenure, and
:attr:`LeaderElection.is_leader` true only while the last renewal is recent enough on this
process's monotonic clock (``ttl - margin``), so a paused leader stops acting before anyone can
take over. Send :attr:`fencing_token` with every write and call :meth:`fence_check` right before
an irreversible one.
"""

from __future__ import annotations

import inspect
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from hrkernel.ha.lease import LeadershipEvent
from hrkernel.ha.redis_lease import RedisLease
from hrkernel.logging import get_logger

__all__ = ["LeaderElection", "redis_url_of"]

Hook = Callable[[], Awaitable[None] | None]


def redis_url_of(client: Any) -> str:
    """The URL of a redis-py client (asyncio or sync), or ``client`` itself if it is a URL.

    The lease opens its own connection: its timeouts must stay shorter than the renewal interval,
    whatever the caller's client was configured with.
    """
    if isinstance(client, str):
        return client
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        raise ValueError(f"redis_client must be a redis-py client or a redis:// URL, found {type(client).__name__}")
    user, password = kwargs.get("username"), kwargs.get("password")
    auth = ""
    if password:
        auth = f"{quote(str(user or ''), safe='')}:{quote(str(password), safe='')}@"
    db = kwargs.get("db", 0)
    if kwargs.get("path"):
        return f"unix://{auth}{kwargs['path']}?db={db}"
    scheme = "rediss" if "ssl" in type(pool.connection_class).__name__.lower() else "redis"  # type: ignore[union-attr]
    return f"{scheme}://{auth}{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


class LeaderElection:
    """Leader election for ``service_name`` on one Redis, fenced (see the module docstring).

    ``on_become_leader`` / ``on_lose_leader``: callables (sync or async, no arguments) run when
    this instance gains or loses leadership; assign them or pass them here.
    """

    def __init__(
        self,
        redis_client: Any,
        service_name: str,
        ttl_seconds: float = 10,
        instance_id: str | None = None,
        *,
        on_become_leader: Hook | None = None,
        on_lose_leader: Hook | None = None,
    ) -> None:
        if not isinstance(service_name, str) or not service_name:
            raise ValueError(f"service_name must be a non-empty string, found {service_name!r}")
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int | float) or not ttl_seconds > 0:
            raise ValueError(f"ttl_seconds must be a number > 0, found {ttl_seconds!r}")
        self.service_name = service_name
        self.instance_id = instance_id or f"{socket.gethostname()}-{os.getpid()}"
        self.ttl_seconds = float(ttl_seconds)
        self.on_become_leader = on_become_leader
        self.on_lose_leader = on_lose_leader
        # Renew four times per TTL; stop acting 20% of the TTL before the key could expire.
        self.lease = RedisLease(
            self.instance_id, redis_url_of(redis_client), key_prefix=f"hrkernel:election:{service_name}",
            ttl=self.ttl_seconds, renew_interval=self.ttl_seconds / 4, margin=self.ttl_seconds / 5,
            retry_max=max(self.ttl_seconds / 4, 0.05),
        )
        self.lease.add_listener(self._on_change)
        self.events: list[LeadershipEvent] = []
        self.log = get_logger("hrkernel.compat.leader", service=service_name, instance=self.instance_id)

    @property
    def is_leader(self) -> bool:
        """True only while this instance holds the lease with margin (no I/O)."""
        return self.lease.holds_with_margin()

    @property
    def fencing_token(self) -> int | None:
        """The current tenure's token (None when not leader): send it with every write."""
        return self.lease.token

    async def fence_check(self) -> bool:
        """One atomic round trip: is this tenure still the current one?"""
        return await self.lease.fence_check()

    async def run_leader_election(self) -> None:
        """Contend for and renew the lease until :meth:`stop`; releases it on the way out."""
        try:
            await self.lease.run()
        finally:
            await self.lease.stop()

    async def stop(self) -> None:
        """Stop contending and release the lease now (a standby takes over without waiting)."""
        await self.lease.stop()

    async def _on_change(self, event: LeadershipEvent) -> None:
        self.events.append(event)
        hook = self.on_become_leader if event.gained else self.on_lose_leader
        if hook is None:
            return
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # a hook's bug must not stop the lease from renewing
            self.log.error("leader_hook_failed", gained=event.gained, error=f"{type(exc).__name__}: {exc}")
