"""The time-based sliding window of :class:`~hrkernel.resilience.breaker.CircuitBreaker`."""

from __future__ import annotations

__all__ = ["TimeWindow"]

_NEVER = -(2**62)  # bucket epoch of an empty bucket: older than any window


class TimeWindow:
    """Per-bucket counts of calls, failures and slow calls over the last ``size`` seconds."""

    __slots__ = ("width", "n", "epochs", "calls", "failures", "slow")

    def __init__(self, size: float, buckets: int = 10) -> None:
        self.n = buckets
        self.width = size / buckets
        self.epochs = [_NEVER] * buckets
        self.calls = [0] * buckets
        self.failures = [0] * buckets
        self.slow = [0] * buckets

    def record(self, now: float, failed: bool, slow: bool) -> None:
        epoch = int(now / self.width)
        i = epoch % self.n
        if self.epochs[i] != epoch:
            self.epochs[i] = epoch
            self.calls[i] = self.failures[i] = self.slow[i] = 0
        self.calls[i] += 1
        if failed:
            self.failures[i] += 1
        if slow:
            self.slow[i] += 1

    def totals(self, now: float) -> tuple[int, int, int]:
        oldest = int(now / self.width) - self.n + 1
        calls = failures = slow = 0
        for i in range(self.n):
            if self.epochs[i] >= oldest:
                calls += self.calls[i]
                failures += self.failures[i]
                slow += self.slow[i]
        return calls, failures, slow

    def reset(self) -> None:
        self.epochs = [_NEVER] * self.n
