"""The Nobitex adapter passes the exchange conformance kit (``hrkernel.testing``) against the
simulator over real HTTP, one test per contract rule, with the simulator's fault points."""

from __future__ import annotations

from typing import Any

import pytest

from hrkernel.testing import RULES, ConformanceOptions, run_conformance
from hrkernel_nobitex.config import NobitexConfig
from hrkernel_nobitex.exchange import NobitexExchange
from hrkernel_sim.faultpoints import SimFaultPoints

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SIM_TOKEN = "contract-token-0001"


@pytest.mark.parametrize("rule", list(RULES))
async def test_nobitex_keeps_the_exchange_contract(sim: Any, rule: str) -> None:
    async def make() -> NobitexExchange:
        return NobitexExchange(NobitexConfig(token=SIM_TOKEN, base_url=sim.base_url, bot_name="kit"))

    options = ConformanceOptions(symbol="BTCIRT", faults=SimFaultPoints(sim), visibility_window=2.0)
    report = await run_conformance(make, options, only=[rule])
    report.raise_for_failures()
    assert [r.outcome for r in report.results] == ["passed"], report.summary()
