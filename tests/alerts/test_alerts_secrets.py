"""A secret written inside a longer ``${VAR}`` string is masked on its own, end to end.

The config is read by the real loader, the alert goes through a real webhook channel to a real
loopback HTTP server, the history is read back from alerts.duckdb and the logs are captured.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import anyio
import duckdb
import pytest
import structlog

from hrkernel import logging as hrlogging
from hrkernel.alerts import AlertSystem
from hrkernel.alerts.build import channels_from_config
from hrkernel.alerts.types import ChannelError
from hrkernel.config import load_config_text
from hrkernel.types import Duration

pytestmark = pytest.mark.anyio

TOKEN = "tok-9f8e7d6c5b4a"
TG_TOKEN = "7781:tg-AAbbCCdd"
ENV = {"API_TOKEN": TOKEN, "TG_TOKEN": TG_TOKEN, "HOOK_HOST": "127.0.0.1"}


def _config(ok_url: str, echo_url: str) -> str:
    return f"""
[alerts]
group_wait = "0s"
retry_attempts = 1

[alerts.channels.console]
enabled = false

[alerts.channels.hook]
type = "webhook"
url = "{ok_url}/hook"
headers = {{ Authorization = "Bearer ${{API_TOKEN}}" }}

[alerts.channels.echo]
type = "webhook"
url = "{echo_url}/hook"
headers = {{ Authorization = "Bearer ${{API_TOKEN}}" }}

[alerts.channels.apprise_like]
type = "webhook"
enabled = false
url = "tgram://${{TG_TOKEN}}/12345"
"""


def test_each_variable_inside_a_secret_value_is_a_secret_on_its_own() -> None:
    loaded = load_config_text(_config("http://a", "http://b"), environ=ENV)
    assert "Bearer " + TOKEN in loaded.secrets
    assert TOKEN in loaded.secrets  # the bare token, not only "Bearer <token>"
    assert TG_TOKEN in loaded.secrets  # a credential-looking variable name inside a URL
    assert "127.0.0.1" not in loaded.secrets  # a plain value stays readable


def test_secret_tables_url_keys_and_url_passwords_follow_the_documented_rules() -> None:
    text = """
[health.checks.x]
credentials = { api_key = { value = "${PLAIN_A}" } }
tokens = ["${PLAIN_B}"]
url = "https://hooks.example/${HOOK_PATH}"
note = "${PLAIN_C}"
dsn = "amqp://hr:${PLAIN_D}@127.0.0.1/"
"""
    env = {"PLAIN_A": "aaaa-1", "PLAIN_B": "bbbb-2", "HOOK_PATH": "T0/B1/xyz", "PLAIN_C": "cccc-3",
           "PLAIN_D": "dddd-4"}
    loaded = load_config_text(text, environ=env)
    assert {"aaaa-1", "bbbb-2", "https://hooks.example/T0/B1/xyz", "dddd-4"} <= loaded.secrets
    assert "cccc-3" not in loaded.secrets


async def test_token_embedded_in_a_header_never_reaches_channels_history_or_logs(
    tmp_path: Path, make_http_server
) -> None:
    ok, echo = make_http_server(), make_http_server()
    # The second service refuses and echoes the header it got, as careless APIs do.
    echo.reply = lambda rec: echo.Reply(status=401, body={"error": f"bad credentials {rec.headers['authorization']}"})
    loaded = load_config_text(_config(ok.url, echo.url), environ=ENV)
    stream = io.StringIO()
    hrlogging.configure("debug", "json", loaded.secrets, stream=stream)
    try:
        channels = channels_from_config(loaded.config.alerts)
        async with AlertSystem(loaded.config.alerts, channels=channels, data_dir=tmp_path,
                               secrets=loaded.secrets) as alerts:
            await alerts.send_alert(source="exchange", level="critical", title=f"login with {TOKEN} refused",
                                    message=f"login with {TOKEN} refused", context={"detail": f"key={TOKEN}"})
            with anyio.fail_after(10):
                while len(echo.all_requests()) < 1 or len(ok.ok_requests()) < 1:
                    await alerts.wait_idle()
                    await anyio.sleep(0.02)
            await alerts.wait_idle()
            rows = await alerts.query()
        hrlogging.get_logger("test").warning("alert_text", text=f"login with {TOKEN} refused")
    finally:
        structlog.reset_defaults()
    delivered = ok.ok_requests()[0]
    assert delivered.headers["authorization"] == f"Bearer {TOKEN}"  # the header itself still works
    assert TOKEN not in delivered.body.decode()
    assert "login with *** refused" in delivered.json()["text"]
    assert TOKEN not in json.dumps(rows)
    [row] = rows
    assert row["message"] == "login with *** refused"
    failed = [d for d in row["deliveries"] if d["channel"] == "echo"]
    assert failed and not failed[0]["ok"] and "***" in failed[0]["reason"]
    with duckdb.connect(str(tmp_path / "alerts.duckdb"), read_only=True) as db:
        stored = json.dumps([db.execute(f"SELECT * FROM {t}").fetchall() for t in ("alerts", "deliveries")])
    assert "refused" in stored and TOKEN not in stored
    logs = stream.getvalue()
    assert "alert_text" in logs and "alert_delivery_failed" in logs
    assert TOKEN not in logs


def test_a_channel_table_timeout_is_also_the_channels_own_option() -> None:
    loaded = load_config_text(
        '[alerts.channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:9/"\ntimeout = "0.3s"\n', environ={}
    )
    spec = channels_from_config(loaded.config.alerts)["hook"]
    assert spec.routing.timeout == Duration(0.3)
    assert spec.obj.config.timeout == Duration(0.3)


async def test_the_webhook_http_timeout_set_in_config_bounds_a_hanging_service(http_server) -> None:
    http_server.reply = http_server.Reply(hang=True)
    loaded = load_config_text(
        f'[alerts.channels.hook]\ntype = "webhook"\nurl = "{http_server.url}/x"\ntimeout = "0.3s"\n', environ={}
    )
    channel = channels_from_config(loaded.config.alerts)["hook"].obj
    began = time.monotonic()
    with anyio.fail_after(5), pytest.raises(ChannelError, match="Timeout"):
        await channel.send(_note())
    assert time.monotonic() - began < 4
    await channel.aclose()


def _note():
    from hrkernel.alerts.types import Alert, AlertLevel, Notification

    alert = Alert(id="a1", fingerprint="f" * 16, source="exchange", level=AlertLevel.ERROR, title="t", message="m",
                  context={}, count=1, first_seen=1.0, last_seen=1.0)
    return Notification(kind="firing", channel="hook", group="g", alerts=[alert], id="n1")
