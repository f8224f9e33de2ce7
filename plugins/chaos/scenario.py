"""Chaos scenarios: TOML files that say which processes to start, which signals to send and which
faults to inject when. Loaded into msgspec structs; every bad key is reported with its path."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

import msgspec

FaultKind = Literal[
    "sim_script",     # force `fault` on the next `count` requests of `endpoint` (simulator admin)
    "sim_errors",     # every request of `endpoint` fails with `fault` at `rate` for `duration` s
    "sim_latency",    # add `latency` s to every request for `duration` s
    "sim_down",       # 503 on every endpoint for `duration` s (exchange downtime)
    "kill_leader",    # SIGKILL the current leader (it is not restarted unless `restart`)
    "pause_leader",   # SIGSTOP the leader for `duration` s, then SIGCONT
    "redis_restart",  # stop the private redis-server, keep it down `duration` s, start it again
    "redis_cut",      # cut the TCP path to Redis (`mode` rst | blackhole) of `target` kernels for `duration` s
    "feed_stale",     # the simulator's market data for `symbol` goes silent for `duration` s
    "duckdb_readonly",  # the `target` kernel's data dir (its DuckDB files) read-only for `duration` s
]

REDIS_CUT_MODES = ("rst", "blackhole")
TARGETS = ("leader", "standby", "all")


class Expect(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An alert a fault must produce: delivered by a kernel to the run's alert receiver (a webhook
    channel), raised within ``within`` seconds of the fault (or already firing when it hit)."""

    source: str
    title: str
    """A regular expression searched in the alert's title."""
    level: Literal["info", "warning", "error", "critical"] = "info"
    """The lowest level that counts."""
    check: str = ""
    """For health alerts: a regular expression the check's name (the alert's ``check`` context)
    must match in full, e.g. ``exchange:.*``."""
    instance: Literal["any", "faulted", "other"] = "any"
    """Which kernel must raise it: any, the one the fault hit (the leader it killed, froze or cut
    off, the one whose disk it made read-only), or another one."""
    within: float = 30.0

SIM_FAULTS = ("error_500", "error_502", "error_503", "error_429", "hang", "drop_after_accept")


class Fault(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One fault, injected right before signal number ``at`` (1-based) is sent."""

    at: int
    kind: FaultKind
    endpoint: str = "orders_add"
    fault: str = "error_500"
    count: int = 1
    rate: float = 1.0
    duration: float = 3.0
    latency: float = 0.5
    restart: bool = False
    mode: str = ""
    """redis_cut: ``rst`` (every connection reset, new ones refused; the default) or ``blackhole``
    (connections stay open, nothing is forwarded until the cut ends)."""
    target: str = ""
    """redis_cut: ``all`` (default) | ``leader`` | ``standby``; duckdb_readonly: ``leader``
    (default) | ``standby`` | ``all``."""
    symbol: str = ""
    """feed_stale: the market whose data goes silent (default: the scenario's symbol)."""
    expect: list[Expect] | None = None
    """The alerts this fault must produce; ``[]`` declares that it legitimately produces none;
    unset: the kind's default (README: "The alert invariant")."""


class RandomFaults(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Before each signal, with probability ``rate`` (from the scenario's seed), one scripted
    simulator fault drawn from ``kinds`` hits the next 1..``max_count`` requests of ``endpoints``."""

    rate: float = 0.0
    kinds: list[str] = msgspec.field(default_factory=lambda: ["error_500", "error_503", "error_429", "drop_after_accept"])
    endpoints: list[str] = msgspec.field(default_factory=lambda: ["orders_add", "orders_status"])
    max_count: int = 2


class Scenario(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    description: str = ""
    seed: int = 1
    kernels: int = 1
    """1: a single kernel (HA backend local); 2+: active/passive on a private redis-server."""
    bus: Literal["auto", "memory", "redis"] = "auto"
    """The kernels' message bus; auto: a Redis Streams bus on the private Redis when kernels > 1."""
    deliver: Literal["leader", "all"] = "leader"
    """leader: each signal goes to the kernel that leads; all: to every live kernel (each intake
    accepts it; with the Redis bus both copies land in one stream and the journal dedupes)."""
    signals: int = 20
    interval: float = 0.2
    """Seconds between signals."""
    symbol: str = "BTCIRT"
    amount: str = "0.001"
    settle: float = 45.0
    """Seconds to wait after the last signal for every order to settle and the ledger to match."""
    startup_timeout: float = 60.0
    failover_timeout: float = 30.0
    faults: list[Fault] = msgspec.field(default_factory=list)
    random: RandomFaults = msgspec.field(default_factory=RandomFaults)
    feed: bool = False
    """Give the kernels a market-data source polling the simulator (always on when a
    ``feed_stale`` fault is scheduled)."""
    expected_errors: list[str] = msgspec.field(default_factory=list)
    """Extra log event names that may appear at level error without failing the log invariant."""


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the key."""


def parse_scenario(data: dict[str, object], source: str = "<scenario>") -> Scenario:
    try:
        scenario = msgspec.convert(data, Scenario)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    problems = []
    if scenario.kernels < 1:
        problems.append("kernels: must be at least 1")
    if scenario.signals < 1:
        problems.append("signals: must be at least 1")
    for i, fault in enumerate(scenario.faults):
        where = f"faults[{i}]"
        if not 1 <= fault.at <= scenario.signals:
            problems.append(f"{where}.at: {fault.at} is not between 1 and signals ({scenario.signals})")
        if fault.kind in ("sim_script", "sim_errors") and fault.fault not in SIM_FAULTS:
            problems.append(f"{where}.fault: {fault.fault!r} is not one of {', '.join(SIM_FAULTS)}")
        if fault.kind in ("kill_leader", "pause_leader", "redis_restart") and scenario.kernels < 2 and fault.kind != "pause_leader":
            if fault.kind == "kill_leader" and not fault.restart:
                problems.append(f"{where}.kind: kill_leader with one kernel needs restart = true")
            if fault.kind == "redis_restart":
                problems.append(f"{where}.kind: redis_restart needs kernels >= 2 (a private Redis)")
        if fault.kind == "redis_cut" and scenario.kernels < 2:
            problems.append(f"{where}.kind: redis_cut needs kernels >= 2 (a private Redis)")
        if fault.kind == "redis_cut" and fault.mode not in ("", *REDIS_CUT_MODES):
            problems.append(f"{where}.mode: {fault.mode!r} is not one of {', '.join(REDIS_CUT_MODES)}")
        if fault.kind in ("redis_cut", "duckdb_readonly") and fault.target not in ("", *TARGETS):
            problems.append(f"{where}.target: {fault.target!r} is not one of {', '.join(TARGETS)}")
        if fault.target == "standby" and scenario.kernels < 2:
            problems.append(f"{where}.target: standby needs kernels >= 2")
        for j, expect in enumerate(fault.expect or []):
            try:
                re.compile(expect.title)
            except re.error as exc:
                problems.append(f"{where}.expect[{j}].title: not a regular expression: {exc}")
    if scenario.bus == "redis" and scenario.kernels < 2:
        problems.append("bus: redis needs kernels >= 2 (the private Redis is started for HA)")
    for kind in scenario.random.kinds:
        if kind not in SIM_FAULTS:
            problems.append(f"random.kinds: {kind!r} is not one of {', '.join(SIM_FAULTS)}")
    if not 0 <= scenario.random.rate <= 1:
        problems.append("random.rate: must be between 0 and 1")
    if problems:
        raise ScenarioError(f"{source}: " + "; ".join(problems))
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return parse_scenario(data, str(path))
