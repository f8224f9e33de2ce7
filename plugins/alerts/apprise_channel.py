"""Any service apprise supports (Slack, Discord, Matrix, Pushover, ...) by URL.

Needs the optional extra: ``pip install hrkernel[apprise]``. apprise is synchronous, so each
notification runs in a worker thread: a slow service cannot block the event loop, and the
kernel's per-attempt timeout abandons a call that hangs.
"""

from __future__ import annotations

from typing import Any

import anyio
import msgspec

from hrkernel.alerts.types import ChannelError, Notification, render_text
from hrkernel.types import ConfigStruct, KernelContext


class AppriseConfig(ConfigStruct, kw_only=True):
    urls: list[str] = msgspec.field(default_factory=list)
    """apprise URLs; they usually hold tokens, so write them as ${VAR}."""

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("urls: list at least one apprise URL")


class AppriseChannel:
    name = "apprise"

    def __init__(self, config: AppriseConfig, context: KernelContext | None = None) -> None:
        try:
            import apprise
        except ImportError:
            raise ValueError(
                "the apprise channel needs the apprise library: pip install 'hrkernel[apprise]'"
            ) from None
        self._apprise: Any = apprise
        self.config = config
        self._limiter = anyio.CapacityLimiter(4)

    def _notify(self, title: str, body: str) -> bool:
        app = self._apprise.Apprise()
        for url in self.config.urls:
            if not app.add(url):
                raise ChannelError(self.name, "an apprise URL was not understood (check its scheme)",
                                   retryable=False)
        return bool(app.notify(body=body, title=title))

    async def send(self, notification: Notification) -> None:
        ok = await anyio.to_thread.run_sync(
            self._notify, notification.subject(), render_text(notification),
            abandon_on_cancel=True, limiter=self._limiter,
        )
        if not ok:
            raise ChannelError(self.name, "apprise reported that at least one service failed")
