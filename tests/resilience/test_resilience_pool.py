"""Connection pool: bounds, lazy growth, least-loaded choice, broken-connection replacement,
bounded wait queue, idle pruning, breaker integration, closing."""

from __future__ import annotations

import anyio
import pytest

from hrkernel.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    ConnectionPool,
    ManualClock,
    PoolClosedError,
    PoolConfig,
    PoolExhaustedError,
    PoolTimeoutError,
)

pytestmark = pytest.mark.anyio


class Client:
    """A stand-in client whose methods really await, and which knows whether it was closed."""

    live = 0
    peak = 0

    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False
        self.active = 0
        self.peak_active = 0
        self.fail_with: BaseException | None = None
        Client.live += 1
        Client.peak = max(Client.peak, Client.live)

    async def request(self, value: int, ticks: int = 3) -> tuple[int, int]:
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)
        try:
            for _ in range(ticks):
                await anyio.lowlevel.checkpoint()
            if self.fail_with is not None:
                raise self.fail_with
            return self.n, value
        finally:
            self.active -= 1

    async def aclose(self) -> None:
        self.closed = True
        Client.live -= 1


@pytest.fixture
def factory():
    Client.live = Client.peak = 0
    made: list[Client] = []

    async def create() -> Client:
        await anyio.lowlevel.checkpoint()
        client = Client(len(made) + 1)
        made.append(client)
        return client

    create.made = made  # type: ignore[attr-defined]
    return create


async def test_never_exceeds_max_connections_under_100_concurrent_callers(factory) -> None:
    pool = ConnectionPool("api", factory, PoolConfig(max_connections=5, max_queue=200))
    results: list[tuple[int, int]] = []

    async def call(i: int) -> None:
        results.append(await pool.execute("request", i))

    async with anyio.create_task_group() as tg:
        for i in range(100):
            tg.start_soon(call, i)
    assert sorted(v for _, v in results) == list(range(100))
    assert Client.peak == 5 and len(factory.made) == 5
    assert all(c.peak_active == 1 for c in factory.made)
    await pool.aclose()
    assert all(c.closed for c in factory.made) and Client.live == 0


async def test_grows_lazily(factory) -> None:
    pool = ConnectionPool("api", factory, PoolConfig(min_connections=0, max_connections=5))
    assert pool.metrics().size == 0
    for i in range(5):
        await pool.execute("request", i)
    assert len(factory.made) == 1  # sequential calls reuse one connection
    await pool.start()
    assert pool.metrics().size == 1


async def test_least_loaded_connection_is_chosen(factory) -> None:
    pool = ConnectionPool("mux", factory, PoolConfig(min_connections=3, max_connections=3,
                                                     max_in_flight_per_connection=4))
    await pool.start()
    gate = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def hold() -> None:
            async with pool.acquire() as client:
                await gate.wait()
                assert client in factory.made

        for _ in range(6):
            tg.start_soon(hold)
        await anyio.wait_all_tasks_blocked()
        assert sorted(c.in_flight for c in pool.metrics().connections) == [2, 2, 2]
        gate.set()


async def test_broken_connection_is_closed_and_replaced(factory) -> None:
    pool = ConnectionPool("api", factory, PoolConfig(max_connections=2))
    assert await pool.execute("request", 1) == (1, 1)
    factory.made[0].fail_with = ConnectionResetError("peer reset")
    with pytest.raises(ConnectionResetError):
        await pool.execute("request", 2)
    assert factory.made[0].closed
    assert await pool.execute("request", 3) == (2, 3)  # a fresh client
    m = pool.metrics()
    assert (m.size, m.replaced, m.created) == (1, 1, 2)


async def test_repeated_errors_mark_a_connection_unhealthy(factory) -> None:
    pool = ConnectionPool("api", factory, PoolConfig(max_connections=1, max_consecutive_errors=2))
    await pool.execute("request", 0)
    factory.made[0].fail_with = ValueError("bad reply")
    for _ in range(2):
        with pytest.raises(ValueError):
            await pool.execute("request", 1)
    assert factory.made[0].closed and pool.metrics().replaced == 1


async def test_full_queue_rejects_at_once_and_waiters_time_out(factory) -> None:
    pool = ConnectionPool("api", factory, PoolConfig(max_connections=1, max_queue=1,
                                                     connection_timeout=0.02))
    gate = anyio.Event()
    outcomes: list[str] = []

    async def holder() -> None:
        async with pool.acquire():
            await gate.wait()

    async def waiter() -> None:
        try:
            async with pool.acquire():
                outcomes.append("got")
        except PoolTimeoutError:
            outcomes.append("timeout")

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(PoolExhaustedError, match="'api'"):
            async with pool.acquire():
                pass
        await anyio.sleep(0.05)
        gate.set()
    assert outcomes == ["timeout"]
    m = pool.metrics()
    assert (m.rejected, m.timeouts, m.waiting) == (1, 1, 0)


async def test_a_freed_connection_goes_to_a_waiter(factory) -> None:
    pool = ConnectionPool("api", factory, PoolConfig(max_connections=1, max_queue=10))
    order: list[int] = []
    arrived: list[int] = []  # trio starts tasks in random order: compare with actual arrival

    async def call(i: int) -> None:
        arrived.append(i)
        await pool.execute("request", i)
        order.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(call, i)
    assert order == arrived and len(order) == 5 and len(factory.made) == 1


async def test_slow_client_creation_times_out() -> None:
    async def slow_create() -> Client:
        await anyio.sleep(1)
        return Client(0)

    pool = ConnectionPool("slow", slow_create, PoolConfig(connection_timeout=0.01))
    with pytest.raises(PoolTimeoutError, match="creating"):
        await pool.execute("request", 1)
    assert pool.metrics().size == 0


async def test_idle_connections_are_closed_down_to_the_minimum(factory) -> None:
    clock = ManualClock()
    pool = ConnectionPool("api", factory, PoolConfig(min_connections=1, max_connections=3,
                                                     idle_timeout=60.0), clock=clock)
    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(pool.execute, "request", i)
    assert pool.metrics().size == 3
    clock.advance(61)
    await pool.maintain()
    assert pool.metrics().size == 1
    assert sum(c.closed for c in factory.made) == 2


async def test_health_check_replaces_unhealthy_idle_connections(factory) -> None:
    async def healthy(client: Client) -> bool:
        return client.n != 1

    pool = ConnectionPool("api", factory, PoolConfig(min_connections=1), health_check=healthy)
    await pool.start()
    await pool.maintain()
    assert factory.made[0].closed and pool.metrics().size == 1 and not factory.made[1].closed


async def test_breaker_rejects_before_a_connection_is_taken(factory) -> None:
    breaker = CircuitBreaker("api", failure_threshold=2)
    pool = ConnectionPool("api", factory, PoolConfig(max_connections=2), breaker=breaker)
    await pool.execute("request", 0)
    factory.made[0].fail_with = TimeoutError("upstream timeout")
    for _ in range(2):
        with pytest.raises(TimeoutError):
            await pool.execute("request", 1)
    with pytest.raises(CircuitOpenError):
        await pool.execute("request", 2)
    assert pool.metrics().connections[0].requests == 3


async def test_closed_pool_refuses_work(factory) -> None:
    pool = ConnectionPool("api", factory)
    await pool.execute("request", 1)
    await pool.aclose()
    assert factory.made[0].closed
    with pytest.raises(PoolClosedError):
        await pool.execute("request", 2)


def test_bad_config_is_named() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        PoolConfig(min_connections=5, max_connections=2)
