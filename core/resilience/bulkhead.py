"""Bulkhead: at most ``max_concurrent`` calls at once plus a bounded, timed wait queue (public API).

* A call runs at once when a slot is free and nobody is queued ahead of it.
* Otherwise it waits in a FIFO queue of at most ``max_queue`` callers for at most
  ``queue_timeout`` seconds (``None``: as long as it takes); a full queue rejects at once with
  :class:`BulkheadFullError`, a wait that times out raises it with ``timed_out=True``.
* A finishing call hands its slot directly to the first waiter, so a newcomer can never overtake
  the queue. A waiter cancelled after being handed a slot passes it on.

Separate bulkheads isolate subsystems (orders vs market data vs alerts): one subsystem hanging
cannot take the others' capacity. Use ``async with bulkhead:``, ``await bulkhead.call(fn, *a)``
or ``@bulkhead``.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import msgspec

from hrkernel.resilience.errors import BulkheadFullError

T = TypeVar("T")


class BulkheadMetrics(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    max_concurrent: int
    in_flight: int
    waiting: int
    admitted: int
    rejected: int
    timed_out: int
    peak_in_flight: int


class _Waiter:
    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.granted = False


class Bulkhead:
    """See the module docstring for the contract."""

    def __init__(self, name: str = "bulkhead", max_concurrent: int = 10, *, max_queue: int = 0,
                 queue_timeout: float | None = None) -> None:
        if max_concurrent < 1:
            raise ValueError(f"Bulkhead({name!r}): max_concurrent must be >= 1, got {max_concurrent}")
        if max_queue < 0:
            raise ValueError(f"Bulkhead({name!r}): max_queue must be >= 0, got {max_queue}")
        if queue_timeout is not None and queue_timeout < 0:
            raise ValueError(f"Bulkhead({name!r}): queue_timeout must be >= 0, got {queue_timeout}")
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self._in_flight = 0
        self._waiters: deque[_Waiter] = deque()
        self._admitted = 0
        self._rejected = 0
        self._timed_out = 0
        self._peak = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def acquire(self) -> None:
        """Take a slot (waiting in the queue if allowed); pair with :meth:`release`."""
        if self._in_flight < self.max_concurrent and not self._waiters:
            self._take()
            return
        if len(self._waiters) >= self.max_queue:
            self._rejected += 1
            raise BulkheadFullError(self.name, self.max_concurrent, self.max_queue)
        waiter = _Waiter()
        self._waiters.append(waiter)
        try:
            if self.queue_timeout is None:
                await waiter.event.wait()
            else:
                with anyio.move_on_after(self.queue_timeout):
                    await waiter.event.wait()
        except BaseException:
            self._abandon(waiter)
            raise
        if not waiter.granted:
            self._abandon(waiter)
            self._timed_out += 1
            raise BulkheadFullError(self.name, self.max_concurrent, self.max_queue, timed_out=True)
        self._admitted += 1

    def release(self) -> None:
        """Give a slot back; it goes straight to the first waiter if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            waiter.granted = True
            waiter.event.set()
            return  # the slot changes hands; in_flight is unchanged
        self._in_flight -= 1

    async def call(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        await self.acquire()
        try:
            return await fn(*args, **kwargs)
        finally:
            self.release()

    def __call__(self, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> T:
            return await self.call(fn, *args, **kwargs)

        wrapper.bulkhead = self  # type: ignore[attr-defined]
        return wrapper

    async def __aenter__(self) -> Bulkhead:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.release()

    def metrics(self) -> BulkheadMetrics:
        return BulkheadMetrics(name=self.name, max_concurrent=self.max_concurrent,
                               in_flight=self._in_flight, waiting=len(self._waiters),
                               admitted=self._admitted, rejected=self._rejected,
                               timed_out=self._timed_out, peak_in_flight=self._peak)

    def __repr__(self) -> str:
        return f"<Bulkhead {self.name!r} {self._in_flight}/{self.max_concurrent} +{len(self._waiters)} queued>"

    def _take(self) -> None:
        self._in_flight += 1
        self._admitted += 1
        if self._in_flight > self._peak:
            self._peak = self._in_flight

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter.granted:
            self.release()  # it was handed a slot it will not use: pass it on
        else:
            self._waiters.remove(waiter)


__all__ = ["Bulkhead", "BulkheadMetrics"]
