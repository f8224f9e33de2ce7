"""Test-only fault points: ``HRKERNEL_FAULT_POINT=<name>`` SIGKILLs the process at that point.

Used by the crash-recovery tests to kill a real process at a phase boundary. With the variable
unset (always, outside those tests) a fault point is one dictionary look-up.
"""

from __future__ import annotations

import os
import signal

POINTS = ("signal_received", "after_prepared", "after_submitting", "after_accept", "after_acked", "mid_verify",
          "journal_group_before_commit", "journal_group_after_commit")
"""``journal_group_*`` fire in the journal's writer thread, only for a batch of more than one
write (a group commit): with the batch's statements applied and COMMIT not yet run, and with
COMMIT done and no caller told yet."""


def fault_point(name: str) -> None:
    if os.environ.get("HRKERNEL_FAULT_POINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
