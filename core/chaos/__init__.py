"""hrkernel.chaos: scenario files, a runner that starts real processes and injects faults, and the
invariant report (README: "Chaos testing and the demo")."""

from hrkernel.chaos.runner import ChaosRun, Invariant, Report, run_scenario
from hrkernel.chaos.scenario import (
           Expect,
           Fault,
           RandomFaults,
           Scenario,
           ScenarioError,
           load_scenario,
           parse_scenario,
)

__all__ = ["ChaosRun", "Expect", "Fault", "Invariant", "RandomFaults", "Report", "Scenario", "ScenarioError",
           "load_scenario", "parse_scenario", "run_scenario"]
