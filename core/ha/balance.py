"""How a group with several serving members (``active_active``, ``cluster``) picks the member
for the next call: ``[ha.groups.<name>] balance``.

- ``round_robin`` — in turn.
- ``least_loaded`` — the member with the fewest calls in flight right now (through
  :meth:`FailoverManager.call`); ties go in turn, so an idle group still spreads its calls.
- ``weighted`` — smooth weighted round robin over ``weights`` (a member without a weight has 1):
  each pick adds every member's weight to its running credit, takes the member with the most
  credit and charges it the total. Over any window of ``sum(weights)`` picks each member gets
  exactly its share, interleaved (3:1 gives a a b a, not a a a b).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hrkernel.ha.failover import Group

BALANCES = ("round_robin", "least_loaded", "weighted")


def pick(group: Group, serving: list[str]) -> str:
    """The member of ``serving`` (non-empty, healthy) the next call of ``group`` goes to."""
    if group.balance == "least_loaded":
        fewest = min(group.members[m].in_flight for m in serving)
        serving = [m for m in serving if group.members[m].in_flight == fewest]
    elif group.balance == "weighted":
        return _weighted(group, serving)
    group.rr = (group.rr + 1) % len(serving)
    return serving[group.rr]


def _weighted(group: Group, serving: list[str]) -> str:
    total = 0
    for member in serving:
        weight = group.weights.get(member, 1)
        group.credit[member] = group.credit.get(member, 0) + weight
        total += weight
    chosen = max(serving, key=lambda m: group.credit[m])  # first listed wins a tie
    group.credit[chosen] -= total
    return chosen
