"""Per-channel delivery: a bounded queue, a worker, a circuit breaker and retry (internal).

Every call to a channel goes through :func:`call_channel`, the one place that talks to the
channel object. A failing or hanging channel only ever holds up its own worker: the caller of
``send_alert`` and the other channels never wait on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from hrkernel.alerts.clock import Clock
from hrkernel.alerts.config import ChannelRouting
from hrkernel.alerts.types import ChannelError, Notification


class Breaker:
    """Consecutive-failure circuit breaker on the alert system's clock.

    closed → (``threshold`` failures) → open → (``reset`` seconds) → half-open: one probe;
    its success closes the breaker, its failure opens it again.
    """

    def __init__(self, clock: Clock, threshold: int, reset: float) -> None:
        self.clock = clock
        self.threshold = threshold
        self.reset = reset
        self.failures = 0
        self.opened_at: float | None = None
        self.opens = 0

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock.now() >= self.opened_at + self.reset else "open"

    def wait_seconds(self) -> float:
        """How long until a call is allowed (0 when closed or half-open)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.reset - self.clock.now())

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self) -> bool:
        """Record a failed call; returns True when this failure opened the breaker."""
        self.failures += 1
        if self.opened_at is not None:  # a failed probe: stay open for another period
            self.opened_at = self.clock.now()
            return False
        if self.failures >= self.threshold:
            self.opened_at = self.clock.now()
            self.opens += 1
            return True
        return False


async def call_channel(channel: Any, notification: Notification, timeout: float) -> None:
    """The single call into a channel, under a per-attempt timeout."""
    try:
        with anyio.fail_after(timeout):
            await channel.send(notification)
    except TimeoutError:
        raise ChannelError(notification.channel, f"no answer within {timeout:g}s") from None


async def send_with_retry(
    channel: Any, notification: Notification, *, timeout: float, attempts: int, delay: float
) -> None:
    """Retry retryable failures with exponential backoff (real time: the delays are short)."""
    for attempt in range(1, attempts + 1):
        try:
            await call_channel(channel, notification, timeout)
            return
        except ChannelError as exc:
            if not exc.retryable or attempt == attempts:
                raise
        except Exception as exc:  # a third-party channel may raise anything
            if attempt == attempts:
                raise ChannelError(notification.channel, f"{type(exc).__name__}: {exc}") from exc
        await anyio.sleep(delay * 2 ** (attempt - 1))


@dataclass
class ChannelStats:
    delivered: int = 0
    failed_attempts: int = 0
    dropped: int = 0
    """Notifications given up on because the channel said the failure was permanent."""
    overflow: int = 0
    """Notifications that did not fit into the bounded queue (recorded as failed deliveries)."""


@dataclass
class ChannelRuntime:
    """One configured channel: the object, its routing, its queue, breaker and rate budget."""

    id: str
    type: str
    obj: Any
    routing: ChannelRouting
    breaker: Breaker
    queue_size: int
    timeout: float
    stats: ChannelStats = field(default_factory=ChannelStats)
    tokens: float = math.inf
    tokens_at: float = 0.0
    pending: int = 0
    """Notifications queued or being delivered (the queue hands items straight to a waiting
    worker, so its buffer alone does not tell whether work is left)."""
    send: MemoryObjectSendStream[Notification] = field(init=False)
    receive: MemoryObjectReceiveStream[Notification] = field(init=False)

    def __post_init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[Notification](self.queue_size)
        if self.routing.max_per_minute:
            self.tokens = float(self.routing.max_per_minute)

    @property
    def queued(self) -> int:
        return self.send.statistics().current_buffer_used

    def take_token(self, now: float) -> float:
        """Spend one notification of the rate budget: 0.0 if allowed, else seconds to wait."""
        rate = self.routing.max_per_minute
        if not rate:
            return 0.0
        capacity = float(rate)
        per_second = rate / 60.0
        self.tokens = min(capacity, self.tokens + max(0.0, now - self.tokens_at) * per_second)
        self.tokens_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / per_second

    def accepts(self, source: str, level: Any) -> bool:
        r = self.routing
        if not r.enabled or level < r.min_level:
            return False
        if r.sources and source not in r.sources:
            return False
        return source not in r.exclude_sources


Recorder = Callable[[ChannelRuntime, Notification, bool, str | None], None]


async def run_worker(
    rt: ChannelRuntime, clock: Clock, *, attempts: int, delay: float, record: Recorder, log: Any
) -> None:
    """Deliver the channel's queue in order; keep a notification until it is delivered.

    A retryable failure counts against the breaker; while the breaker is open the worker waits
    (on the injectable clock) for the probe time and tries the same notification again, so an
    outage loses nothing that fits into the queue.
    """
    async with rt.receive:
        async for notification in rt.receive:
            try:
                await _deliver_until_done(rt, notification, clock, attempts, delay, record, log)
            finally:
                rt.pending -= 1


async def _deliver_until_done(
    rt: ChannelRuntime, notification: Notification, clock: Clock, attempts: int, delay: float,
    record: Recorder, log: Any,
) -> None:
    while True:
        wait = rt.breaker.wait_seconds()
        if wait > 0:
            await clock.sleep(wait)
            continue
        try:
            await send_with_retry(rt.obj, notification, timeout=rt.timeout, attempts=attempts, delay=delay)
        except ChannelError as exc:
            rt.stats.failed_attempts += 1
            record(rt, notification, False, exc.reason)
            if not exc.retryable:
                rt.stats.dropped += 1
                log.error("alert_delivery_failed", channel=rt.id, kind=notification.kind, reason=exc.reason, permanent=True)
                return
            opened = rt.breaker.failure()
            log.warning("alert_delivery_failed", channel=rt.id, kind=notification.kind, reason=exc.reason,
                        breaker=rt.breaker.state)
            if opened:
                log.error("alert_channel_breaker_open", channel=rt.id, failures=rt.breaker.failures)
            elif rt.breaker.state == "closed":
                await anyio.sleep(delay)
            continue
        was_open = rt.breaker.opened_at is not None
        rt.breaker.success()
        rt.stats.delivered += 1
        record(rt, notification, True, None)
        if was_open:
            log.info("alert_channel_breaker_closed", channel=rt.id)
        return
