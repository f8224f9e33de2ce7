"""Email over SMTP (STARTTLS or SMTPS, optional login), sent from a worker thread."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import anyio
import msgspec

from hrkernel.alerts.types import ChannelError, Notification, render_text
from hrkernel.types import ConfigStruct, Duration, KernelContext


class EmailConfig(ConfigStruct, kw_only=True):
    host: str
    port: int = 587
    starttls: bool = True
    ssl: bool = False
    """SMTPS (implicit TLS, usually port 465) instead of STARTTLS."""
    ca_file: str = ""
    """Trust this CA bundle instead of the system's (a private relay)."""
    username: str = ""
    password: str = ""
    """Write it as ${SMTP_PASSWORD}."""
    from_addr: str
    to: list[str] = msgspec.field(default_factory=list)
    subject_prefix: str = "[hrkernel]"
    timeout: Duration = Duration(10.0)

    def __post_init__(self) -> None:
        if not self.to:
            raise ValueError("to: list at least one address")


class EmailChannel:
    name = "email"

    def __init__(self, config: EmailConfig, context: KernelContext | None = None) -> None:
        self.config = config

    def message(self, notification: Notification) -> EmailMessage:
        c = self.config
        msg = EmailMessage()
        msg["Subject"] = f"{c.subject_prefix} {notification.subject()}".strip()
        msg["From"] = c.from_addr
        msg["To"] = ", ".join(c.to)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(idstring=notification.id or None, domain="hrkernel")
        msg.set_content(render_text(notification))
        return msg

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.ca_file or None)

    def _send_blocking(self, msg: EmailMessage) -> None:
        c = self.config
        smtp: smtplib.SMTP
        if c.ssl:
            smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=float(c.timeout), context=self._tls())
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=float(c.timeout))
        with smtp:
            if c.starttls and not c.ssl:
                smtp.starttls(context=self._tls())
            if c.username:
                smtp.login(c.username, c.password)
            smtp.send_message(msg)

    async def send(self, notification: Notification) -> None:
        msg = self.message(notification)
        try:
            await anyio.to_thread.run_sync(self._send_blocking, msg, abandon_on_cancel=True)
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelError(self.name, f"SMTP login refused ({exc.smtp_code})", retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if self.config.password:
                reason = reason.replace(self.config.password, "***")
            raise ChannelError(self.name, reason) from None
