"""Structured logs never carry a configured secret, wherever it is put."""

from __future__ import annotations

import io
import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from hrkernel import logging as hrlogging
from hrkernel.config import load_config_text

TOKEN = "tok-4f9c2d1e8b7a6c5d"


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    loaded = load_config_text(
        '[health.checks.x]\napi_token = "${NOBITEX_TOKEN}"\n', environ={"NOBITEX_TOKEN": TOKEN}
    )
    hrlogging.configure("debug", "json", loaded.secrets, stream=stream)
    yield stream
    structlog.reset_defaults()


def test_configured_token_never_appears_even_logged_on_purpose_in_other_fields(captured: io.StringIO) -> None:
    log = hrlogging.get_logger("test")
    log.info("login", token=TOKEN)
    log.info("request", headers={"Authorization": f"Token {TOKEN}"}, url=f"https://x/?t={TOKEN}")
    log.info(f"message mentions {TOKEN} inline", nested={"list": [TOKEN, {"deep": TOKEN}]}, pair=(1, TOKEN))
    try:
        raise RuntimeError(f"exchange said: bad token {TOKEN}")
    except RuntimeError:
        log.exception("call_failed")
    log.info("object", value=Path(f"/tmp/{TOKEN}"))
    output = captured.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]
    assert len(lines) == 5
    assert TOKEN not in output
    assert lines[0]["token"] == "***"
    assert lines[1]["headers"]["Authorization"] == "***"
    assert lines[1]["url"] == "https://x/?t=***"
    assert lines[2]["event"] == "message mentions *** inline"
    assert lines[2]["nested"] == {"list": ["***", {"deep": "***"}]}
    assert "bad token ***" in lines[3]["exception"]


def test_credential_looking_keys_are_redacted_even_when_not_configured(captured: io.StringIO) -> None:
    hrlogging.get_logger().info("x", password="p4ss", api_key="k", secret=None, harmless="value")
    line = json.loads(captured.getvalue())
    assert line["password"] == "***" and line["api_key"] == "***"
    assert line["secret"] is None and line["harmless"] == "value"


def test_console_renderer_is_redacted_too() -> None:
    stream = io.StringIO()
    hrlogging.configure("info", "console", [TOKEN], stream=stream)
    try:
        hrlogging.get_logger().info("hello", detail=f"with {TOKEN}")
    finally:
        structlog.reset_defaults()
    assert TOKEN not in stream.getvalue() and "***" in stream.getvalue()


def test_token_from_environment_never_reaches_a_running_kernels_log(
    kernel_process: Callable[..., object], tmp_path: Path
) -> None:
    config = tmp_path / "hr.toml"
    # The token is used as the instance id, so the kernel logs it on purpose in every line.
    config.write_text('[kernel]\ninstance_id = "${HR_TEST_TOKEN}"\n')
    kernel = kernel_process(config, env={"HR_TEST_TOKEN": TOKEN}, cwd=tmp_path)
    kernel.wait_for("ready")
    kernel.signal(signal.SIGTERM)
    assert kernel.wait() == 0
    assert kernel.wait_for("ready")["instance"] == "***"
    assert TOKEN not in kernel.output()
