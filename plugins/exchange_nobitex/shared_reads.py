"""Reads that concurrent callers share: one request answers every look-up waiting for it.

After a takeover the new leader looks up every in-flight order by client order id at once. Each
look-up that misses the open orders reads ``orders/list`` and ``trades/list`` — 30 requests a
minute each on Nobitex — so twenty look-ups one by one would spend the minute's budget in a
second and earn 429s. :class:`SharedReads` runs at most one read per key at a time and hands its
result to every caller that asked for it *before it started*: a caller that arrives while a read
is in flight waits for the next one, which all such callers share. No caller ever gets an answer
older than its own call, so "not found" means what it would mean from a read of its own (the
order pipeline's ``visibility_window`` reasoning holds), and a burst of look-ups costs two reads
per key instead of one each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import anyio

from hrkernel.exchange import errors as ex

__all__ = ["SharedReads"]


class _Read:
    __slots__ = ("done", "error", "started", "value")

    def __init__(self, started: float) -> None:
        self.started = started
        self.done = anyio.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class SharedReads:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._reads: dict[Hashable, _Read] = {}
        self.shared = 0
        """Calls answered by a read another caller ran (no request of their own)."""

    async def get(self, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
        """``load()``'s result from a read of ``key`` that started no earlier than this call."""
        called = self._clock()
        while True:
            read = self._reads.get(key)
            if read is None:
                return await self._run(key, load)
            if read.started >= called:
                self.shared += 1
                await read.done.wait()
                if read.error is not None:
                    raise read.error
                return read.value
            await read.done.wait()  # began before this call: wait for it to end, then share the next

    async def _run(self, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
        read = self._reads[key] = _Read(self._clock())
        try:
            read.value = await load()
        except Exception as exc:
            read.error = exc
            raise
        except BaseException:  # cancelled: those waiting on it must not hang or see a result
            read.error = ex.ExchangeUnavailableError("a shared read was cancelled; look up again", exchange="nobitex")
            raise
        finally:
            if self._reads.get(key) is read:
                del self._reads[key]
            read.done.set()
        return read.value
