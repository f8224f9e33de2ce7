"""The kernel's wrapper around every configured exchange: resilience per endpoint group, and the
contract enforced at run time.

Plugins implement :class:`~hrkernel.exchange.Exchange`; the kernel does not trust them to bring
breakers, timeouts and retries of their own, nor to return the contract's types. Between the
plugin and everything that calls it (pipeline, reconciliation, dashboard) sits a
:class:`GuardedExchange`:

- **Endpoint groups.** Market data (``markets``, ``market``, ``order_book``, ``recent_trades``,
  ``market_stats``, ``ping``), account reads (``get_order``, ``find_order_by_client_id``,
  ``list_open_orders``, ``order_fills``, ``recent_fills``, ``balances``) and trading
  (``place_order``, ``cancel_order``) each have their own circuit breaker
  (``exchange:<id>:<group>``), timeout and, for reads only, retry policy: a failing public
  order book never refuses balances, placements or cancels.
- **Trading is never retried**, and a placement or cancel that times out raises
  ``UnknownOutcomeError`` (it may have reached the exchange): the pipeline looks it up.
- **The contract, at run time.** A value of the wrong type, or an exception that is not an
  ``ExchangeError``, raises ``ContractViolationError`` (``UnknownOutcomeError`` for trading) and a
  critical alert naming the plugin (once per method until that method behaves again).
- **Adapters that bring their own** resilience (``brings_own_resilience = True``, as the Nobitex
  adapter does) keep it: the wrapper then adds only the contract checks. ``[exchanges.<id>.resilience]``
  ``mode`` overrides either way.

Internal to the kernel (built by the kernel assembly); plugins never import it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any, Literal, NoReturn

import anyio
import msgspec
import structlog

from hrkernel.exchange import errors as ex
from hrkernel.exchange.shapes import result_problems
from hrkernel.resilience import CircuitBreaker, CircuitOpenError, RetryPolicy
from hrkernel.types import ConfigStruct, Duration

log = structlog.get_logger("hrkernel.exchange")

Group = Literal["market_data", "account", "trading"]
GROUPS: tuple[Group, ...] = ("market_data", "account", "trading")
GROUP_OF: dict[str, Group] = {
    "markets": "market_data", "market": "market_data", "order_book": "market_data",
    "recent_trades": "market_data", "market_stats": "market_data", "ping": "market_data",
    "get_order": "account", "find_order_by_client_id": "account", "list_open_orders": "account",
    "order_fills": "account", "recent_fills": "account", "balances": "account",
    "place_order": "trading", "cancel_order": "trading",
}

Breach = Callable[[str, str], Awaitable[None]]
"""``breach(method, problem)``: told when the plugin broke the contract (the kernel alerts)."""


class GroupPolicy(ConfigStruct, kw_only=True):
    """Resilience of one endpoint group of one exchange."""

    timeout: Duration = Duration(15.0)
    """A call taking longer is abandoned: a read as ``ExchangeTimeoutError``, a trade as
    ``UnknownOutcomeError``."""
    failure_threshold: int = 5
    """Consecutive failures (outages, timeouts; never refusals) that open the group's breaker."""
    reset_timeout: Duration = Duration(30.0)
    """How long the open breaker refuses calls before trying again."""
    retry_attempts: int = 3
    """Attempts of a read that failed retryably (ignored for trading: never retried)."""

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.retry_attempts < 1:
            raise ValueError("failure_threshold and retry_attempts must be >= 1")


class ExchangeResilience(ConfigStruct, kw_only=True):
    """``[exchanges.<id>.resilience]``: the kernel's layer around that exchange."""

    mode: Literal["auto", "kernel", "adapter"] = "auto"
    """``auto``: the kernel's breakers, timeouts and retries unless the adapter says it brings
    its own (``brings_own_resilience = True``); ``kernel``: always the kernel's; ``adapter``:
    never (the run-time contract checks stay)."""
    market_data: GroupPolicy = msgspec.field(default_factory=GroupPolicy)
    account: GroupPolicy = msgspec.field(default_factory=GroupPolicy)
    trading: GroupPolicy = msgspec.field(default_factory=GroupPolicy)


_RANK = {"open": 0, "half_open": 1, "closed": 2}


class GuardedExchange:
    """See the module docstring. Behaves as the exchange it wraps; anything beyond the contract
    (``cancel_all``, ``describe``, ``limits``...) is the wrapped object's."""

    def __init__(self, inner: Any, *, exchange_id: str, plugin: str, config: ExchangeResilience | None = None,
                 breach: Breach | None = None, clock: Callable[[], float] = monotonic,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
        self.inner = inner
        self.exchange_id = exchange_id
        self.plugin = plugin
        self.config = config or ExchangeResilience()
        self.breach = breach
        own = bool(getattr(inner, "brings_own_resilience", False))
        self.guarded = self.config.mode == "kernel" or (self.config.mode == "auto" and not own)
        self.policies: dict[Group, GroupPolicy] = {g: getattr(self.config, g) for g in GROUPS}
        self.breakers: dict[Group, CircuitBreaker] = {}
        self.retries: dict[Group, RetryPolicy] = {}
        if self.guarded:
            for group, policy in self.policies.items():
                self.breakers[group] = CircuitBreaker(
                    f"exchange:{exchange_id}:{group}", failure_threshold=policy.failure_threshold,
                    reset_timeout=float(policy.reset_timeout), is_failure=_counts, clock=clock)
                self.retries[group] = RetryPolicy(
                    f"exchange:{exchange_id}:{group}", max_attempts=1 if group == "trading" else policy.retry_attempts,
                    retryable=_retryable, sleep=sleep, clock=clock)
        self._breached: set[str] = set()
        self.adapter_breakers: list[Any] = []

    # ------------------------------------------------------------------ identity and lifecycle

    @property
    def name(self) -> str:
        return str(getattr(self.inner, "name", self.exchange_id))

    @property
    def breaker(self) -> Any:
        """The breaker in the worst state (the health check ``exchange:<id>:breaker`` and the
        dashboard show it): the kernel's group breakers, or the adapter's own."""
        if not self.guarded:
            return getattr(self.inner, "breaker", None)
        return min(self.breakers.values(), key=lambda b: _RANK.get(b.state.value, 2))

    async def start(self, tg: Any = None) -> None:
        start = getattr(self.inner, "start", None)
        if start is None:
            return
        import inspect

        result = start(tg) if inspect.signature(start).parameters else start()
        if inspect.isawaitable(result):
            await result
        if not self.guarded:
            # The adapter's own breakers, one level up, where the dashboard's walk of the
            # component finds them (an embedded adapter builds them only now, at start).
            own = getattr(self.inner, "breakers", None)
            self.adapter_breakers = list(own.values()) if isinstance(own, dict) else [
                b for b in (getattr(self.inner, "breaker", None),) if b is not None]

    async def aclose(self) -> None:
        for method in ("aclose", "stop"):
            fn = getattr(self.inner, method, None)
            if fn is not None:
                result = fn()
                if hasattr(result, "__await__"):
                    await result
                return

    def describe(self) -> dict[str, Any]:
        inner = getattr(self.inner, "describe", None)
        out: dict[str, Any] = dict(inner()) if callable(inner) else {}
        out["resilience"] = ({g: b.state.value for g, b in self.breakers.items()} if self.guarded
                             else "adapter's own")
        return out

    def __getattr__(self, name: str) -> Any:
        # Only reached for what this class does not define: the adapter's extras.
        return getattr(self.__dict__["inner"], name)

    # ------------------------------------------------------------------ the contract

    async def ping(self) -> Any:
        return await self._call("ping")

    async def markets(self) -> Any:
        return await self._call("markets")

    async def market(self, symbol: str) -> Any:
        return await self._call("market", symbol)

    async def order_book(self, symbol: str) -> Any:
        return await self._call("order_book", symbol)

    async def recent_trades(self, symbol: str) -> Any:
        return await self._call("recent_trades", symbol)

    async def market_stats(self, symbol: str) -> Any:
        return await self._call("market_stats", symbol)

    async def get_order(self, *, exchange_id: str | None = None, client_order_id: str | None = None) -> Any:
        return await self._call("get_order", exchange_id=exchange_id, client_order_id=client_order_id)

    async def find_order_by_client_id(self, client_order_id: str, *, symbol: str | None = None) -> Any:
        return await self._call("find_order_by_client_id", client_order_id, symbol=symbol)

    async def list_open_orders(self, symbol: str | None = None) -> Any:
        return await self._call("list_open_orders", symbol)

    async def order_fills(self, order: Any) -> Any:
        return await self._call("order_fills", order)

    async def recent_fills(self, symbol: str | None = None) -> Any:
        return await self._call("recent_fills", symbol)

    async def balances(self) -> Any:
        return await self._call("balances")

    async def place_order(self, request: Any, *, fencing_token: int | None = None) -> Any:
        return await self._call("place_order", request, fencing_token=fencing_token,
                                _cid=getattr(request, "client_order_id", None))

    async def cancel_order(self, *, exchange_id: str | None = None, client_order_id: str | None = None,
                           fencing_token: int | None = None) -> Any:
        return await self._call("cancel_order", exchange_id=exchange_id, client_order_id=client_order_id,
                                fencing_token=fencing_token, _cid=client_order_id)

    # ------------------------------------------------------------------ the layer

    async def _call(self, method: str, *args: Any, _cid: str | None = None, **kwargs: Any) -> Any:
        group = GROUP_OF[method]
        if self.guarded:
            value = await self.retries[group].call(self._attempt, group, method, args, kwargs, _cid)
        else:
            value = await self._invoke(method, args, kwargs, _cid)
        problems = result_problems(method, value)
        if problems:
            await self._violation(method, f"{method}() returned the wrong type: {'; '.join(problems)}", _cid)
        self._breached.discard(method)
        return value

    async def _attempt(self, group: Group, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                       cid: str | None) -> Any:
        try:
            return await self.breakers[group].call(self._timed, group, method, args, kwargs, cid)
        except CircuitOpenError as exc:
            # Nothing was sent: for a trade that is a certainty the pipeline can act on.
            err = ex.ExchangeUnavailableError(
                f"the kernel's {group} circuit breaker is open (next trial in {exc.retry_after:.1f}s); "
                "nothing was sent", exchange=self.exchange_id, endpoint=method)
            err.retryable = False
            raise err from exc

    async def _timed(self, group: Group, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                     cid: str | None) -> Any:
        timeout = float(self.policies[group].timeout)
        try:
            with anyio.fail_after(timeout):
                return await self._invoke(method, args, kwargs, cid)
        except TimeoutError:
            if group == "trading":
                raise ex.UnknownOutcomeError(
                    f"{method}() took longer than {timeout:g}s and was abandoned; it may have reached the "
                    "exchange", exchange=self.exchange_id, endpoint=method, client_order_id=cid) from None
            raise ex.ExchangeTimeoutError(f"{method}() took longer than {timeout:g}s",
                                          exchange=self.exchange_id, endpoint=method) from None

    async def _invoke(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], cid: str | None) -> Any:
        try:
            return await getattr(self.inner, method)(*args, **kwargs)
        except (ex.ExchangeError, anyio.get_cancelled_exc_class()):
            raise
        except Exception as exc:  # the plugin's bug (a TypeError, a KeyError...): name it loudly
            await self._violation(method, f"{method}() raised {type(exc).__name__}: {exc} "
                                  "(exchange plugins raise only hrkernel.exchange.errors types)", cid, exc)

    async def _violation(self, method: str, problem: str, cid: str | None,
                         cause: BaseException | None = None) -> NoReturn:
        message = f"exchange plugin {self.plugin!r} ({self.exchange_id}) broke the contract: {problem}"
        if method not in self._breached:
            self._breached.add(method)
            log.critical("exchange_contract_violation", exchange=self.exchange_id, plugin=self.plugin,
                         method=method, problem=problem)
            if self.breach is not None:
                try:
                    await self.breach(method, message)
                except Exception as exc:  # the alert must not hide the violation itself
                    log.error("exchange_contract_alert_failed", exchange=self.exchange_id, error=repr(exc))
        if GROUP_OF[method] == "trading":
            raise ex.UnknownOutcomeError(message + "; its effect is unknown", exchange=self.exchange_id,
                                         endpoint=method, client_order_id=cid) from cause
        raise ex.ContractViolationError(message, exchange=self.exchange_id, endpoint=method) from cause


def _counts(exc: BaseException) -> bool:
    """What a group breaker records: outages and timeouts, never refusals or the plugin's bugs."""
    if isinstance(exc, ex.ContractViolationError):
        return False
    return not isinstance(exc, ex.ExchangeError) or exc.counts_as_failure


def _retryable(exc: BaseException) -> bool:
    if not isinstance(exc, ex.ExchangeError) or not exc.retryable:
        return False
    if isinstance(exc, ex.RateLimitedError):
        return exc.retry_after is not None and exc.retry_after <= 2.0
    return True
