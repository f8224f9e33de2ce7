"""Every built-in channel against a real server on loopback; the exact requests are asserted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import pytest

from hrkernel.alerts import AlertSystem
from hrkernel.alerts.build import channels_from_config
from hrkernel.alerts.config import AlertsSection
from hrkernel.alerts.types import Alert, AlertLevel, ChannelError, Notification
from hrkernel.errors import ConfigError
from hrkernel.types import Duration
from hrkernel_alerts.console import ConsoleChannel, ConsoleConfig
from hrkernel_alerts.email_channel import EmailChannel, EmailConfig
from hrkernel_alerts.sms import SmsChannel, SmsConfig
from hrkernel_alerts.telegram import TelegramChannel, TelegramConfig
from hrkernel_alerts.webhook import WebhookChannel, WebhookConfig

pytestmark = pytest.mark.anyio

ALERT = Alert(
    id="a1b2c3", fingerprint="f" * 16, source="exchange", level=AlertLevel.CRITICAL,
    title="Exchange down (nobitex)", message="5 timeouts in 30s; last: HTTP 502!",
    context={"exchange": "nobitex"}, count=3, first_seen=1800000000.0, last_seen=1800000090.0,
)
NOTE = Notification(kind="firing", channel="x", group="source=exchange", alerts=[ALERT], id="n1",
                    dashboard_url="http://127.0.0.1:8080/alerts")

MARKDOWN = (
    "*FIRING*\n\n"
    "🚨 *CRITICAL* \\| exchange\n"
    "*Exchange down \\(nobitex\\)*\n"
    "5 timeouts in 30s; last: HTTP 502\\!\n"
    "count: 3, first seen: 2027\\-01\\-15 08:00:00 UTC, last seen: 2027\\-01\\-15 08:01:30 UTC\n"
    "exchange\\=nobitex\n\n"
    "[dashboard](http://127.0.0.1:8080/alerts)"
)
HTML = (
    "<b>FIRING</b>\n\n"
    "<b>CRITICAL</b> | exchange\n"
    "<b>Exchange down (nobitex)</b>\n"
    "5 timeouts in 30s; last: HTTP 502!\n"
    "count: 3, first seen: 2027-01-15 08:00:00 UTC, last seen: 2027-01-15 08:01:30 UTC\n"
    "exchange=nobitex\n\n"
    '<a href="http://127.0.0.1:8080/alerts">dashboard</a>'
)


async def test_telegram_posts_send_message_with_markdown_v2(http_server):
    channel = TelegramChannel(TelegramConfig(token="123:SECRET-token", chat_id="-10042", base_url=http_server.url))
    await channel.start()
    try:
        await channel.send(NOTE)
    finally:
        await channel.aclose()
    [req] = http_server.ok_requests()
    assert req.path == "/bot123:SECRET-token/sendMessage"
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {"chat_id": "-10042", "text": MARKDOWN, "parse_mode": "MarkdownV2",
                          "disable_web_page_preview": True}


async def test_telegram_html_mode(http_server):
    channel = TelegramChannel(TelegramConfig(token="t0k3n-secret", chat_id="7", parse_mode="HTML",
                                             base_url=http_server.url + "/"))
    await channel.send(NOTE)
    await channel.aclose()
    [req] = http_server.ok_requests()
    assert req.path == "/bott0k3n-secret/sendMessage"
    assert req.json()["text"] == HTML and req.json()["parse_mode"] == "HTML"


async def test_telegram_failures_are_classified_and_never_carry_the_token(http_server, make_http_server):
    http_server.reply = http_server.Reply(status=400, body={"ok": False, "description": "Bad Request: chat not found"})
    channel = TelegramChannel(TelegramConfig(token="t0k3n-secret", chat_id="7", base_url=http_server.url))
    with pytest.raises(ChannelError) as err:
        await channel.send(NOTE)
    assert not err.value.retryable and "chat not found" in err.value.reason
    http_server.reply = http_server.Reply(status=502, body={"ok": False})
    with pytest.raises(ChannelError) as err:
        await channel.send(NOTE)
    assert err.value.retryable and err.value.retry_after is None
    http_server.reply = http_server.Reply(status=429, body={"ok": False, "parameters": {"retry_after": 7}})
    with pytest.raises(ChannelError) as err:
        await channel.send(NOTE)
    assert err.value.retryable and err.value.retry_after == 7.0
    dead = make_http_server()
    dead.close()
    channel = TelegramChannel(TelegramConfig(token="t0k3n-secret", chat_id="7", base_url=dead.url))
    with pytest.raises(ChannelError) as err:
        await channel.send(NOTE)
    assert err.value.retryable and "t0k3n-secret" not in str(err.value)
    await channel.aclose()


async def test_webhook_posts_the_notification_as_json_signed_with_hmac_sha256(http_server):
    channel = WebhookChannel(WebhookConfig(url=http_server.url + "/hooks/alerts", secret="whsec-123",
                                           headers={"X-Team": "ops"}))
    await channel.start()
    await channel.send(NOTE)
    await channel.aclose()
    [req] = http_server.ok_requests()
    assert req.path == "/hooks/alerts"
    expected = "sha256=" + hmac.new(b"whsec-123", req.body, hashlib.sha256).hexdigest()
    assert req.headers["x-hrkernel-signature"] == expected
    assert req.headers["x-team"] == "ops" and req.headers["x-hrkernel-notification"] == "n1"
    body = req.json()
    assert body["kind"] == "firing" and body["level"] == "critical" and body["id"] == "n1"
    assert body["dashboard_url"] == "http://127.0.0.1:8080/alerts"
    [alert] = body["alerts"]
    assert alert == {
        "id": "a1b2c3", "fingerprint": "f" * 16, "source": "exchange", "level": "critical",
        "title": "Exchange down (nobitex)", "message": "5 timeouts in 30s; last: HTTP 502!",
        "context": {"exchange": "nobitex"}, "count": 3, "first_seen": 1800000000.0,
        "last_seen": 1800000090.0, "status": "firing", "resolved_at": None, "acknowledged_by": None,
    }
    assert "count: 3" in body["text"] and "first seen: 2027-01-15 08:00:00 UTC" in body["text"]


async def test_webhook_without_secret_sends_no_signature(http_server):
    channel = WebhookChannel(WebhookConfig(url=http_server.url))
    await channel.send(NOTE)
    await channel.aclose()
    [req] = http_server.ok_requests()
    assert "x-hrkernel-signature" not in req.headers


async def test_sms_posts_one_twilio_message_per_recipient_with_basic_auth(http_server):
    channel = SmsChannel(SmsConfig(account_sid="AC123", auth_token="tw-secret", from_number="+15550001",
                                   to=["+15550002", "+15550003"], base_url=http_server.url))
    await channel.send(NOTE)
    await channel.aclose()
    reqs = http_server.ok_requests()
    assert [r.path for r in reqs] == ["/2010-04-01/Accounts/AC123/Messages.json"] * 2
    auth = "Basic " + base64.b64encode(b"AC123:tw-secret").decode()
    assert all(r.headers["authorization"] == auth for r in reqs)
    assert all(r.headers["content-type"] == "application/x-www-form-urlencoded" for r in reqs)
    forms = [urllib.parse.parse_qs(r.body.decode()) for r in reqs]
    assert [f["To"] for f in forms] == [["+15550002"], ["+15550003"]]
    assert all(f["From"] == ["+15550001"] for f in forms)
    assert forms[0]["Body"] == [
        "[CRITICAL] exchange: Exchange down (nobitex)\n"
        "CRITICAL exchange: Exchange down (nobitex) - 5 timeouts in 30s; last: HTTP 502! "
        "(x3, first 2027-01-15 08:00:00 UTC, last 2027-01-15 08:01:30 UTC)\n"
        "http://127.0.0.1:8080/alerts"
    ]


async def test_sms_retry_after_a_partial_failure_texts_only_the_missed_recipient(http_server):
    Reply = http_server.Reply
    failing = {"+2"}
    http_server.reply = lambda rec: Reply(status=503) if urllib.parse.parse_qs(rec.body.decode())["To"][0] in failing else Reply(status=201)
    channel = SmsChannel(SmsConfig(account_sid="AC1", auth_token="tok-secret", from_number="+0", to=["+1", "+2"],
                                   base_url=http_server.url))
    with pytest.raises(ChannelError) as err:
        await channel.send(NOTE)
    assert err.value.retryable and "+2: HTTP 503" in err.value.reason and "tok-secret" not in err.value.reason
    failing.clear()
    await channel.send(NOTE)
    await channel.aclose()
    tos = [urllib.parse.parse_qs(r.body.decode())["To"][0] for r in http_server.all_requests()]
    assert tos == ["+1", "+2", "+2"]


async def test_email_over_starttls_with_login(smtp_server):
    channel = EmailChannel(EmailConfig(
        host=smtp_server.host, port=smtp_server.port, ca_file=smtp_server.ca_file, username="alice",
        password="s3cret-pw", from_addr="hr@example.org", to=["ops@example.org", "cto@example.org"],
    ))
    await channel.send(NOTE)
    [envelope] = smtp_server.messages
    assert smtp_server.auth == [("alice", "s3cret-pw")]
    assert envelope.mail_from == "hr@example.org"
    assert envelope.rcpt_tos == ["ops@example.org", "cto@example.org"]
    msg = message_from_bytes(envelope.content)
    assert str(make_header(decode_header(msg["Subject"]))) == "[hrkernel] [CRITICAL] exchange: Exchange down (nobitex)"
    body = msg.get_payload(decode=True).decode()
    for line in ("level: critical", "source: exchange", "title: Exchange down (nobitex)",
                 "message: 5 timeouts in 30s; last: HTTP 502!", "count: 3",
                 "first seen: 2027-01-15 08:00:00 UTC", "last seen: 2027-01-15 08:01:30 UTC",
                 "dashboard: http://127.0.0.1:8080/alerts"):
        assert line in body


async def test_email_bad_login_is_a_permanent_failure_without_the_password(smtp_server):
    channel = EmailChannel(EmailConfig(
        host=smtp_server.host, port=smtp_server.port, ca_file=smtp_server.ca_file, username="alice",
        password="wrong-pw-123", from_addr="hr@example.org", to=["ops@example.org"],
    ))
    with pytest.raises(ChannelError) as err:
        await channel.send(NOTE)
    assert not err.value.retryable and "wrong-pw-123" not in str(err.value)
    assert smtp_server.messages == []


async def test_console_writes_plain_text_to_stderr(capsys):
    await ConsoleChannel(ConsoleConfig()).send(NOTE)
    out, err = capsys.readouterr()
    assert out == ""
    assert "[alert] [CRITICAL] exchange: Exchange down (nobitex)" in err
    assert "[alert] count: 3" in err and "[alert] dashboard: http://127.0.0.1:8080/alerts" in err


async def test_apprise_channel_delivers_by_url_in_a_worker_thread(http_server):
    pytest.importorskip("apprise")
    from hrkernel_alerts.apprise_channel import AppriseChannel, AppriseConfig

    url = f"json://127.0.0.1:{http_server.port}/apprise"
    channel = AppriseChannel(AppriseConfig(urls=[url]))
    await channel.send(NOTE)
    [req] = http_server.ok_requests()
    assert req.path == "/apprise"
    body = req.json()
    assert body["title"] == "[CRITICAL] exchange: Exchange down (nobitex)"
    assert "count: 3" in body["message"] and "dashboard: http://127.0.0.1:8080/alerts" in body["message"]
    http_server.reply = http_server.Reply(status=500)
    with pytest.raises(ChannelError):
        await channel.send(NOTE)


def test_channel_tables_are_validated_with_their_full_key_paths():
    config = AlertsSection(channels={
        "tg": {"type": "telegram", "chat_id": 5, "min_level": "loud"},
        "mail": {"type": "email", "host": "x", "from_addr": "a@b", "to": []},
        "x": {"type": "pager"},
        "console": {},
    })
    with pytest.raises(ConfigError) as err:
        channels_from_config(config)
    text = str(err.value)
    assert "alerts.channels.tg.min_level: expected one of 'info', 'warning', 'error', 'critical', found 'loud'" in text
    assert "alerts.channels.tg.token: required key is missing" in text
    assert "alerts.channels.tg.chat_id" in text
    assert "alerts.channels.mail" in text and "to: list at least one address" in text
    assert "alerts.channels.x.type: unknown alert_channel type 'pager'" in text
    assert len(err.value.issues) == 5


async def test_a_system_built_from_config_delivers_to_every_channel(tmp_path: Path, clock, http_server, smtp_server):
    tables: dict[str, dict[str, Any]] = {
        "console": {"type": "console"},
        "tg": {"type": "telegram", "token": "123:tok", "chat_id": "1", "base_url": http_server.url, "min_level": "error"},
        "hook": {"type": "webhook", "url": http_server.url + "/hook", "sources": ["exchange"]},
        "sms": {"type": "sms", "account_sid": "AC9", "auth_token": "x-token", "from_number": "+1", "to": ["+2"],
                "base_url": http_server.url, "min_level": "critical"},
        "mail": {"type": "email", "host": "127.0.0.1", "port": smtp_server.port, "ca_file": smtp_server.ca_file,
                 "username": "alice", "password": "s3cret-pw", "from_addr": "hr@x.org", "to": ["ops@x.org"]},
    }
    config = AlertsSection(channels=tables, group_wait=Duration(5), dashboard_url="http://127.0.0.1:8080/")
    async with AlertSystem(config, data_dir=tmp_path, clock=clock) as alerts:
        await alerts.send_alert(source="exchange", level="error", title="timeouts", message="3 in 30s")
        clock.advance(5)
        await alerts.wait_idle()
        rows = await alerts.query()
    paths = sorted(r.path for r in http_server.ok_requests())
    assert paths == ["/bot123:tok/sendMessage", "/hook"]  # sms wants critical only
    assert len(smtp_server.messages) == 1
    assert sorted(d["channel"] for d in rows[0]["deliveries"] if d["ok"]) == ["console", "hook", "mail", "tg"]
    assert json.loads(next(r for r in http_server.ok_requests() if r.path == "/hook").body)["dashboard_url"] == "http://127.0.0.1:8080/"


async def test_a_hanging_apprise_service_never_blocks_the_event_loop(http_server):
    pytest.importorskip("apprise")
    import time

    import anyio

    from hrkernel.alerts.delivery import call_channel
    from hrkernel_alerts.apprise_channel import AppriseChannel, AppriseConfig

    http_server.reply = http_server.Reply(hang=True)
    channel = AppriseChannel(AppriseConfig(urls=[f"json://127.0.0.1:{http_server.port}/stuck"]))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    began = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        with pytest.raises(ChannelError, match="no answer within 0.5s"):
            await call_channel(channel, NOTE, 0.5)
        tg.cancel_scope.cancel()
    assert time.monotonic() - began < 1.5
    assert ticks >= 25  # the loop kept running while apprise's thread hung
    http_server.release.set()
