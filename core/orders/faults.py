"""Test-only fault points: ``HRKERNEL_FAULT_POINT=<name>`` SIGKILLs the process at that point.

Used by the crash-recovery tests to kill a real process at a phase boundary. With the variable
unset (always, outside those tests) a fault point is one dictionary look-up. This is the only way
test-only behaviour enters the kernel: a new test hook is a new point here, listed in ``POINTS``.
"""

from __future__ import annotations

import os
import signal

import anyio

POINTS = ("signal_received", "after_prepared", "after_submitting", "after_accept", "after_acked", "mid_verify",
          "journal_group_before_commit", "journal_group_after_commit")
"""``journal_group_*`` fire in the journal's writer thread, only for a batch of more than one
write (a group commit): with the batch's statements applied and COMMIT not yet run, and with
COMMIT done and no caller told yet."""


SETTLE = {"signal_received": 0.5}
"""Seconds an armed point waits before the kill (:func:`settled_fault_point`), where the test must
not pass by winning a race: ``signal_received`` kills between the webhook's 200 and the journal,
after the intake's own bookkeeping for the publish has surely landed."""


def armed(name: str) -> bool:
    """Whether ``HRKERNEL_FAULT_POINT`` names this point."""
    return os.environ.get("HRKERNEL_FAULT_POINT") == name


def fault_point(name: str) -> None:
    """SIGKILL this process here if the point is armed."""
    if armed(name):
        os.kill(os.getpid(), signal.SIGKILL)


async def settled_fault_point(name: str) -> None:
    """:func:`fault_point` for async code: an armed point first waits its ``SETTLE`` seconds."""
    if armed(name):
        await anyio.sleep(SETTLE.get(name, 0.0))
        fault_point(name)
