"""Shared breaker state through Redis: every instance of a deployment sees an open circuit.

The breakers themselves stay local and cheap: no call ever waits for Redis. A
:class:`RedisBreakerSync` watches the state changes of its breakers and, every ``interval``
seconds (or when :meth:`RedisBreakerSync.sync_once` is called):

1. publishes each circuit this instance opened as ``<prefix><name>`` = ``"<instance>|<until>"``
   (``until`` in wall-clock seconds) with a Redis expiry equal to the open period;
2. deletes the key of a circuit this instance closed again, if the key is still its own;
3. reads the keys of all its breakers and opens, until the published time, every local breaker
   another instance opened (reason ``"opened by another instance (<id>)"``).

When Redis is unreachable the breakers keep working on local state; the sync logs one warning
(``breaker_shared_state_unavailable``) when that starts and one info line
(``breaker_shared_state_restored``) when Redis answers again, then publishes what it opened in
the meantime. Nothing is raised to callers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from hrkernel.resilience._log import get_logger
from hrkernel.resilience.breaker import CircuitBreaker
from hrkernel.resilience.breaker_registry import BreakerRegistry
from hrkernel.resilience.events import BreakerState, BreakerStateChanged

_log = get_logger("hrkernel.resilience.breaker_redis")

REMOTE_REASON = "opened by another instance"

# Delete the key only if it still holds this instance's value.
_DELETE_IF_OURS = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisBreakerSync:
    """Shares open circuits of ``breakers`` through Redis (see the module docstring).

    ``redis``: a URL (``redis://127.0.0.1:6379/0``) or a ``redis.asyncio.Redis`` client (not
    closed by :meth:`aclose` when passed in). ``breakers``: a :class:`BreakerRegistry` (breakers
    added to it later are picked up) or an iterable of breakers.
    """

    def __init__(
        self,
        redis: Any,
        breakers: BreakerRegistry | Iterable[CircuitBreaker],
        *,
        prefix: str = "hrkernel:breaker:",
        interval: float = 0.5,
        instance_id: str | None = None,
        timeout: float = 0.5,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"RedisBreakerSync: interval must be > 0 seconds, got {interval}")
        if isinstance(redis, str):
            import redis.asyncio as aioredis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            self._client = aioredis.from_url(
                redis, socket_timeout=timeout, socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0), retry_on_timeout=False,
            )
            self._owns_client = True
        else:
            self._client = redis
            self._owns_client = False
        self._source = breakers if isinstance(breakers, BreakerRegistry) else list(breakers)
        self.prefix = prefix
        self.interval = interval
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self._watched: dict[str, CircuitBreaker] = {}
        self._pending_open: dict[str, float] = {}  # name -> wall-clock until
        self._pending_close: set[str] = set()
        self._applying_remote = False
        self.degraded = False
        self._closed = False
        self.name = "breaker_sync"

    # ------------------------------------------------------------------ public surface

    async def sync_once(self) -> bool:
        """One round of publish + read; False when Redis could not be reached (logged once)."""
        self._watch_new_breakers()
        if not self._watched:
            return True
        try:
            await self._publish()
            await self._read()
        except (OSError, TimeoutError, ConnectionError) as exc:
            self._went_down(exc)
            return False
        except Exception as exc:  # redis.exceptions.* do not all derive from OSError
            if type(exc).__module__.startswith("redis"):
                self._went_down(exc)
                return False
            raise
        if self.degraded:
            self.degraded = False
            _log.info("breaker_shared_state_restored", instance=self.instance_id)
        return True

    async def run(self) -> None:
        """Sync every ``interval`` seconds until :meth:`aclose` (for the kernel's task group)."""
        while not self._closed:
            await self.sync_once()
            await anyio.sleep(self.interval)

    async def start(self, tg: TaskGroup) -> None:
        self._watch_new_breakers()
        tg.start_soon(self.run)

    async def stop(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        for breaker in self._watched.values():
            try:
                breaker.remove_listener(self._on_change)
            except ValueError:
                pass
        if self._owns_client:
            await self._client.aclose()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "RedisBreakerSync", "breakers": sorted(self._watched),
                "degraded": self.degraded}

    # ------------------------------------------------------------------ internals

    def _watch_new_breakers(self) -> None:
        for breaker in self._source:
            if breaker.name not in self._watched:
                self._watched[breaker.name] = breaker
                breaker.add_listener(self._on_change)
                if breaker._state is BreakerState.OPEN:
                    self._queue_open(breaker)

    def _on_change(self, event: BreakerStateChanged) -> None:
        if self._applying_remote:
            return
        breaker = self._watched.get(event.name)
        if breaker is None:
            return
        if event.new is BreakerState.OPEN:
            self._queue_open(breaker)
        elif event.new is BreakerState.CLOSED:
            self._pending_open.pop(event.name, None)
            self._pending_close.add(event.name)

    def _queue_open(self, breaker: CircuitBreaker) -> None:
        remaining = breaker.next_attempt_at - breaker.clock()
        self._pending_close.discard(breaker.name)
        self._pending_open[breaker.name] = time.time() + max(0.0, remaining)

    async def _publish(self) -> None:
        now = time.time()
        for name, until in list(self._pending_open.items()):
            ms = int((until - now) * 1000)
            if ms > 0:
                await self._client.set(self.prefix + name, f"{self.instance_id}|{until:.6f}", px=ms)
            self._pending_open.pop(name, None)
        for name in list(self._pending_close):
            await self._client.eval(_DELETE_IF_OURS, 1, self.prefix + name, self.instance_id)
            self._pending_close.discard(name)

    async def _read(self) -> None:
        names = list(self._watched)
        values = await self._client.mget([self.prefix + n for n in names])
        now = time.time()
        for name, raw in zip(names, values, strict=True):
            if raw is None:
                continue
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            owner, _, until_text = text.partition("|")
            if owner == self.instance_id:
                continue
            try:
                remaining = float(until_text) - now
            except ValueError:
                _log.warning("breaker_shared_state_bad_value", key=self.prefix + name, value=text[:80])
                continue
            if remaining <= 0:
                continue
            breaker = self._watched[name]
            local_until = breaker.clock() + remaining
            if breaker._state is BreakerState.OPEN and breaker.next_attempt_at >= local_until - 1e-3:
                continue
            self._applying_remote = True
            try:
                breaker.force_open(until=local_until, reason=f"{REMOTE_REASON} ({owner})")
            finally:
                self._applying_remote = False

    def _went_down(self, exc: BaseException) -> None:
        if not self.degraded:
            self.degraded = True
            _log.warning("breaker_shared_state_unavailable", instance=self.instance_id,
                         error=f"{type(exc).__name__}: {exc}",
                         detail="breakers continue on local state until Redis answers again")


__all__ = ["REMOTE_REASON", "RedisBreakerSync"]
