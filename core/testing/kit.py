"""Running the conformance rules: options, fault points, the report."""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

import anyio

from hrkernel.errors import HrkernelError
from hrkernel.exchange import Exchange
from hrkernel.exchange.shapes import result_problems

Factory = Callable[[], Awaitable[Any]]
Operation = Literal["place_order", "cancel_order", "balances", "order_book"]


class FaultPoints(Protocol):
    """How the kit injects faults into the venue behind the exchange (e.g. a simulator's admin
    API). Each is an async context manager: the fault holds while inside and is gone after."""

    def answer_lost(self, operation: Operation) -> AbstractAsyncContextManager[None]:
        """The next request of ``operation`` is *executed* by the venue, then its answer is lost
        (connection dropped)."""
        ...

    def unavailable(self, operation: Operation) -> AbstractAsyncContextManager[None]:
        """Every request of ``operation`` is answered as unavailable (HTTP 503) and not executed."""
        ...


@dataclass(frozen=True)
class ConformanceOptions:
    symbol: str
    """A market the account can trade, with liquidity on both sides of its book."""
    faults: FaultPoints | None = None
    """Fault injection; rules that need it are skipped without it."""
    visibility_window: float = 5.0
    """Seconds within which an order the exchange accepted must be visible to every read
    (``get_order``, ``list_open_orders``, ``find_order_by_client_id``). Within it, "not found"
    means "not yet"; after it, "never placed"."""
    notional_factor: Decimal = Decimal(3)
    """The kit's orders are this many times the market's minimum notional."""
    client_id_prefix: str = "kit"
    """Client order ids the kit uses start with this (keep them apart from real ones)."""


@dataclass
class RuleResult:
    rule: str
    outcome: Literal["passed", "failed", "skipped"]
    detail: str = ""


class ConformanceError(HrkernelError):
    """Raised by :meth:`ConformanceReport.raise_for_failures`; lists every failed rule."""


@dataclass
class ConformanceReport:
    results: list[RuleResult] = field(default_factory=list)

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if r.outcome == "failed"]

    @property
    def skipped(self) -> list[RuleResult]:
        return [r for r in self.results if r.outcome == "skipped"]

    def raise_for_failures(self) -> None:
        if self.failed:
            lines = "\n".join(f"- {r.rule}: {r.detail}" for r in self.failed)
            raise ConformanceError(f"{len(self.failed)} exchange contract rule(s) failed:\n{lines}")

    def summary(self) -> str:
        return ", ".join(f"{r.rule}={r.outcome}" for r in self.results)


class Skip(Exception):
    """A rule cannot run with these options (e.g. no fault points)."""


class RuleFailed(AssertionError):
    """A rule's expectation did not hold; the message says which and how."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise RuleFailed(message)


def shape(method: str, value: Any) -> Any:
    """``value`` as returned by ``method``, after checking it against the contract's types."""
    problems = result_problems(method, value)
    expect(not problems, "; ".join(problems))
    return value


class Session:
    """One started exchange, what a rule needs around it, and the helpers rules share."""

    def __init__(self, exchange: Exchange, options: ConformanceOptions, rule: str) -> None:
        self.exchange = exchange
        self.options = options
        self.rule = rule
        self._ids = 0

    def client_id(self) -> str:
        # Short (Nobitex allows 32) and unique across runs against the same account.
        self._ids += 1
        initials = "".join(w[0] for w in self.rule.split("_"))[:6]
        return f"{self.options.client_id_prefix}-{initials}-{secrets.token_hex(4)}-{self._ids}"[:32]

    async def eventually(self, probe: Callable[[], Awaitable[Any]], accept: Callable[[Any], bool],
                         what: str) -> Any:
        """Call ``probe`` until ``accept(result)`` holds or the visibility window passes."""
        last: Any = None
        with anyio.move_on_after(max(0.0, self.options.visibility_window)):
            while True:
                last = await probe()
                if accept(last):
                    return last
                await anyio.sleep(0.05)
        last = await probe()
        expect(accept(last), f"{what} (within {self.options.visibility_window}s); last seen: {last!r}")
        return last


Rule = Callable[[Session], Awaitable[None]]


async def run_conformance(factory: Factory, options: ConformanceOptions, *,
                          only: Sequence[str] | None = None) -> ConformanceReport:
    """Run every rule (or those named in ``only``) against a new exchange each, and report.

    An unexpected exception inside a rule fails that rule (with its type and message), it does
    not stop the run. ``factory`` must return an unstarted exchange; the kit starts it (with a
    task group if its ``start`` takes one) and closes it after the rule.
    """
    from hrkernel.testing.rules import RULES

    unknown = [name for name in only or () if name not in RULES]
    if unknown:
        raise ValueError(f"unknown conformance rule(s) {unknown}; the rules are {list(RULES)}")
    report = ConformanceReport()
    for name, rule in RULES.items():
        if only is not None and name not in only:
            continue
        report.results.append(await _run_one(name, rule, factory, options))
    return report


async def _run_one(name: str, rule: Rule, factory: Factory, options: ConformanceOptions) -> RuleResult:
    result = RuleResult(name, "passed")
    async with anyio.create_task_group() as tg:
        # Caught inside the group: anyio would wrap anything escaping it in an ExceptionGroup.
        try:
            exchange = await factory()
            await _start(exchange, tg)
            try:
                await rule(Session(exchange, options, name))
            finally:
                await exchange.aclose()
        except Skip as exc:
            result = RuleResult(name, "skipped", str(exc))
        except RuleFailed as exc:
            result = RuleResult(name, "failed", str(exc))
        except Exception as exc:  # the exchange under test may raise anything: that is the finding
            result = RuleResult(name, "failed", f"{type(exc).__name__}: {exc}")
        tg.cancel_scope.cancel()
    return result


async def _start(exchange: Any, tg: Any) -> None:
    start = exchange.start
    result = start(tg) if inspect.signature(start).parameters else start()
    if inspect.isawaitable(result):
        await result
