"""Errors of the HA area."""

from __future__ import annotations

from hrkernel.errors import HrkernelError


class HAError(HrkernelError):
    """Base of the HA area's errors."""


class UnknownGroupError(HAError, KeyError):
    def __init__(self, group: str, known: list[str]) -> None:
        self.group = group
        super().__init__(f"no failover group {group!r} (known: {', '.join(sorted(known)) or 'none'})")

    def __str__(self) -> str:
        return str(self.args[0])


class NoHealthyMemberError(HAError):
    """Every member of a failover group is unhealthy: there is nothing to route the call to."""

    def __init__(self, group: str, members: list[str]) -> None:
        self.group = group
        super().__init__(f"failover group {group!r}: no healthy member among {', '.join(members)}")


class GroupConfigError(HAError):
    """A failover group refers to something that does not exist or is set up inconsistently."""
