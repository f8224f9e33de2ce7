"""The lease: who may trade right now, and the fencing token that proves it.

The order pipeline asks two things before every submission:

- :meth:`Lease.holds_with_margin` — a local, instant answer: this instance is leader and its last
  successful renewal is recent enough that the lease cannot have expired yet (a renewal deadline
  shorter than the TTL, on a monotonic clock). It turns false on its own while Redis is
  unreachable or after the process was paused, without any I/O.
- :meth:`Lease.fence_check` — the last hop: one atomic round trip confirming this instance's
  fencing token is still the current one. Call it right before the order leaves.

Leadership changes are reported to listeners as :class:`LeadershipEvent`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import msgspec
from anyio.abc import TaskGroup

from hrkernel.logging import get_logger

Clock = Callable[[], float]
"""A monotonic clock in seconds (``time.monotonic`` by default; tests inject a fake one)."""


class Role(enum.StrEnum):
    LEADER = "leader"
    STANDBY = "standby"
    STOPPED = "stopped"


class LeadershipEvent(msgspec.Struct, frozen=True, kw_only=True):
    """This instance gained (``gained=True``, with ``token``) or lost the lease (with ``reason``)."""

    gained: bool
    instance_id: str
    token: int | None = None
    reason: str = ""
    at: float = 0.0
    """Wall-clock time (epoch seconds) of the change."""
    gap: float | None = None
    """On gain: seconds between the previous holder's last renewal and this acquisition, by the
    Redis server's clock (None when unknown, e.g. the first leader ever)."""
    previous: str | None = None
    """On gain: instance id of the previous holder, when known."""


class LeaseStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What ``hrkernel status`` and the dashboard show."""

    backend: str
    instance_id: str
    role: Role
    token: int | None
    leader: str | None
    """Instance id of the current holder as last seen (None when no one holds it)."""
    expires_in: float | None
    """Seconds until the lease expires as last seen (None when unknown or not held)."""
    holds_with_margin: bool
    last_error: str | None = None


Listener = Callable[[LeadershipEvent], Awaitable[None] | None]


@runtime_checkable
class Lease(Protocol):
    """What the kernel and the order pipeline need from a lease backend."""

    instance_id: str

    @property
    def is_leader(self) -> bool: ...

    @property
    def token(self) -> int | None:
        """The fencing token of the current tenure (None when not leader)."""
        ...

    def holds_with_margin(self) -> bool: ...

    async def fence_check(self) -> bool: ...

    def add_listener(self, listener: Listener) -> None: ...

    async def start(self, tg: TaskGroup) -> None: ...

    async def stop(self) -> None:
        """Stop renewing and release the lease if held (graceful shutdown)."""
        ...

    def status(self) -> LeaseStatus: ...


class ListenerMixin:
    """Keeps listeners and calls them in order; an exception in one is logged, never raised."""

    def _init_listeners(self) -> None:
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def _emit(self, event: LeadershipEvent) -> None:
        log = get_logger("hrkernel.ha.lease")
        for listener in list(self._listeners):
            try:
                result = listener(event)
                if result is not None:
                    await result
            except Exception as exc:
                log.error("leadership_listener_failed", listener=repr(listener), error=f"{type(exc).__name__}: {exc}")


class LocalLease(ListenerMixin):
    """Embedded default: one process, always the leader, token 1.

    It still reports a gain on start and a loss on stop, so everything downstream follows the
    same path as with Redis.
    """

    backend = "local"

    def __init__(self, instance_id: str, *, clock: Clock = time.monotonic) -> None:
        self.instance_id = instance_id
        self.clock = clock
        self._token: int | None = None
        self._init_listeners()

    @property
    def is_leader(self) -> bool:
        return self._token is not None

    @property
    def token(self) -> int | None:
        return self._token

    def holds_with_margin(self) -> bool:
        return self._token is not None

    async def fence_check(self) -> bool:
        return self._token is not None

    async def start(self, tg: TaskGroup | None = None) -> None:
        if self._token is None:
            self._token = 1
            await self._emit(LeadershipEvent(gained=True, instance_id=self.instance_id, token=1, at=time.time()))

    async def stop(self) -> None:
        if self._token is not None:
            token, self._token = self._token, None
            await self._emit(
                LeadershipEvent(gained=False, instance_id=self.instance_id, token=token, reason="shutdown", at=time.time())
            )

    def status(self) -> LeaseStatus:
        return LeaseStatus(
            backend=self.backend,
            instance_id=self.instance_id,
            role=Role.LEADER if self.is_leader else Role.STOPPED,
            token=self._token,
            leader=self.instance_id if self.is_leader else None,
            expires_in=None,
            holds_with_margin=self.holds_with_margin(),
        )

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend}
