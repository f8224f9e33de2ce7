"""The console channel: plain text on stderr (stdout carries the kernel's JSON log lines)."""

from __future__ import annotations

import sys
from typing import Literal

from hrkernel.alerts.types import Notification, render_text
from hrkernel.types import ConfigStruct, KernelContext


class ConsoleConfig(ConfigStruct, kw_only=True):
    stream: Literal["stderr", "stdout"] = "stderr"


class ConsoleChannel:
    def __init__(self, config: ConsoleConfig, context: KernelContext | None = None) -> None:
        self.stream = config.stream

    async def send(self, notification: Notification) -> None:
        out = sys.stderr if self.stream == "stderr" else sys.stdout
        text = render_text(notification)
        out.write("\n".join(f"[alert] {line}" for line in text.splitlines()) + "\n")
        out.flush()
