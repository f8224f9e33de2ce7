"""Connection pool, generic over a client factory (public API).

``ConnectionPool(name, create_client, config)`` holds between ``min_connections`` and
``max_connections`` clients made by ``create_client()`` (sync or async).

* **Lazy growth**: a client is created only when every existing one is busy (``start()`` warms
  the pool up to ``min_connections`` if you want them ready).
* **Least-loaded selection**: a caller gets the healthy connection with the fewest requests in
  flight; each connection carries at most ``max_in_flight_per_connection`` at once (1 for
  clients that cannot multiplex, more for HTTP/2 or pipelining clients).
* **Bounded wait**: when every connection is full and the pool is at its maximum, callers wait in
  a FIFO queue of at most ``max_queue``; a full queue rejects at once with
  :class:`PoolExhaustedError`; a caller that gets no connection within ``connection_timeout``
  (waiting and creating included) gets :class:`PoolTimeoutError`.
* **Health**: a call that raises an exception for which ``is_broken(exc)`` is true (default:
  ``ConnectionError``/``EOFError``), or ``max_consecutive_errors`` failures in a row, marks its
  connection broken: it gets no new work, is closed when its last request ends, and is replaced
  (on demand, or by :meth:`maintain` to keep ``min_connections``). ``health_check(client)``, when
  given, is run by :meth:`maintain` on idle connections.
* **Idle**: :meth:`maintain` (run periodically by :meth:`run`) closes connections idle longer
  than ``idle_timeout`` while more than ``min_connections`` remain.
* **Breaker**: with ``breaker=``, :meth:`execute` runs inside it (an open circuit rejects before a
  connection is taken).
* :meth:`aclose` closes every client (``close_client(client)`` if given, else the client's
  ``aclose()`` or ``close()``), waking waiters with :class:`PoolClosedError`.

Use ``await pool.execute("method", *args)`` or ``async with pool.acquire() as client:``.
"""

from __future__ import annotations

import inspect
import itertools
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import anyio
import msgspec

from hrkernel.resilience._log import get_logger
from hrkernel.resilience.breaker import CircuitBreaker
from hrkernel.resilience.clock import Clock, monotonic
from hrkernel.resilience.errors import PoolClosedError, PoolExhaustedError, PoolTimeoutError
from hrkernel.types import ConfigStruct, Duration

C = TypeVar("C")
_log = get_logger("hrkernel.resilience.pool")
_ids = itertools.count(1)


class PoolConfig(ConfigStruct, kw_only=True):
    """Sizing and timeouts of a :class:`ConnectionPool` (usable as a config table)."""

    min_connections: int = 1
    max_connections: int = 10
    connection_timeout: Duration = Duration(5.0)
    """Longest a caller waits for a connection (queueing and creating included)."""
    idle_timeout: Duration = Duration(300.0)
    max_queue: int = 100
    max_in_flight_per_connection: int = 1
    max_consecutive_errors: int = 3

    def __post_init__(self) -> None:
        if self.min_connections < 0:
            raise ValueError(f"min_connections must be >= 0, got {self.min_connections}")
        if self.max_connections < 1 or self.max_connections < self.min_connections:
            raise ValueError(f"max_connections must be >= 1 and >= min_connections "
                             f"({self.min_connections}), got {self.max_connections}")
        if self.connection_timeout <= 0 or self.idle_timeout <= 0:
            raise ValueError("connection_timeout and idle_timeout must be > 0")
        if self.max_queue < 0 or self.max_in_flight_per_connection < 1 or self.max_consecutive_errors < 1:
            raise ValueError("max_queue must be >= 0; max_in_flight_per_connection and "
                             "max_consecutive_errors must be >= 1")


class ConnectionMetrics(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    in_flight: int
    requests: int
    errors: int
    healthy: bool
    mean_latency: float
    age: float
    idle_for: float


class PoolMetrics(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    size: int
    in_use: int
    idle: int
    waiting: int
    created: int
    closed: int
    replaced: int
    timeouts: int
    rejected: int
    connections: list[ConnectionMetrics]


class Connection(Generic[C]):
    """One pooled client and its health and counters."""

    __slots__ = ("client", "id", "in_flight", "requests", "errors", "consecutive_errors",
                 "latency_sum", "created_at", "last_used", "broken")

    def __init__(self, client: C, now: float) -> None:
        self.client = client
        self.id = next(_ids)
        self.in_flight = 0
        self.requests = 0
        self.errors = 0
        self.consecutive_errors = 0
        self.latency_sum = 0.0
        self.created_at = now
        self.last_used = now
        self.broken = False


def _default_is_broken(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError | EOFError)


class _Waiter:
    __slots__ = ("event", "woken")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.woken = False


class ConnectionPool(Generic[C]):
    """See the module docstring for the contract."""

    def __init__(
        self,
        name: str,
        create_client: Callable[[], Awaitable[C] | C],
        config: PoolConfig | None = None,
        *,
        close_client: Callable[[C], Awaitable[None] | None] | None = None,
        is_broken: Callable[[BaseException], bool] = _default_is_broken,
        health_check: Callable[[C], Awaitable[bool]] | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Clock = monotonic,
    ) -> None:
        self.name = name
        self.config = config if config is not None else PoolConfig()
        self._create_client = create_client
        self._close_client = close_client
        self.is_broken = is_broken
        self.health_check = health_check
        self.breaker = breaker
        self.clock = clock
        self._connections: list[Connection[C]] = []
        self._creating = 0
        self._waiters: deque[_Waiter] = deque()
        self._closed = False
        self._created = self._closed_count = self._replaced = 0
        self._timeouts = self._rejected = 0

    # ------------------------------------------------------------------ public surface

    async def start(self) -> None:
        """Create ``min_connections`` clients now (optional: the pool also grows on demand)."""
        while len(self._connections) + self._creating < self.config.min_connections:
            self._connections.append(await self._create())

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[C]:
        """``async with pool.acquire() as client:`` — the least-loaded healthy client."""
        conn = await self._checkout()
        start = self.clock()
        error: BaseException | None = None
        try:
            yield conn.client
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self._checkin(conn, error, self.clock() - start)

    async def execute(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """``await client.<method>(*args, **kwargs)`` on a pooled client (inside the breaker, if any)."""
        if self.breaker is not None:
            return await self.breaker.call(self._execute, method, args, kwargs)
        return await self._execute(method, args, kwargs)

    async def maintain(self) -> None:
        """Close idle connections above the minimum, health-check idle ones, refill to the minimum."""
        now = self.clock()
        keep = self.config.min_connections
        for conn in list(self._connections):
            if conn.in_flight or conn.broken:
                continue
            if len(self._connections) > keep and now - conn.last_used > self.config.idle_timeout:
                await self._remove(conn, "idle")
            elif self.health_check is not None:
                try:
                    healthy = bool(await self.health_check(conn.client))
                except Exception:
                    healthy = False
                if not healthy and conn.in_flight == 0:
                    conn.broken = True
                    await self._remove(conn, "failed health check")
        if not self._closed:
            await self.start()

    async def run(self, interval: float | None = None) -> None:
        """Call :meth:`maintain` forever (for the kernel's task group); never raises on its own."""
        every = interval if interval is not None else max(0.5, self.config.idle_timeout / 4)
        while not self._closed:
            await anyio.sleep(every)
            try:
                await self.maintain()
            except Exception:
                _log.exception("pool_maintenance_failed", pool=self.name)

    async def aclose(self) -> None:
        """Close every client; waiters and later callers get :class:`PoolClosedError`."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            waiter.woken = True
            waiter.event.set()
        for conn in list(self._connections):
            await self._remove(conn, "pool closed", replace=False)

    async def __aenter__(self) -> ConnectionPool[C]:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def metrics(self) -> PoolMetrics:
        now = self.clock()
        conns = [
            ConnectionMetrics(
                id=c.id, in_flight=c.in_flight, requests=c.requests, errors=c.errors,
                healthy=not c.broken, mean_latency=c.latency_sum / c.requests if c.requests else 0.0,
                age=now - c.created_at, idle_for=0.0 if c.in_flight else now - c.last_used,
            )
            for c in self._connections
        ]
        in_use = sum(1 for c in self._connections if c.in_flight)
        return PoolMetrics(
            name=self.name, size=len(self._connections), in_use=in_use,
            idle=len(self._connections) - in_use, waiting=len(self._waiters),
            created=self._created, closed=self._closed_count, replaced=self._replaced,
            timeouts=self._timeouts, rejected=self._rejected, connections=conns,
        )

    def __repr__(self) -> str:
        return f"<ConnectionPool {self.name!r} size={len(self._connections)}/{self.config.max_connections}>"

    # ------------------------------------------------------------------ internals

    async def _execute(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        async with self.acquire() as client:
            result = getattr(client, method)(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

    def _pick(self) -> Connection[C] | None:
        best: Connection[C] | None = None
        cap = self.config.max_in_flight_per_connection
        for conn in self._connections:
            if conn.broken or conn.in_flight >= cap:
                continue
            if best is None or conn.in_flight < best.in_flight:
                best = conn
                if conn.in_flight == 0:
                    break
        return best

    async def _checkout(self) -> Connection[C]:
        if self._closed:
            raise PoolClosedError(self.name)
        if not self._waiters:
            conn = self._pick()
            if conn is not None:
                conn.in_flight += 1
                return conn
        elif len(self._waiters) >= self.config.max_queue:
            self._rejected += 1
            raise PoolExhaustedError(self.name, self.config.max_connections, self.config.max_queue)
        timeout = self.config.connection_timeout
        doing = ["all connections busy"]  # what the caller was doing when time ran out
        with anyio.move_on_after(timeout):
            return await self._wait_for_connection(doing)
        self._timeouts += 1
        raise PoolTimeoutError(self.name, timeout, doing[0])

    async def _wait_for_connection(self, doing: list[str]) -> Connection[C]:
        first = True
        while True:
            if self._closed:
                raise PoolClosedError(self.name)
            if not first or not self._waiters:
                conn = self._pick()
                if conn is not None:
                    conn.in_flight += 1
                    return conn
                if len(self._connections) + self._creating < self.config.max_connections:
                    doing[0] = "creating a connection took too long"
                    conn = await self._create()
                    conn.in_flight += 1
                    self._connections.append(conn)
                    return conn
            if first and len(self._waiters) >= self.config.max_queue:
                self._rejected += 1
                raise PoolExhaustedError(self.name, self.config.max_connections, self.config.max_queue)
            waiter = _Waiter()
            # A caller that was woken and lost the race keeps its place at the front.
            if first:
                self._waiters.append(waiter)
            else:
                self._waiters.appendleft(waiter)
            first = False
            doing[0] = "all connections busy"
            try:
                await waiter.event.wait()
            except BaseException:
                if waiter.woken:
                    self._wake_one()  # pass the wake-up on: it was meant for whoever can use it
                else:
                    self._waiters.remove(waiter)
                raise

    def _wake_one(self) -> None:
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.woken = True
            waiter.event.set()

    async def _create(self) -> Connection[C]:
        self._creating += 1
        try:
            client = self._create_client()
            if inspect.isawaitable(client):
                client = await client
        except BaseException:
            self._wake_one()  # the capacity this caller reserved is free again
            raise
        finally:
            self._creating -= 1
        self._created += 1
        _log.debug("pool_connection_created", pool=self.name, size=len(self._connections) + 1)
        return Connection(client, self.clock())  # type: ignore[arg-type]

    async def _checkin(self, conn: Connection[C], error: BaseException | None, elapsed: float) -> None:
        conn.in_flight -= 1
        conn.requests += 1
        conn.latency_sum += elapsed
        conn.last_used = self.clock()
        if isinstance(error, Exception):
            conn.errors += 1
            conn.consecutive_errors += 1
            if self.is_broken(error) or conn.consecutive_errors >= self.config.max_consecutive_errors:
                if not conn.broken:
                    _log.warning("pool_connection_broken", pool=self.name, connection=conn.id,
                                 error=repr(error), consecutive_errors=conn.consecutive_errors)
                conn.broken = True
        elif error is None:
            conn.consecutive_errors = 0
        if conn.broken and conn.in_flight == 0 and conn in self._connections:
            with anyio.CancelScope(shield=True):
                await self._remove(conn, "broken")
        self._wake_one()

    async def _remove(self, conn: Connection[C], why: str, replace: bool = True) -> None:
        if conn in self._connections:
            self._connections.remove(conn)
        if why == "broken" or why == "failed health check":
            self._replaced += 1
        self._closed_count += 1
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self.config.connection_timeout):
                await self._close(conn.client)
        except Exception as exc:
            _log.warning("pool_connection_close_failed", pool=self.name, connection=conn.id, error=repr(exc))
        _log.debug("pool_connection_closed", pool=self.name, connection=conn.id, reason=why)
        if replace:
            self._wake_one()  # room to grow again

    async def _close(self, client: C) -> None:
        if self._close_client is not None:
            result = self._close_client(client)
        else:
            closer = getattr(client, "aclose", None) or getattr(client, "close", None)
            result = closer() if closer is not None else None
        if inspect.isawaitable(result):
            await result


__all__ = ["Connection", "ConnectionMetrics", "ConnectionPool", "PoolConfig", "PoolMetrics"]
