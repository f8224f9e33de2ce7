"""Leader election on one Redis: ``SET NX PX`` to acquire, Lua compare-and-extend to renew.

Log lines carry the fencing token as ``fence`` (a key named ``token`` would be redacted).

Keys (all under ``<prefix>:``):

- ``lease``    — the holder id of the current tenure (``<instance>#<nonce>``), with the TTL.
- ``token``    — the fencing counter, ``INCR``-ed by every acquisition. When the key is missing
  (first use, or a Redis that lost its data) it starts at the server's time in milliseconds, so
  tokens keep increasing across a Redis restart without persistence.
- ``info``     — a hash: instance, token, holder, acquired_ms / renewed_ms (Redis server time).
- ``stepdown`` — a step-down request from ``hrkernel failover`` (``<token>:<hmac>``).
- ``member:<instance>`` — every running instance, leader or standby, refreshes its own key with
  the lease TTL on each tick (value: its role) and deletes it on stop, so a leader shutting down
  can tell whether a live standby will take over (``[shutdown] cancel_orders = "unless_standby"``).

Every change of the lease is one script, so nothing is ever check-then-expire. The holder id is
fresh for each tenure: a renewal can only extend the tenure it belongs to.

Safety does not rest on Redis alone: the leader treats itself as leader only until
``last successful renewal sent + ttl - margin`` on its own monotonic clock, so a leader cut off
from Redis, or paused (SIGSTOP, a GC pause, a VM migration), stops acting before any standby can
acquire; :meth:`RedisLease.fence_check` then confirms the token at the last hop.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

import anyio
import redis.asyncio as aioredis
from anyio.abc import TaskGroup
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from hrkernel.ha.lease import Clock, LeadershipEvent, LeaseStatus, ListenerMixin, Role
from hrkernel.logging import get_logger

_ACQUIRE = """
local ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
if not ok then
  local holder = redis.call('GET', KEYS[1]) or ''
  return {0, holder, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2]) or '0'}
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if redis.call('EXISTS', KEYS[2]) == 0 then
  -- A fresh (or emptied) Redis: start the counter at the server's clock in ms, above every
  -- token an earlier Redis life handed out (one per acquisition, far slower than 1 per ms).
  redis.call('SET', KEYS[2], now)
end
local token = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[4])
if token <= floor then
  token = floor + 1
  redis.call('SET', KEYS[2], token)
end
local prev_renewed = redis.call('HGET', KEYS[3], 'renewed_ms') or ''
local prev_instance = redis.call('HGET', KEYS[3], 'instance') or ''
redis.call('HSET', KEYS[3], 'instance', ARGV[3], 'token', token, 'holder', ARGV[1],
           'acquired_ms', now, 'renewed_ms', now)
return {token, prev_instance, now, prev_renewed}
"""

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, ''} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], 'renewed_ms', t[1] * 1000 + math.floor(t[2] / 1000))
return {1, redis.call('GET', KEYS[3]) or ''}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], 'renewed_ms', t[1] * 1000 + math.floor(t[2] / 1000))
return 1
"""

_FENCE = """
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then return 1 end
return 0
"""


def step_down_mac(secret: str, token: int) -> str:
    """The authenticator of a step-down request for the tenure with ``token``."""
    return hmac.new(secret.encode(), f"stepdown:{token}".encode(), hashlib.sha256).hexdigest()


def lease_keys(prefix: str) -> dict[str, str]:
    return {name: f"{prefix}:{name}" for name in ("lease", "token", "info", "stepdown")}


def connect(url: str, timeout: float) -> aioredis.Redis:
    """A client that fails fast: the lease loop does its own retrying, on its own schedule."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


class RedisLease(ListenerMixin):
    """A lease on one Redis key with a fencing token; see the module docstring."""

    backend = "redis"

    def __init__(
        self,
        instance_id: str,
        redis_url: str,
        *,
        key_prefix: str = "hrkernel",
        ttl: float = 3.0,
        renew_interval: float = 0.5,
        margin: float = 1.0,
        retry_max: float = 2.0,
        admin_token: str = "",
        clock: Clock = time.monotonic,
    ) -> None:
        if not 0 <= margin < ttl or not 0 < renew_interval < ttl - margin:
            raise ValueError("need 0 <= margin < ttl and 0 < renew_interval < ttl - margin")
        self.instance_id = instance_id
        self.redis_url = redis_url
        self.keys = lease_keys(key_prefix)
        self.ttl = ttl
        self.renew_interval = renew_interval
        self.margin = margin
        self.retry_max = retry_max
        self.admin_token = admin_token
        self.clock = clock
        self.log = get_logger("hrkernel.ha.lease", instance=instance_id)
        self._init_listeners()
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._holder: str | None = None
        self._token: int | None = None
        self._valid_until = 0.0
        self._highest_token = 0
        self._cooldown_until = 0.0
        self._failures = 0
        self._last_error: str | None = None
        self._seen_leader: str | None = None
        self._seen_expiry: tuple[float, float] | None = None  # (clock at read, pttl seconds)
        self._stopping = anyio.Event()
        self._stopped = False
        self._member_role: str | None = None
        self._member_at = 0.0
        self.last_renewal: float | None = None
        """Clock time the last successful renewal (or acquisition) was sent."""

    # -- what the order pipeline asks ------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self._token is not None

    @property
    def token(self) -> int | None:
        return self._token

    def holds_with_margin(self) -> bool:
        """True only while this tenure's last successful renewal is recent enough."""
        return self._token is not None and self.clock() < self._valid_until

    async def fence_check(self) -> bool:
        """One atomic round trip: is this instance's token still the current one?"""
        if not self.holds_with_margin():
            return False
        try:
            with anyio.fail_after(self.renew_interval):
                ok = await self._script("fence")(
                    keys=[self.keys["lease"], self.keys["token"]], args=[self._holder, str(self._token)]
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self.log.warning("fence_check_failed", error=f"{type(exc).__name__}: {exc}")
            return False
        return bool(ok) and self.holds_with_margin()

    # -- lifecycle --------------------------------------------------------------------------
    def _script(self, name: str) -> Any:
        if self._client is None:
            self._client = connect(self.redis_url, self.renew_interval)
            self._scripts = {
                "acquire": self._client.register_script(_ACQUIRE),
                "renew": self._client.register_script(_RENEW),
                "release": self._client.register_script(_RELEASE),
                "fence": self._client.register_script(_FENCE),
            }
        return self._scripts[name]

    async def start(self, tg: TaskGroup) -> None:
        """Begin trying to acquire and renew in the background (returns at once)."""
        tg.start_soon(self.run, name=f"lease:{self.instance_id}")

    async def run(self) -> None:
        """The acquire/renew loop; returns after :meth:`stop`."""
        while not self._stopping.is_set():
            try:
                delay = await self.tick()
            except Exception as exc:  # a bug or a bad URL must not take the kernel down
                self.log.error("lease_loop_error", error=f"{type(exc).__name__}: {exc}")
                await self.check_deadline()
                delay = self.retry_max
            with anyio.move_on_after(delay):
                await self._stopping.wait()

    async def tick(self) -> float:
        """One step: renew when leader, else try to acquire. Returns the seconds to wait next."""
        try:
            if self.is_leader:
                await self._renew()
            elif self.clock() >= self._cooldown_until:
                await self._acquire()
            if self._failures:
                self.log.info("lease_redis_back", after_failures=self._failures)
            self._failures, self._last_error = 0, None
        except (RedisError, OSError, TimeoutError) as exc:
            self._failures += 1
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self._failures == 1 or error != self._last_error:
                self.log.warning("lease_redis_error", error=error, leader=self.is_leader, failures=self._failures)
            self._last_error = error
        await self.check_deadline()
        if not self._failures:  # Redis answered the lease call: worth a heartbeat too
            await self._heartbeat()
        if self.is_leader:
            return max(0.0, min(self.renew_interval, self._valid_until - self.clock()))
        if self._failures:
            return min(self.renew_interval * 2 ** min(self._failures - 1, 10), self.retry_max)
        return self.renew_interval

    async def check_deadline(self) -> None:
        """Step down if the renewal deadline passed without a successful renewal."""
        if self._token is not None and self.clock() >= self._valid_until:
            why = f"; last error: {self._last_error}" if self._last_error else ""
            await self._lose(f"renewal deadline passed ({self.ttl - self.margin:g}s without a successful renewal{why})")

    def _member_key(self, instance_id: str) -> str:
        return f"{self.keys['lease'].rsplit(':', 1)[0]}:member:{instance_id}"

    async def _heartbeat(self) -> None:
        """Refresh this instance's member key, at most every ttl/3 and on a role change. Its own
        round trip, outside the lease's: a failed heartbeat never counts against the lease."""
        role = "leader" if self.is_leader else "standby"
        now = self.clock()
        if role == self._member_role and now - self._member_at < self.ttl / 3:
            return
        self._script("acquire")  # makes the client
        assert self._client is not None
        try:
            with anyio.fail_after(self._call_timeout()):
                await self._client.set(self._member_key(self.instance_id), role, px=int(self.ttl * 1000))
        except (RedisError, OSError, TimeoutError) as exc:
            self.log.debug("lease_member_heartbeat_failed", error=f"{type(exc).__name__}: {exc}")
            return
        self._member_role, self._member_at = role, now

    async def live_members(self) -> dict[str, str]:
        """Every other instance whose member key is alive (instance → role it last reported)."""
        self._script("acquire")
        assert self._client is not None
        prefix = self._member_key("")
        out: dict[str, str] = {}
        with anyio.fail_after(self._call_timeout() * 2):
            async for key in self._client.scan_iter(match=prefix + "*", count=100):
                name = key[len(prefix):]
                if name != self.instance_id:
                    role = await self._client.get(key)
                    if role is not None:
                        out[name] = str(role)
        return out

    def _call_timeout(self) -> float:
        if self.is_leader:
            return max(0.001, min(self.renew_interval, self._valid_until - self.clock()))
        return self.renew_interval

    async def _acquire(self) -> None:
        holder = f"{self.instance_id}#{secrets.token_hex(8)}"
        sent = self.clock()
        with anyio.fail_after(self._call_timeout()):
            reply = await self._script("acquire")(
                keys=[self.keys["lease"], self.keys["token"], self.keys["info"]],
                args=[holder, int(self.ttl * 1000), self.instance_id, self._highest_token],
            )
        token = int(reply[0])
        if token == 0:
            holder_seen, pttl, counter = str(reply[1]), int(reply[2]), int(reply[3])
            self._seen_leader = holder_seen.split("#", 1)[0] or None
            self._seen_expiry = (self.clock(), pttl / 1000) if pttl >= 0 else None
            self._highest_token = max(self._highest_token, counter)
            return
        prev_instance, now_ms, prev_renewed = str(reply[1]), int(reply[2]), str(reply[3])
        gap = (now_ms - int(float(prev_renewed))) / 1000 if prev_renewed else None
        if not prev_instance and self._highest_token and self._seen_leader:
            # Redis lost the lease's record (restarted without its data), but this instance saw a
            # tenure before: the last holder it saw is the previous one, the gap is unknown.
            prev_instance = self._seen_leader
        self._holder, self._token = holder, token
        self._highest_token = max(self._highest_token, token)
        self._valid_until = sent + self.ttl - self.margin
        self.last_renewal = sent
        self._seen_leader, self._seen_expiry = self.instance_id, (sent, self.ttl)
        self.log.info("leadership_gained", fence=token, previous=prev_instance or None, gap_s=gap)
        await self._emit(
            LeadershipEvent(
                gained=True, instance_id=self.instance_id, token=token, at=time.time(),
                gap=gap, previous=prev_instance or None,
            )
        )

    async def _renew(self) -> None:
        sent = self.clock()
        with anyio.fail_after(self._call_timeout()):
            reply = await self._script("renew")(
                keys=[self.keys["lease"], self.keys["info"], self.keys["stepdown"]],
                args=[self._holder, int(self.ttl * 1000)],
            )
        if self._token is None:  # lost meanwhile (deadline passed during the call)
            return
        if int(reply[0]) != 1:
            await self._lose("lease expired or taken over by another instance")
            return
        self._valid_until = sent + self.ttl - self.margin
        self.last_renewal = sent
        self._seen_leader, self._seen_expiry = self.instance_id, (sent, self.ttl)
        request = str(reply[1])
        if request:
            await self._handle_step_down(request)

    async def _handle_step_down(self, request: str) -> None:
        client = self._client
        assert client is not None
        await client.delete(self.keys["stepdown"])
        token_text, _, mac = request.partition(":")
        if not self.admin_token:
            self.log.warning("step_down_refused", reason="no admin_token configured")
            return
        if token_text != str(self._token) or not hmac.compare_digest(mac, step_down_mac(self.admin_token, self._token or 0)):
            self.log.warning("step_down_refused", reason="bad or stale authenticator", requested_fence=token_text)
            return
        await self.release(reason="step-down requested by an operator")

    async def release(self, reason: str = "released") -> None:
        """Give up the lease now (compare-and-delete) so a standby need not wait for expiry.

        This instance then stays out of the contest for one TTL, leaving the field to a standby.
        """
        holder = self._holder
        if self._token is None:
            return
        self._cooldown_until = self.clock() + self.ttl
        await self._lose(reason)
        try:
            with anyio.fail_after(self.renew_interval):
                await self._script("release")(keys=[self.keys["lease"], self.keys["info"]], args=[holder])
        except (RedisError, OSError, TimeoutError) as exc:
            self.log.warning("lease_release_failed", error=f"{type(exc).__name__}: {exc}")

    async def _lose(self, reason: str) -> None:
        if self._token is None:
            return
        token = self._token
        self._token, self._holder, self._valid_until = None, None, 0.0
        self._seen_expiry = None
        self.log.warning("leadership_lost", fence=token, reason=reason)
        await self._emit(LeadershipEvent(gained=False, instance_id=self.instance_id, token=token, reason=reason, at=time.time()))

    async def stop(self) -> None:
        self._stopping.set()
        if self._stopped:
            return
        self._stopped = True
        with anyio.CancelScope(shield=True):
            await self.release(reason="shutdown")
            if self._client is not None:
                try:
                    with anyio.fail_after(self._call_timeout()):
                        await self._client.delete(self._member_key(self.instance_id))
                except (RedisError, OSError, TimeoutError):
                    pass  # the key expires after one TTL anyway
                try:
                    await self._client.aclose()
                except (RedisError, OSError):
                    pass
                self._client = None

    def status(self) -> LeaseStatus:
        expires = None
        if self._seen_expiry is not None:
            seen_at, pttl = self._seen_expiry
            expires = max(0.0, pttl - (self.clock() - seen_at))
        role = Role.STOPPED if self._stopped else Role.LEADER if self.is_leader else Role.STANDBY
        return LeaseStatus(
            backend=self.backend,
            instance_id=self.instance_id,
            role=role,
            token=self._token,
            leader=self._seen_leader,
            expires_in=expires,
            holds_with_margin=self.holds_with_margin(),
            last_error=self._last_error,
        )

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "ttl": self.ttl, "renew_interval": self.renew_interval, "margin": self.margin}


async def inspect_lease(client: aioredis.Redis, prefix: str) -> dict[str, Any]:
    """What Redis says about the lease of ``prefix`` (for ``hrkernel status``)."""
    keys = lease_keys(prefix)
    async with client.pipeline(transaction=True) as pipe:
        pipe.get(keys["lease"])
        pipe.pttl(keys["lease"])
        pipe.get(keys["token"])
        pipe.hgetall(keys["info"])
        holder, pttl, counter, info = await pipe.execute()
    return {
        "leader": holder.split("#", 1)[0] if holder else None,
        "expires_in": pttl / 1000 if holder and pttl >= 0 else None,
        "token": int(info["token"]) if holder and info.get("token") else None,
        "token_counter": int(counter) if counter else 0,
        "last_renewal_ms": int(float(info["renewed_ms"])) if info.get("renewed_ms") else None,
    }


async def request_step_down(client: aioredis.Redis, prefix: str, secret: str, ttl: float = 30.0) -> int:
    """Ask the current leader to step down; returns the token of the tenure asked.

    Raises LookupError when no instance holds the lease. The leader acts on its next renewal.
    """
    state = await inspect_lease(client, prefix)
    if state["token"] is None:
        raise LookupError(f"no instance holds the lease under {prefix!r}")
    token = int(state["token"])
    await client.set(lease_keys(prefix)["stepdown"], f"{token}:{step_down_mac(secret, token)}", px=int(ttl * 1000))
    return token
