"""Fixtures for HA tests: a fake monotonic clock and leases on the test's private Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hrkernel.ha.lease import LeadershipEvent
from hrkernel.ha.redis_lease import RedisLease


class FakeClock:
    """A monotonic clock that only moves when told (a paused process sees no time pass)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


class Recorder:
    """Collects leadership events of one lease."""

    def __init__(self) -> None:
        self.events: list[LeadershipEvent] = []

    def __call__(self, event: LeadershipEvent) -> None:
        self.events.append(event)

    @property
    def kinds(self) -> list[str]:
        return ["gained" if e.gained else "lost" for e in self.events]


@pytest.fixture
async def make_lease(redis_server: Any) -> AsyncIterator[Callable[..., tuple[RedisLease, Recorder]]]:
    """Factory: ``make_lease(instance_id, **options)`` → (RedisLease, Recorder); all stopped after."""
    made: list[RedisLease] = []

    def make(instance_id: str, **options: Any) -> tuple[RedisLease, Recorder]:
        settings: dict[str, Any] = {"key_prefix": "t", "ttl": 0.5, "renew_interval": 0.1, "margin": 0.15}
        settings.update(options)
        lease = RedisLease(instance_id, options.pop("url", redis_server.url), **{k: v for k, v in settings.items() if k != "url"})
        recorder = Recorder()
        lease.add_listener(recorder)
        made.append(lease)
        return lease, recorder

    yield make
    for lease in made:
        try:
            await lease.stop()
        except Exception:
            pass
