"""Telegram: the Bot API's ``sendMessage``, formatted as MarkdownV2 or HTML."""

from __future__ import annotations

from typing import Literal

from hrkernel.alerts.types import ChannelError, Notification
from hrkernel.types import ConfigStruct, Duration, KernelContext
from hrkernel_alerts.formatting import markdown_v2, telegram_html
from hrkernel_alerts.http_base import HttpChannel

MAX_LENGTH = 4096
"""Telegram rejects longer messages."""


class TelegramConfig(ConfigStruct, kw_only=True):
    token: str
    """The bot token: write it as ${TELEGRAM_TOKEN}."""
    chat_id: str
    parse_mode: Literal["MarkdownV2", "HTML"] = "MarkdownV2"
    base_url: str = "https://api.telegram.org"
    timeout: Duration = Duration(10.0)


class TelegramChannel(HttpChannel):
    name = "telegram"

    def __init__(self, config: TelegramConfig, context: KernelContext | None = None) -> None:
        super().__init__(float(config.timeout), [config.token])
        self.config = config

    def text(self, notification: Notification) -> str:
        if self.config.parse_mode == "HTML":
            text = telegram_html(notification)
        else:
            text = markdown_v2(notification)
        if len(text) > MAX_LENGTH:
            # Cut at a line boundary so no escape sequence or tag is split.
            text = text[: MAX_LENGTH - 20].rsplit("\n", 1)[0] + "\n…"
        return text

    async def send(self, notification: Notification) -> None:
        url = f"{self.config.base_url.rstrip('/')}/bot{self.config.token}/sendMessage"
        payload = {
            "chat_id": self.config.chat_id,
            "text": self.text(notification),
            "parse_mode": self.config.parse_mode,
            "disable_web_page_preview": True,
        }
        response = await self._post(url, json=payload)
        try:
            ok = response.json().get("ok") is True
        except ValueError:
            ok = False
        if not ok:
            raise ChannelError(self.name, self._scrub(f"Bot API answered without ok: {response.text[:200]}"))
