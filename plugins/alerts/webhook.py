"""Generic webhook: the notification as JSON, optionally signed with HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac

import msgspec

from hrkernel.alerts.types import Notification, render_text
from hrkernel.types import ConfigStruct, Duration, KernelContext
from hrkernel_alerts.http_base import HttpChannel


class WebhookConfig(ConfigStruct, kw_only=True):
    url: str
    secret: str = ""
    """HMAC-SHA256 key (write it as ${VAR}); when set, the body's signature is sent as
    ``<signature_header>: sha256=<hex>``."""
    signature_header: str = "X-Hrkernel-Signature"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    timeout: Duration = Duration(10.0)
    """HTTP timeout; the table's ``timeout`` sets it and also bounds each delivery attempt."""


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookChannel(HttpChannel):
    name = "webhook"

    def __init__(self, config: WebhookConfig, context: KernelContext | None = None) -> None:
        # Failure reasons may echo what was sent: configured header values (an Authorization
        # header) are hidden too; very short ones would mangle the text and hide nothing.
        hidden = [v for v in config.headers.values() if len(v) >= 4]
        super().__init__(float(config.timeout), [config.secret, *hidden])
        self.config = config

    def body(self, notification: Notification) -> bytes:
        payload = msgspec.to_builtins(notification)
        payload["text"] = render_text(notification)
        payload["level"] = notification.level.value
        return msgspec.json.encode(payload)

    async def send(self, notification: Notification) -> None:
        body = self.body(notification)
        headers = {"Content-Type": "application/json", "X-Hrkernel-Notification": notification.id,
                   **self.config.headers}
        if self.config.secret:
            headers[self.config.signature_header] = signature(self.config.secret, body)
        await self._post(self.config.url, content=body, headers=headers)
