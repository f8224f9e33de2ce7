"""Entry point of the built-in alerts plugin. Imports only the kernel's public API.

The channel modules are imported inside the hook: every ``hrkernel`` start-up imports this
module (``--help`` included), and the channels bring httpx with them.
"""

from __future__ import annotations

from hrkernel import hookimpl
from hrkernel.spec import Register


@hookimpl
def hr_register_alert_channels(register: Register) -> None:
    from hrkernel_alerts.apprise_channel import AppriseChannel, AppriseConfig
    from hrkernel_alerts.console import ConsoleChannel, ConsoleConfig
    from hrkernel_alerts.email_channel import EmailChannel, EmailConfig
    from hrkernel_alerts.sms import SmsChannel, SmsConfig
    from hrkernel_alerts.telegram import TelegramChannel, TelegramConfig
    from hrkernel_alerts.webhook import WebhookChannel, WebhookConfig

    register("console", ConsoleChannel, config=ConsoleConfig)
    register("webhook", WebhookChannel, config=WebhookConfig)
    register("telegram", TelegramChannel, config=TelegramConfig)
    register("email", EmailChannel, config=EmailConfig)
    register("sms", SmsChannel, config=SmsConfig)
    register("apprise", AppriseChannel, config=AppriseConfig)
