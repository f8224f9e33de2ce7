"""How a failover group spreads calls over the members that serve at the same time.

Used by the modes where several members serve at once (``active_active``, ``n_plus_1``,
``cluster``); ``active_passive`` has one serving member and nothing to balance.

- ``round_robin`` — each serving member in turn.
- ``least_loaded`` — the member with the fewest calls in flight through
  :meth:`hrkernel.ha.failover.FailoverManager.call` (the manager counts them around the call);
  ties go round robin, so an idle group still spreads its calls. Only calls made through
  ``call()`` count: code that takes ``active()`` and calls the member itself adds no load.
- ``weighted`` — smooth weighted round robin: over any ``sum(weights)`` consecutive calls each
  member gets exactly its ``weight`` share, interleaved rather than in bursts (a member of weight
  3 beside one of weight 1 serves a, a, b, a — never four in a row of one when it can be avoided).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol


class Balance(enum.StrEnum):
    """A group's balancing policy; equal to its plain string (config, status, logs)."""

    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"
    WEIGHTED = "weighted"


BALANCES = tuple(b.value for b in Balance)


class Candidate(Protocol):
    """What a policy needs to know of a serving member."""

    id: str
    weight: int
    in_flight: int


class Balancer:
    """Picks the member for the next call among the serving, healthy ``candidates`` (never empty).

    One balancer per group; it keeps the policy's small state (the round-robin position, the
    weighted scores) between calls.
    """

    def __init__(self, policy: str = "round_robin") -> None:
        if policy not in BALANCES:
            raise ValueError(f"balance {policy!r} is not one of {', '.join(BALANCES)}")
        self.policy = str(policy)
        self._turn = 0
        self._scores: dict[str, int] = {}

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        if self.policy == Balance.WEIGHTED:
            return self._weighted(candidates)
        self._turn = (self._turn + 1) % len(candidates)
        if self.policy == Balance.LEAST_LOADED:
            # Start the scan at the round-robin position so equal loads rotate.
            rotated = [*candidates[self._turn:], *candidates[: self._turn]]
            return min(rotated, key=lambda c: c.in_flight)
        return candidates[self._turn]

    def _weighted(self, candidates: Sequence[Candidate]) -> Candidate:
        # Each member's score grows by its weight every call; the highest score serves and pays
        # back the total, so shares follow the weights and the same member rarely serves twice
        # in a row. Members that stopped serving lose their score (they start afresh on return).
        ids = {c.id for c in candidates}
        self._scores = {k: v for k, v in self._scores.items() if k in ids}
        total = 0
        for c in candidates:
            self._scores[c.id] = self._scores.get(c.id, 0) + c.weight
            total += c.weight
        chosen = max(candidates, key=lambda c: self._scores[c.id])
        self._scores[chosen.id] -= total
        return chosen
