"""Injectable time (public API).

Every primitive that measures or waits takes a ``clock`` (a zero-argument callable returning
monotonic seconds, default :func:`time.monotonic`) and, where it sleeps, a ``sleep`` coroutine
function (default :func:`anyio.sleep`). Tests pass a :class:`ManualClock` so they never sleep.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

Clock = Callable[[], float]
"""Returns monotonic seconds; only differences between readings are meaningful."""

Sleep = Callable[[float], Awaitable[None]]
"""Waits the given number of seconds (a cancellation point)."""

monotonic: Clock = time.monotonic


class ManualClock:
    """A clock that moves only when told to; its :meth:`sleep` advances it instead of waiting.

    ``clock()`` reads it, ``clock.advance(dt)`` moves it, ``await clock.sleep(dt)`` records the
    requested delay in :attr:`sleeps`, advances the time by it and yields once to the event loop.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = float(start)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot move backwards (advance({seconds}))")
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
        await anyio.lowlevel.checkpoint()


def is_cancellation(exc: BaseException) -> bool:
    """True for the caller's cancellation (asyncio/trio/anyio), which is never a failure.

    Every cancellation exception derives from ``BaseException`` but not ``Exception``; so do
    ``KeyboardInterrupt``/``SystemExit``/``GeneratorExit``, which are not a verdict on the guarded
    service either. All of them are treated as neutral.
    """
    return not isinstance(exc, Exception)


__all__ = ["Clock", "ManualClock", "Sleep", "is_cancellation", "monotonic"]
