"""The ``[ha]`` section of hr.toml: lease backend, timings, health hysteresis, failover groups."""

from __future__ import annotations

from typing import Literal

import msgspec

from hrkernel.types import ConfigStruct, Duration

GroupMode = Literal["active_passive", "active_active", "n_plus_1"]


class GroupConfig(ConfigStruct, kw_only=True):
    """``[ha.groups.NAME]``: components (by kernel component name) that stand in for each other."""

    mode: GroupMode = "active_passive"
    components: list[str] = msgspec.field(default_factory=list)
    """Kernel component names, e.g. ``"datasource:feed_a"``. active_passive: the first is the
    primary. n_plus_1: the last ``spares`` are spares, the others are in service."""
    auto_failback: bool = True
    """active_passive / n_plus_1: move back to the primary once it is healthy again."""
    spares: int = 1
    """n_plus_1 only: how many of the listed components are kept as spares."""
    check_interval: Duration = Duration(1.0)
    fail_after: int = 2
    """Consecutive failed probes before a member counts as unhealthy."""
    recover_after: int = 2
    """Consecutive good probes before an unhealthy member counts as healthy again."""

    def __post_init__(self) -> None:
        if len(self.components) < 2:
            raise ValueError("a failover group needs at least 2 components")
        if len(set(self.components)) != len(self.components):
            raise ValueError("a component is listed twice in the group")
        if self.fail_after < 1 or self.recover_after < 1:
            raise ValueError("fail_after and recover_after must be >= 1")
        if self.mode == "n_plus_1" and not 1 <= self.spares < len(self.components):
            raise ValueError("n_plus_1 needs 1 <= spares < number of components")


class HealthTuning(ConfigStruct, kw_only=True):
    """``[ha.health]``: how health results become a status and where they are kept."""

    hysteresis: int = 2
    """Consecutive results with a new status before the reported status changes."""
    history: int = 500
    """Results kept in memory per check."""
    persist: bool = True
    """Write every result to DuckDB (``<data_dir>/ha.duckdb``) for trends."""
    recovery_backoff: Duration = Duration(1.0)
    recovery_backoff_max: Duration = Duration(60.0)

    def __post_init__(self) -> None:
        if self.hysteresis < 1:
            raise ValueError("hysteresis must be >= 1")
        if self.history < 1:
            raise ValueError("history must be >= 1")


class HASection(ConfigStruct, kw_only=True):
    backend: Literal["local", "redis"] = "local"
    """``local``: this process is always the leader (one machine). ``redis``: leader election."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "hrkernel"
    """Every key of the lease lives under ``<key_prefix>:``; instances of one deployment share it."""
    lease_ttl: Duration = Duration(3.0)
    """How long a lease lives without renewal; a standby takes over at most this long after the
    leader's last renewal (plus one ``renew_interval``)."""
    renew_interval: Duration = Duration(0.5)
    margin: Duration = Duration(1.0)
    """The leader stops acting once ``lease_ttl - margin`` passed since the last renewal it sent
    that succeeded; this absorbs clock rate drift and the time an order takes to leave."""
    retry_max: Duration = Duration(2.0)
    """Longest pause between attempts while Redis is unreachable."""
    failover_target: Duration = Duration(6.0)
    """A failover slower than this raises an alert. A leadership failover lasts until the new
    leader's first order is accepted: the default is ``lease_ttl`` + 3 s with the default TTL."""
    failover_stats_window: int = 50
    admin_token: str = ""
    """Shared secret for ``hrkernel failover`` (write it as ``${HRKERNEL_HA_TOKEN}``); empty
    disables remote step-down requests."""
    replication: bool = True
    """With the redis backend: the leader streams its journal and ledger to the standbys
    (``<key_prefix>:replication``), so a new leader has the history and reconciles only the tail."""
    replication_interval: Duration = Duration(0.05)
    """How often the leader looks for new journal/ledger rows to publish (off the order path)."""
    replication_maxlen: int = 20_000
    """Entries kept in the stream (approximately). The leader appends at most one entry per
    ``replication_interval`` while rows change (an order with its fill is about 1.3 KB: 20 000
    entries are about 17 minutes of continuous trading, 10–30 MB in Redis). A standby further behind than this, or
    started after it was trimmed, rebuilds."""
    replication_batch: int = 500
    """Most journal events (and ledger transactions) per stream entry."""
    health: HealthTuning = msgspec.field(default_factory=HealthTuning)
    groups: dict[str, GroupConfig] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.lease_ttl <= 0 or self.renew_interval <= 0:
            raise ValueError("lease_ttl and renew_interval must be > 0")
        if self.margin < 0 or self.margin >= self.lease_ttl:
            raise ValueError("margin must be >= 0 and shorter than lease_ttl")
        if self.renew_interval >= self.lease_ttl - self.margin:
            raise ValueError(
                "renew_interval must be shorter than lease_ttl - margin, or the lease lapses between renewals"
            )
        if self.replication_interval <= 0:
            raise ValueError("replication_interval must be > 0")
        if self.replication_maxlen < 100:
            raise ValueError("replication_maxlen must be >= 100")
        if not 1 <= self.replication_batch <= 10_000:
            raise ValueError("replication_batch must be between 1 and 10000")
        seen: dict[str, str] = {}
        for name, group in self.groups.items():
            for component in group.components:
                if component in seen:
                    raise ValueError(f"component {component!r} is in groups {seen[component]!r} and {name!r}")
                seen[component] = name
