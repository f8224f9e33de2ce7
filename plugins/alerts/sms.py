"""SMS through a Twilio-compatible API: one message per recipient, sent once per notification."""

from __future__ import annotations

from collections import OrderedDict

import msgspec

from hrkernel.alerts.types import ChannelError, Notification
from hrkernel.types import ConfigStruct, Duration, KernelContext
from hrkernel_alerts.formatting import short_text
from hrkernel_alerts.http_base import HttpChannel


class SmsConfig(ConfigStruct, kw_only=True):
    account_sid: str
    auth_token: str
    """Write it as ${TWILIO_AUTH_TOKEN}."""
    from_number: str
    to: list[str] = msgspec.field(default_factory=list)
    base_url: str = "https://api.twilio.com"
    max_length: int = 1600
    timeout: Duration = Duration(10.0)

    def __post_init__(self) -> None:
        if not self.to:
            raise ValueError("to: list at least one phone number")


class SmsChannel(HttpChannel):
    name = "sms"

    def __init__(self, config: SmsConfig, context: KernelContext | None = None) -> None:
        super().__init__(float(config.timeout), [config.auth_token])
        self.config = config
        # Recipients already served per notification id, so a retry after a partial failure
        # does not text the others twice.
        self._done: OrderedDict[str, set[str]] = OrderedDict()

    async def send(self, notification: Notification) -> None:
        c = self.config
        url = f"{c.base_url.rstrip('/')}/2010-04-01/Accounts/{c.account_sid}/Messages.json"
        body = short_text(notification, c.max_length)
        # Without an id (a channel used on its own) there is nothing to recognise a retry by.
        done = self._done.setdefault(notification.id, set()) if notification.id else set()
        while len(self._done) > 256:
            self._done.popitem(last=False)
        failures: list[str] = []
        for number in c.to:
            if number in done:
                continue
            try:
                await self._post(url, data={"To": number, "From": c.from_number, "Body": body},
                                 auth=(c.account_sid, c.auth_token))
            except ChannelError as exc:
                failures.append(f"{number}: {exc.reason}")
                continue
            done.add(number)
        if failures:
            raise ChannelError(self.name, "; ".join(failures))
        self._done.pop(notification.id, None)
