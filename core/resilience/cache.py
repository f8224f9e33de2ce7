"""TTL cache-aside with stale-if-error and single-flight (public API).

``await cache.get(key, fetch, *args)`` returns the cached value while it is younger than ``ttl``;
otherwise it calls ``await fetch(*args)``, stores and returns the result.

* **Single flight**: concurrent misses for one key make one fetch; the others wait for it and
  get its result (or its error). If the fetching caller is cancelled, one of the waiters fetches.
* **Stale if error**: when the fetch raises an ``Exception`` and the cache still holds a value
  no older than ``ttl + max_stale``, that value is served instead, marked stale
  (:meth:`get_result` returns a :class:`CacheResult` with ``stale=True`` and its ``age``); the
  error is logged once per failed fetch. With no such value the error propagates.
* **Invalidation** by key (:meth:`invalidate`) and by string prefix (:meth:`invalidate_prefix`);
  a fetch that was in flight when its key was invalidated still answers its callers but is not
  stored.
* ``max_size`` bounds the entries; the oldest-written is evicted first.
* Metrics: hits, misses, stale serves, fetches, fetch errors, coalesced waits, evictions.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

import anyio
import msgspec

from hrkernel.resilience._log import get_logger
from hrkernel.resilience.clock import Clock, monotonic

V = TypeVar("V")
_log = get_logger("hrkernel.resilience.cache")


class CacheResult(msgspec.Struct, Generic[V], frozen=True, kw_only=True):
    """A value from the cache: ``stale`` when served past its TTL because the fetch failed."""

    value: V
    stale: bool
    age: float
    """Seconds since the value was fetched."""
    hit: bool
    """True when no fetch was needed (or this caller waited for another caller's fetch)."""


class CacheMetrics(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    size: int
    hits: int
    misses: int
    stale_serves: int
    fetches: int
    fetch_errors: int
    coalesced: int
    evictions: int


class _Flight:
    __slots__ = ("event", "result", "error", "cancelled", "epoch")

    def __init__(self, epoch: int) -> None:
        self.event = anyio.Event()
        self.result: CacheResult[Any] | None = None
        self.error: BaseException | None = None
        self.cancelled = False
        self.epoch = epoch


class TTLCache(Generic[V]):
    """See the module docstring for the contract."""

    def __init__(self, name: str = "cache", ttl: float = 60.0, *, max_stale: float = 0.0,
                 max_size: int | None = None, clock: Clock = monotonic) -> None:
        if ttl <= 0:
            raise ValueError(f"TTLCache({name!r}): ttl must be > 0 seconds, got {ttl}")
        if max_stale < 0:
            raise ValueError(f"TTLCache({name!r}): max_stale must be >= 0 seconds, got {max_stale}")
        if max_size is not None and max_size < 1:
            raise ValueError(f"TTLCache({name!r}): max_size must be >= 1 or None, got {max_size}")
        self.name = name
        self.ttl = ttl
        self.max_stale = max_stale
        self.max_size = max_size
        self.clock = clock
        self._data: dict[Hashable, tuple[V, float]] = {}
        self._flights: dict[Hashable, _Flight] = {}
        self._epoch = 0
        self._hits = self._misses = self._stale = self._fetches = 0
        self._errors = self._coalesced = self._evictions = 0

    # ------------------------------------------------------------------ public surface

    async def get(self, key: Hashable, fetch: Callable[..., Awaitable[V]], *args: Any) -> V:
        """The value for ``key``, fetched with ``await fetch(*args)`` when missing or expired."""
        entry = self._data.get(key)
        if entry is not None and self.clock() - entry[1] < self.ttl:
            self._hits += 1
            return entry[0]
        return (await self.get_result(key, fetch, *args)).value

    async def get_result(self, key: Hashable, fetch: Callable[..., Awaitable[V]],
                         *args: Any) -> CacheResult[V]:
        """Like :meth:`get` but says whether the value is stale and how old it is."""
        while True:
            now = self.clock()
            entry = self._data.get(key)
            if entry is not None and now - entry[1] < self.ttl:
                self._hits += 1
                return CacheResult(value=entry[0], stale=False, age=now - entry[1], hit=True)
            flight = self._flights.get(key)
            if flight is None:
                return await self._fetch(key, fetch, args)
            self._coalesced += 1
            await flight.event.wait()
            if flight.cancelled:
                continue  # the fetching caller was cancelled: try again (maybe as the fetcher)
            if flight.error is not None:
                raise flight.error
            assert flight.result is not None
            if flight.result.stale:
                self._stale += 1
            return flight.result

    def peek(self, key: Hashable) -> CacheResult[V] | None:
        """The stored value (fresh or not, never fetching), or None."""
        entry = self._data.get(key)
        if entry is None:
            return None
        age = self.clock() - entry[1]
        return CacheResult(value=entry[0], stale=age >= self.ttl, age=age, hit=True)

    def set(self, key: Hashable, value: V) -> None:
        self._store(key, value, self.clock())

    def invalidate(self, key: Hashable) -> bool:
        """Forget ``key``; True if it was cached."""
        self._epoch += 1
        return self._data.pop(key, None) is not None

    def invalidate_prefix(self, prefix: str) -> int:
        """Forget every string key starting with ``prefix``; returns how many were dropped."""
        self._epoch += 1
        doomed = [k for k in self._data if isinstance(k, str) and k.startswith(prefix)]
        for k in doomed:
            del self._data[k]
        return len(doomed)

    def clear(self) -> None:
        self._epoch += 1
        self._data.clear()

    def cached(self, key: Callable[..., Hashable] | None = None) -> Callable[[Callable[..., Awaitable[V]]], Callable[..., Awaitable[V]]]:
        """Decorator: cache an async function's results by ``key(*args)`` (default: the args)."""

        def decorate(fn: Callable[..., Awaitable[V]]) -> Callable[..., Awaitable[V]]:
            @functools.wraps(fn)
            async def wrapper(*args: Any) -> V:
                k = key(*args) if key is not None else (fn.__qualname__, *args)
                return await self.get(k, fn, *args)

            wrapper.cache = self  # type: ignore[attr-defined]
            return wrapper

        return decorate

    def metrics(self) -> CacheMetrics:
        return CacheMetrics(name=self.name, size=len(self._data), hits=self._hits,
                            misses=self._misses, stale_serves=self._stale, fetches=self._fetches,
                            fetch_errors=self._errors, coalesced=self._coalesced,
                            evictions=self._evictions)

    def __len__(self) -> int:
        return len(self._data)

    # ------------------------------------------------------------------ internals

    async def _fetch(self, key: Hashable, fetch: Callable[..., Awaitable[V]],
                     args: tuple[Any, ...]) -> CacheResult[V]:
        self._misses += 1
        self._fetches += 1
        flight = _Flight(self._epoch)
        self._flights[key] = flight
        try:
            value = await fetch(*args)
        except Exception as exc:
            self._errors += 1
            now = self.clock()
            entry = self._data.get(key)
            if entry is not None and now - entry[1] <= self.ttl + self.max_stale:
                self._stale += 1
                _log.warning("cache_serving_stale", cache=self.name, key=str(key),
                             age=round(now - entry[1], 3), error=repr(exc))
                flight.result = CacheResult(value=entry[0], stale=True, age=now - entry[1], hit=False)
                return flight.result
            if entry is not None:
                del self._data[key]  # too old even to serve stale
            flight.error = exc
            raise
        except BaseException:
            flight.cancelled = True
            raise
        else:
            if flight.epoch == self._epoch:
                self._store(key, value, self.clock())
            flight.result = CacheResult(value=value, stale=False, age=0.0, hit=True)
            return CacheResult(value=value, stale=False, age=0.0, hit=False)
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.event.set()

    def _store(self, key: Hashable, value: V, now: float) -> None:
        self._data.pop(key, None)
        self._data[key] = (value, now)
        if self.max_size is not None and len(self._data) > self.max_size:
            oldest = next(iter(self._data))
            del self._data[oldest]
            self._evictions += 1


__all__ = ["CacheMetrics", "CacheResult", "TTLCache"]
