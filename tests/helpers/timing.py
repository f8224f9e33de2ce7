"""Time that tests skip instead of waiting out."""

from __future__ import annotations

import time

import anyio


class FastForward:
    """A monotonic clock and a sleep to inject together: waits of ``skip_from`` seconds or more
    (rate-limit back-offs) move the clock forward at once instead of passing in real time; shorter
    waits (polls, visibility windows measured against the wall clock) still pass for real.
    ``waits`` records every wait asked for, so a test can assert the wait that was skipped."""

    def __init__(self, skip_from: float = 1.0) -> None:
        self.skip_from = skip_from
        self.offset = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if seconds >= self.skip_from:
            self.advance(seconds)
            await anyio.sleep(0)
        else:
            await anyio.sleep(seconds)
