"""hrkernel.testing: the conformance kit for exchange plugins (public API).

An exchange plugin proves it keeps the contract the kernel's order pipeline, ledger and
reconciliation rely on by running the kit in its own tests, against its exchange (a sandbox, a
simulator, or an in-memory fake)::

    from hrkernel.testing import ConformanceOptions, run_conformance

    async def test_my_exchange_keeps_the_contract():
        report = await run_conformance(make_exchange, ConformanceOptions(symbol="BTCUSDT"))
        report.raise_for_failures()

or one pytest test per rule (names in :data:`RULES`)::

    @pytest.mark.parametrize("rule", RULES)
    async def test_contract(rule):
        (await run_conformance(make_exchange, options, only=[rule])).raise_for_failures()

``make_exchange`` is an async factory returning a new, *unstarted* exchange; the kit starts and
closes one per rule. Rules that need a fault injected (an answer lost after the exchange acted,
an endpoint unavailable) use ``options.faults`` and are *skipped* (never passed) without it.
See :mod:`hrkernel.testing.rules` for what each rule checks and why the kernel depends on it.
"""

from hrkernel.testing.kit import (
    ConformanceError,
    ConformanceOptions,
    ConformanceReport,
    FaultPoints,
    RuleResult,
    run_conformance,
)
from hrkernel.testing.rules import RULES

__all__ = [
    "RULES",
    "ConformanceError",
    "ConformanceOptions",
    "ConformanceReport",
    "FaultPoints",
    "RuleResult",
    "run_conformance",
]
