"""hrkernel_chaos: the ``hrkernel chaos`` and ``hrkernel demo`` commands, a built-in plugin.

Scenario files, a runner that starts real processes (the simulator, a private redis-server,
kernels) and injects faults, and the invariant report (README: "Chaos testing and the demo").
It is a test harness for the kernel, shipped beside it and not inside it: the kernel never imports
it, and it drives the kernel only from outside (processes, HTTP, logs, documented fault points).

Importing this package is cheap (the plugin loader imports it on every CLI start); the names
below load their modules on first use. Everything but these names is internal.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hrkernel_chaos.runner import ChaosRun, Invariant, Report, run_scenario
    from hrkernel_chaos.scenario import (
        Expect,
        Fault,
        RandomFaults,
        Scenario,
        ScenarioError,
        load_scenario,
        parse_scenario,
    )

_WHERE = {
    "ChaosRun": "runner", "Invariant": "runner", "Report": "runner", "run_scenario": "runner",
    "Expect": "scenario", "Fault": "scenario", "RandomFaults": "scenario", "Scenario": "scenario",
    "ScenarioError": "scenario", "load_scenario": "scenario", "parse_scenario": "scenario",
}

__all__ = ["ChaosRun", "Expect", "Fault", "Invariant", "RandomFaults", "Report", "Scenario", "ScenarioError",
           "load_scenario", "parse_scenario", "run_scenario"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'hrkernel_chaos' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hrkernel_chaos.{module}"), name)
