"""Reads that concurrent callers share: one request answers every look-up made around it.

After a takeover the new leader looks up every in-flight order by client order id at once. Each
look-up that misses the open orders reads ``orders/list`` and ``trades/list`` — 30 requests a
minute each on Nobitex — so twenty look-ups one by one would spend the minute's budget in a
second and earn 429s. :class:`SharedReads` hands every caller the result of a read of the same
key that *started* at most ``fresh`` seconds before it (still in flight, or just finished), so a
burst of look-ups costs one read per page. ``fresh`` stays well under the order pipeline's
``visibility_window``: a shared read is at most that much older than the caller's own would be.
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
    def __init__(self, clock: Callable[[], float], fresh: float) -> None:
        self._clock = clock
        self.fresh = fresh
        self._reads: dict[Hashable, _Read] = {}
        self.shared = 0
        """Calls answered by another caller's read (no request of their own)."""

    async def get(self, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
        """``load()``'s result, or that of a read of ``key`` started at most ``fresh`` seconds ago."""
        now = self._clock()
        read = self._reads.get(key)
        if read is not None and now - read.started <= self.fresh and not (read.done.is_set() and read.error):
            self.shared += 1
            await read.done.wait()
            if read.error is not None:
                raise read.error
            return read.value
        read = self._reads[key] = _Read(now)
        try:
            read.value = await load()
        except Exception as exc:
            read.error = exc
            raise
        except BaseException:  # cancelled: those waiting on it must not hang or see a result
            read.error = ex.ExchangeUnavailableError("a shared read was cancelled; look up again",
                                                     exchange="nobitex")
            raise
        finally:
            read.done.set()
        return read.value
