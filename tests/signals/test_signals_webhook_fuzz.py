"""Hypothesis fuzz of the webhook body: every input gets a 2xx or 4xx answer, never a 5xx; every
refusal is JSON naming the field it refuses, and nothing is logged as an error or a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from hrkernel.signals.config import WebhookSection
from hrkernel.signals.intake import WebhookIntake
from hrkernel.signals.normalize import _ALIASES, SECRET_KEYS

SECRET = "fuzz-secret"

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["buy", "sell", "close", "long", "short", "BTCIRT", "NOBITEX:BTCIRT", "limit", "market",
                     "50%", "0.001", "-1", "1e400", "NaN", "2026-01-01T00:00:00Z", "1735689600", "{{timenow}}",
                     # look valid only through Unicode folding or a lenient pattern
                     "١٢٣", "１２３", "1_000", "0.5\n", "BTCıRT", "abc\n", "mar\u212aet", "١٧٧٢٣٦٦٤٠٠"]),
)
json_values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=6), scalars, max_size=3))
known_keys = sorted({k for keys in _ALIASES.values() for k in keys} | set(SECRET_KEYS) | {"data", "order", "max_lag"})


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = draw(st.dictionaries(st.sampled_from(known_keys), json_values, max_size=6))
    if draw(st.booleans()):
        body["secret"] = SECRET
    return body


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


VALID = {"secret": SECRET, "ticker": "BTCIRT", "action": "buy", "amount": "0.01"}


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body with one field replaced or added: reaches acceptance as well as each check."""
    body = dict(VALID)
    body[draw(st.sampled_from(known_keys))] = draw(scalars)
    return body


bodies = st.one_of(
    mutated().map(_dumps),
    st.binary(max_size=400),
    st.text(max_size=400).map(str.encode),
    json_values.map(_dumps),
    payloads().map(_dumps),
    st.builds(lambda s, t, a: f"{s}({t}) {{ market({a}); }}".encode(),
              st.sampled_from([SECRET, "x"]), st.text(max_size=12), st.text(max_size=40)),
)
content_types = st.sampled_from(["application/json", "text/plain", "text/plain; charset=utf-8", "application/octet-stream", None])


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, httpx.AsyncClient]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    if Path("/dev/shm").is_dir():  # fsync of accepted bodies is the slow part; durability is tested elsewhere
        import tempfile

        tmp = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="hr-fuzz-"))
    config = WebhookSection(enabled=True, secret=SECRET, max_body=2048, url_secret=True)
    intake = WebhookIntake(config, tmp / "inbox.jsonl", bus=None)
    intake.inbox.open()
    app = Starlette(routes=intake.routes())
    with anyio.from_thread.start_blocking_portal() as portal:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://127.0.0.1")
        yield portal, c
        portal.call(c.aclose)
    intake.inbox.close()
    stats = intake.stats()
    print("fuzz outcomes:", stats)
    assert stats["accepted"] > 0 and stats["rejected_schema"] > 0 and stats["rejected_unauthorized"] > 0


@settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(body=bodies, content_type=content_types, url_secret=st.booleans())
def test_every_body_gets_a_2xx_or_4xx_never_a_5xx(client: tuple[Any, httpx.AsyncClient], capsys: Any, caplog: Any,
                                                  body: bytes, content_type: str | None, url_secret: bool) -> None:
    caplog.set_level(logging.WARNING)
    portal, c = client
    headers = {"content-type": content_type} if content_type else {}
    path = "/webhooks/tradingview" + (f"/{SECRET}" if url_secret else "")
    r = portal.call(lambda: c.post(path, content=body, headers=headers))
    assert 200 <= r.status_code < 500, (r.status_code, r.text, body)
    answer = r.json()
    assert ("status" in answer) if r.status_code == 200 else ("error" in answer and "message" in answer and answer.get("field"))
    logged = "".join(capsys.readouterr()) + "".join(rec.getMessage() for rec in caplog.records if rec.levelno >= logging.ERROR or rec.exc_info)
    caplog.clear()
    assert "Traceback" not in logged and "[error" not in logged and "\"level\": \"error\"" not in logged, logged[-2000:]
