"""Fixtures for HA tests: a fake monotonic clock and leases on the test's private Redis."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
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
    # Start the fencing counter at 0 so tokens read 1, 2, ... (a fresh Redis seeds it with its clock).
    import redis as sync_redis

    with sync_redis.Redis.from_url(redis_server.url) as client:
        client.set("t:token", 0)
        client.set("c:token", 0)

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


HOLDER = Path(__file__).with_name("lease_holder.py")


class HolderProcess:
    """``lease_holder.py`` as a real subprocess; its JSON lines are collected as they come."""

    def __init__(self, args: list[str]) -> None:
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, str(HOLDER), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.raw: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "event" in event:
                self.events.append(event)
                self._queue.put(event)
        self._queue.put(None)

    def wait_for(self, name: str, nth: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """Block until the ``nth`` event called ``name`` has been printed; return it."""
        deadline = time.monotonic() + timeout
        while True:
            matches = [e for e in self.events if e["event"] == name]
            if len(matches) >= nth:
                return matches[nth - 1]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {name!r} #{nth} within {timeout}s; output:\n{''.join(self.raw)[-3000:]}")
            time.sleep(0.002)

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events]


@pytest.fixture
def lease_holder(redis_server: Any) -> Any:
    """Factory: ``lease_holder(instance, ttl=.., renew=.., margin=.., prefix="p")`` → HolderProcess."""
    started: list[HolderProcess] = []

    def start(instance: str, ttl: float = 0.6, renew: float = 0.1, margin: float = 0.2, prefix: str = "p") -> HolderProcess:
        holder = HolderProcess([redis_server.url, instance, prefix, str(ttl), str(renew), str(margin)])
        started.append(holder)
        return holder

    yield start
    for holder in started:
        if holder.proc.poll() is None:
            holder.proc.send_signal(signal.SIGCONT)
            holder.proc.kill()
            holder.proc.wait(10)
