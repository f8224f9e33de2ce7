"""The conformance kit catches the faults it exists for: each broken variant of the Nobitex
adapter below fails exactly the rules about its fault (against the simulator over real HTTP),
and rules needing fault injection are skipped, never passed, without it."""

from __future__ import annotations

from typing import Any

import pytest

from hrkernel.exchange import Balance, Order
from hrkernel.exchange import errors as ex
from hrkernel.testing import RULES, ConformanceError, ConformanceOptions, run_conformance
from hrkernel_nobitex.config import NobitexConfig
from hrkernel_nobitex.exchange import NobitexExchange
from hrkernel_sim.faultpoints import SimFaultPoints

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SIM_TOKEN = "contract-token-0001"


class FloatBalances(NobitexExchange):
    async def balances(self) -> list[Balance]:
        return [Balance(currency=b.currency, total=b.total, available=float(b.available),  # type: ignore[arg-type]
                        blocked=b.blocked) for b in await super().balances()]


class OpenOnlyLookup(NobitexExchange):
    """Looks client order ids up only among open orders (Nobitex's status endpoint)."""

    async def find_order_by_client_id(self, client_order_id: str, *, symbol: str | None = None,
                                      pages: int = 3) -> Order | None:
        try:
            return await self.get_order(client_order_id=client_order_id)
        except ex.OrderNotFoundError:
            return None


class ForgetsUncertainty(NobitexExchange):
    """Reports a lost placement answer as a plain outage: the pipeline would place again."""

    async def place_order(self, request: Any, *, fencing_token: int | None = None) -> Order:
        try:
            return await super().place_order(request, fencing_token=fencing_token)
        except ex.UnknownOutcomeError as exc:
            raise ex.ExchangeUnavailableError(f"lost: {exc}") from exc


class DoubleFills(NobitexExchange):
    async def order_fills(self, order: Order) -> list[Any]:
        fills = await super().order_fills(order)
        return fills + fills[:1]


def factory(kind: type[NobitexExchange], sim: Any) -> Any:
    async def make() -> NobitexExchange:
        return kind(NobitexConfig(token=SIM_TOKEN, base_url=sim.base_url, bot_name="kit"))
    return make


@pytest.mark.parametrize(("kind", "rule", "says"), [
    (FloatBalances, "shapes_and_decimal_amounts", "balances()[0].available: expected Decimal"),
    (OpenOnlyLookup, "cancelled_orders_stay_findable", "find_order_by_client_id() finds the cancelled order"),
    (OpenOnlyLookup, "fills_fees_and_balances_agree", "finds the filled order"),
    (ForgetsUncertainty, "lost_placement_answer_is_resolved_by_client_id", "raised ExchangeUnavailableError"),
    (DoubleFills, "fills_fees_and_balances_agree", "order_fills() adds up to the filled amount"),
])
async def test_a_broken_exchange_fails_the_rule_about_its_fault(sim, kind, rule, says):
    options = ConformanceOptions(symbol="BTCIRT", faults=SimFaultPoints(sim), visibility_window=0.5)
    report = await run_conformance(factory(kind, sim), options, only=[rule])
    [result] = report.results
    assert result.outcome == "failed" and says in result.detail, result
    with pytest.raises(ConformanceError, match=rule):
        report.raise_for_failures()
    # The same rule passes for the adapter itself (the fault is the subclass's, not the venue's).
    assert (await run_conformance(factory(NobitexExchange, sim), options, only=[rule])).failed == []


async def test_rules_needing_faults_are_skipped_without_fault_points(sim):
    report = await run_conformance(factory(NobitexExchange, sim), ConformanceOptions(symbol="BTCIRT"),
                                   only=["lost_placement_answer_is_resolved_by_client_id",
                                         "unavailable_reads_count_as_failures", "not_found_means_never_placed"])
    assert [(r.rule, r.outcome) for r in report.results] == [
            ("not_found_means_never_placed", "passed"),
            ("lost_placement_answer_is_resolved_by_client_id", "skipped"),
            ("unavailable_reads_count_as_failures", "skipped")]
    assert all("faults" in r.detail for r in report.skipped)
    report.raise_for_failures()  # skipped is not failed


async def test_an_exception_inside_a_rule_fails_only_that_rule(sim):
    class Exploding(NobitexExchange):
        async def market(self, symbol: str) -> Any:
            raise KeyError("boom")

    report = await run_conformance(factory(Exploding, sim), ConformanceOptions(symbol="BTCIRT"),
                                   only=["unknown_market_is_an_invalid_order", "not_found_means_never_placed"])
    outcome = {r.rule: (r.outcome, r.detail) for r in report.results}
    assert outcome["unknown_market_is_an_invalid_order"] == ("failed", "KeyError: 'boom'")
    assert outcome["not_found_means_never_placed"][0] == "passed"


def test_unknown_rule_names_are_refused():
    import anyio

    async def nothing() -> Any:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="no_such_rule"):
        anyio.run(lambda: run_conformance(nothing, ConformanceOptions(symbol="X"), only=["no_such_rule"]))
    assert len(RULES) >= 12 and all(fn.__doc__ for fn in RULES.values())
