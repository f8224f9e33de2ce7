"""The road every Nobitex request travels: guards, connection pool, httpx, error mapping.

Connections: the kernel's ``ConnectionPool`` holds up to ``max_connections`` httpx clients, each
limited to one TCP connection (so a pooled "connection" is one keep-alive socket). The pool picks
the least-loaded one, bounds the wait for a free one, and replaces a client whose requests fail
at the transport level (reset, timeout, protocol error): a wedged socket is thrown away instead of
being reused. Idle ones are pruned by the pool's maintenance task when the kernel hands
``start`` its task group.

Per request, in this order (all but the endpoint limits are the kernel's ``hrkernel.resilience``
primitives): reads are wrapped in a ``RetryPolicy`` (idempotent reads only; honours
``retry_after``); each attempt then passes the per-endpoint limits
(:class:`~hrkernel_nobitex.guards.EndpointLimits`: local counting plus the server's 429
``backOff``), the ``Bulkhead`` (a bound on requests in flight), the ``CircuitBreaker`` of the
endpoint's group (market data, account reads, trading: one failing group never refuses the
others; only timeouts, 5xx, dropped connections and garbage count; refusals such as ``SmallOrder`` or
``OverValueOrder`` do not), then the pool and httpx. State changes (placement, cancellation) are
never retried, and any answer that does not prove what happened (no answer, a 5xx, garbage)
becomes :class:`~hrkernel.exchange.errors.UnknownOutcomeError`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import httpx

from hrkernel.exchange import errors as ex
from hrkernel.resilience import (
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    ConnectionPool,
    PoolClosedError,
    PoolConfig,
    PoolError,
    RetryPolicy,
)
from hrkernel_nobitex import wire
from hrkernel_nobitex.config import DEFAULT_LIMITS, NobitexConfig
from hrkernel_nobitex.guards import EndpointLimits

if TYPE_CHECKING:
    from hrkernel_nobitex.budget import Budget

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# 429 without a usable backOff: Nobitex's limits are per minute or per 10 minutes; a minute is
# the shortest window, and ignoring a 429 costs a 2-minute block of the token.
DEFAULT_BACKOFF = 60.0


GROUPS = ("market_data", "account", "trading")
ENDPOINT_GROUPS = {
    "options": "market_data", "orderbook": "market_data", "trades": "market_data", "stats": "market_data",
    "status": "account", "list_orders": "account", "list_trades": "account", "wallets": "account",
    "place": "trading", "cancel": "trading", "cancel_old": "trading",
}
"""Which circuit breaker guards each endpoint (the kernel's groups: see ``hrkernel.exchange.guarded``)."""


def _is_breaker_failure(exc: BaseException) -> bool:
    return not isinstance(exc, ex.ExchangeError) or exc.counts_as_failure


class Transport:
    """Sends one Nobitex request and returns its decoded answer or a typed error."""

    def __init__(self, config: NobitexConfig, *, name: str, instance_id: str, log: Any, clock: Clock,
                 sleep: Sleep, rng: random.Random, budget: Budget | None = None) -> None:
        self.config = config
        self.name = name
        self.instance_id = instance_id
        self.log = log
        self.clock = clock
        self.sleep = sleep
        limits = dict(DEFAULT_LIMITS)
        for key, override in config.rate_limits.items():
            limits[key] = (override.requests, float(override.per))
        self.limits = EndpointLimits(limits, enabled=config.rate_limit, clock=clock, budget=budget, log=log)
        self.retry = RetryPolicy(
            f"exchange:{name}:reads",
            max_attempts=max(1, config.retry_attempts),
            initial_delay=float(config.retry_base_delay),
            max_delay=float(config.retry_max_delay),
            retryable=self._read_is_retryable,
            sleep=sleep,
            clock=clock,
            random=rng.random,
        )
        # One breaker per endpoint group: an outage of the public market-data endpoints (behind
        # their own cache layer at Nobitex) must not refuse balances, placements or cancels.
        self.breakers = {
            group: CircuitBreaker(
                f"exchange:{name}:{group}",
                failure_threshold=config.breaker_failure_threshold,
                reset_timeout=float(config.breaker_reset_timeout),
                is_failure=_is_breaker_failure,
                clock=clock,
            )
            for group in GROUPS
        }
        self.bulkhead = Bulkhead(f"exchange:{name}", max(1, config.max_concurrent),
                                 max_queue=config.bulkhead_queue, queue_timeout=float(config.bulkhead_wait))
        self.pool: ConnectionPool[httpx.AsyncClient] | None = None
        self._maintenance: anyio.CancelScope | None = None

    @property
    def breaker(self) -> CircuitBreaker:
        """The group breaker in the worst state (open, then half-open; the first group on a tie):
        one breaker to show where one is expected (the kernel's health check)."""
        rank = {"open": 0, "half_open": 1, "closed": 2}
        return min(self.breakers.values(), key=lambda b: rank.get(b.state.value, 2))

    # ------------------------------------------------------------------ lifecycle

    @property
    def started(self) -> bool:
        return self.pool is not None

    def _new_client(self) -> httpx.AsyncClient:
        cfg = self.config
        headers = {"User-Agent": f"TraderBot/{cfg.bot_name}", "Accept": "application/json"}
        if cfg.send_instance_headers and self.instance_id:
            headers["X-HR-Instance"] = self.instance_id
        return httpx.AsyncClient(
            base_url=cfg.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(float(cfg.timeout), connect=float(cfg.connect_timeout)),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            follow_redirects=False,
        )

    async def start(self, tg: Any = None) -> None:
        """Open the connection pool. ``tg`` (the kernel's task group, optional) runs the pool's
        idle pruning until :meth:`aclose`."""
        if self.pool is not None:
            return
        cfg = self.config
        self.pool = ConnectionPool(
            f"exchange:{self.name}",
            self._new_client,
            PoolConfig(min_connections=0, max_connections=max(1, cfg.max_connections),
                       connection_timeout=cfg.bulkhead_wait, idle_timeout=cfg.idle_timeout,
                       max_queue=cfg.bulkhead_queue, max_in_flight_per_connection=1),
            is_broken=lambda exc: isinstance(exc, httpx.TransportError),
            clock=self.clock,
        )
        if tg is not None:
            tg.start_soon(self._maintain)

    async def _maintain(self) -> None:
        pool = self.pool
        if pool is None:
            return
        with anyio.CancelScope() as scope:
            self._maintenance = scope
            await pool.run()

    async def aclose(self) -> None:
        pool, self.pool = self.pool, None
        if self._maintenance is not None:
            self._maintenance.cancel()
            self._maintenance = None
        if pool is not None:
            await pool.aclose()

    # ------------------------------------------------------------------ transport

    async def _send(
        self, endpoint: str, method: str, path: str, *, params: dict[str, Any] | None,
        json: dict[str, Any] | None, auth: bool, idempotent: bool, headers: dict[str, str] | None,
        client_order_id: str | None,
    ) -> tuple[int, bytes]:
        pool = self.pool
        if pool is None:
            raise ex.ExchangeError("exchange not started (call start() first)", exchange=wire.EXCHANGE, endpoint=endpoint)
        hdrs = dict(headers or {})
        if auth:
            if not self.config.token:
                raise ex.AuthenticationError(
                    "no token configured (set token = \"${NOBITEX_TOKEN}\")", exchange=wire.EXCHANGE, endpoint=endpoint
                )
            hdrs["Authorization"] = f"Token {self.config.token}"
        try:
            async with pool.acquire() as client:
                response = await client.request(method, path, params=params, json=json, headers=hdrs)
        except PoolClosedError:
            raise ex.ExchangeError("exchange closed", exchange=wire.EXCHANGE, endpoint=endpoint) from None
        except PoolError as exc:
            # No free connection in time: nothing was sent; local congestion, not an outage.
            raise ex.RateLimitedError(f"no free connection ({exc})", retry_after=None,
                                      exchange=wire.EXCHANGE, endpoint=endpoint) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached the exchange: safe to report as plain unavailability.
            kind = ex.ExchangeTimeoutError if isinstance(exc, httpx.TimeoutException) else ex.ExchangeUnavailableError
            raise kind(f"could not connect ({type(exc).__name__})", exchange=wire.EXCHANGE, endpoint=endpoint) from exc
        except httpx.HTTPError as exc:
            # The request was (maybe) sent and the answer lost: a read can be repeated, a
            # state change cannot.
            if not idempotent:
                raise ex.UnknownOutcomeError(
                    f"request sent but no answer ({type(exc).__name__}); the outcome is unknown",
                    exchange=wire.EXCHANGE, endpoint=endpoint, client_order_id=client_order_id,
                ) from exc
            kind = ex.ExchangeTimeoutError if isinstance(exc, httpx.TimeoutException) else ex.ExchangeUnavailableError
            raise kind(f"no answer ({type(exc).__name__})", exchange=wire.EXCHANGE, endpoint=endpoint) from exc
        body = response.content
        error = wire.error_for(response.status_code, body, endpoint, response.headers.get("retry-after"))
        if error is not None:
            if isinstance(error, ex.RateLimitedError):
                await self.limits.back_off_shared(
                    endpoint, error.retry_after if error.retry_after is not None else DEFAULT_BACKOFF)
            if not idempotent and isinstance(error, ex.ExchangeUnavailableError):
                # A 5xx or garbage answer to a state change proves nothing: a gateway (Cloudflare
                # in front of Nobitex) can fail after the origin executed the request.
                raise self._unknown(error, client_order_id) from error
            raise error
        return response.status_code, body

    @staticmethod
    def _breaker_open(name: str, retry_after: float, endpoint: str) -> ex.ExchangeUnavailableError:
        err = ex.ExchangeUnavailableError(
            f"circuit breaker {name!r} open (next trial in {retry_after:.1f}s)",
            exchange=wire.EXCHANGE, endpoint=endpoint,
        )
        err.retryable = False
        return err

    @staticmethod
    def _unknown(error: ex.ExchangeError, client_order_id: str | None) -> ex.UnknownOutcomeError:
        return ex.UnknownOutcomeError(
            f"{type(error).__name__} answering a state change; it may or may not have been executed",
            exchange=wire.EXCHANGE, endpoint=error.endpoint, code=error.code,
            exchange_message=error.exchange_message, status=error.status, raw=error.raw,
            client_order_id=client_order_id,
        )

    async def _attempt(self, endpoint: str, method: str, path: str, **kw: Any) -> tuple[int, bytes]:
        breaker = self.breakers[ENDPOINT_GROUPS.get(endpoint, "account")]
        if not breaker.admits():
            # Refused before a rate slot is taken: a call the breaker will not let out (open, or
            # half-open with its trial slots taken) must not spend the token's budget (look-ups
            # retried against an open breaker used it all up and then waited ~50 s for slots
            # once the exchange was back: the chaos demo).
            raise self._breaker_open(breaker.name, max(0.0, breaker.next_attempt_at - self.clock()), endpoint)
        waited = 0.0
        while (wait := await self.limits.take(endpoint)) > 0:
            # No slot under the token's budget (this process's sends, or with a shared budget
            # every process's, or a 429's backOff): wait for it, or refuse before sending.
            if waited + wait > float(self.config.rate_limit_max_wait):
                raise ex.RateLimitedError(
                    f"local rate limit for {endpoint!r} (Nobitex's documented limit); next slot in {wait:.1f}s",
                    retry_after=wait, sent=False, exchange=wire.EXCHANGE, endpoint=endpoint,
                )
            waited += wait
            await self.sleep(wait)
        try:
            await self.bulkhead.acquire()
        except BulkheadFullError as exc:
            raise ex.RateLimitedError(
                f"too many requests in flight ({exc})", retry_after=None, exchange=wire.EXCHANGE, endpoint=endpoint,
            ) from exc
        try:
            # The slot was taken above (take() reserves it, locally or in the shared budget).
            return await breaker.call(self._send, endpoint, method, path, **kw)
        except CircuitOpenError as exc:
            raise self._breaker_open(exc.name, exc.retry_after, endpoint) from exc
        finally:
            self.bulkhead.release()

    def _read_is_retryable(self, exc: BaseException) -> bool:
        """Reads only (placement/cancel never reach the policy). A 429 is waited out only when
        its ``backOff`` is short; a refusal is an answer, never retried."""
        if not isinstance(exc, ex.ExchangeError) or not exc.retryable:
            return False
        if isinstance(exc, ex.RateLimitedError):
            return exc.retry_after is not None and exc.retry_after <= float(self.config.rate_limit_max_wait)
        return True

    async def call(
        self, endpoint: str, method: str, path: str, kind: type[T], *, params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None, auth: bool = True, idempotent: bool = True,
        headers: dict[str, str] | None = None, client_order_id: str | None = None,
    ) -> T:
        async def once() -> T:
            status, body = await self._attempt(
                endpoint, method, path, params=params, json=json, auth=auth, idempotent=idempotent,
                headers=headers, client_order_id=client_order_id,
            )
            try:
                return wire.decode(body, kind, endpoint, status)
            except ex.MalformedResponseError as exc:
                if idempotent:
                    raise
                raise self._unknown(exc, client_order_id) from exc

        if not idempotent:
            return await once()  # never retried: see UnknownOutcomeError
        return await self.retry.call(once)
