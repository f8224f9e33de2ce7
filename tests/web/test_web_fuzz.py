"""A standing fuzz of the dashboard's HTTP surface against a running kernel over real HTTP.

Seeded (``derandomize``) and bounded, so CI runs the same requests every time. Each request is a
random mix of method, path (documented, with junk path parameters, or unknown), query
parameters (junk, non-ASCII digits, huge), ``Host``, token and body. Whatever the mix: no 5xx,
every refusal is a JSON ``{"error", "detail"}``, a 400 names the ``field`` it refuses, and the
kernel logs no traceback and no error for any of it.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrkernel.web.api import ENDPOINTS

from .conftest import start_kernel

TOKEN = "web-test-token-123"  # tests/web/conftest.py's kernels
SECRET = "fuzz-webhook-secret"
# The event stream never ends; a fuzzed GET of it would only wait for the client timeout.
PATHS = sorted({e.path for e in ENDPOINTS if e.path != "/api/events"})
QUERY_NAMES = ["limit", "since", "bucket", "check", "x"]

junk = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "0", "-1", "1e400", "nan", "inf", "١٢", "１２", "12\n", " 5", "+5", "+-5", "9" * 40,
                     "0x10", "1_000", "%00", "../../etc/passwd", "feeds", "event_loop_lag", "feed:a", "x" * 300]),
)


def fill(path: str, values: list[str]) -> str:
    """The path with its ``{param}`` placeholders replaced by (URL-quoted) junk."""
    parts = iter(values)
    return re.sub(r"\{[^}]+\}", lambda _: quote(next(parts, ""), safe="") or "x", path)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.integers(0, 5)):
        path = fill(draw(st.sampled_from(PATHS)), draw(st.lists(junk, min_size=2, max_size=2)))
    else:
        path = draw(st.sampled_from(["/nope", "/api", "/api/", "/static/../core/web/api.py", "/static/nope.js",
                                     "/webhooks/tradingview", "/%ff", "//api/status"]))
    method = draw(st.sampled_from(["GET", "GET", "POST", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]))
    params = draw(st.dictionaries(st.sampled_from(QUERY_NAMES), junk, max_size=3))
    headers: dict[str, str] = {}
    host = draw(st.sampled_from([None, "localhost", "evil.example", "[::1]", "127.0.0.1.nip.io"]))
    if host:
        headers["host"] = host
    auth = draw(st.sampled_from([None, f"Bearer {TOKEN}", f"Bearer {TOKEN}x", "Bearer", "Basic abc", "bearer  " + TOKEN]))
    if auth is not None:
        headers["authorization"] = auth
    body = draw(st.one_of(
        st.none(), st.binary(max_size=200),
        st.dictionaries(st.sampled_from(["on", "reason", "target", "note", "who", "x"]),
                        st.one_of(st.booleans(), st.none(), st.integers(), junk), max_size=3).map(lambda d: httpx.Request("POST", "/", json=d).read()),
    ))
    return {"method": method, "path": path, "params": params, "headers": headers, "body": body}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A kernel like tests/web's, with the TradingView webhook on the same listener."""
    running, stop = start_kernel(tmp_path_factory.mktemp("web-fuzz"), f'[webhook]\nenabled = true\nsecret = "{SECRET}"\n')
    try:
        with httpx.Client(base_url=running.url, timeout=10) as c:
            yield c
    finally:
        stop()


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(req=requests())
def test_every_request_gets_an_answer_without_a_5xx_or_a_traceback(client: httpx.Client, capsys: Any, caplog: Any, req: dict[str, Any]) -> None:
    caplog.set_level(logging.WARNING)
    r = client.request(req["method"], req["path"], params=req["params"], headers=req["headers"], content=req["body"])
    where = (req["method"], req["path"], req["params"], req["headers"], r.status_code, r.text[:300])
    probe = req["path"] in ("/readyz", "/livez")  # 503 is their documented "not ready" answer
    assert r.status_code < 500 or (probe and r.status_code == 503), where
    if r.status_code >= 400 and req["method"] != "HEAD" and not probe:
        body = r.json()
        assert isinstance(body.get("error"), str) and isinstance(body.get("detail") or body.get("message"), str), where
        if r.status_code == 400:
            assert body.get("field"), where
    out, err = capsys.readouterr()
    logged = out + err + "\n".join(f"{rec.levelname} {rec.name} {rec.getMessage()}" for rec in caplog.records
                                   if rec.levelno >= logging.ERROR or rec.exc_info)
    caplog.clear()
    for bad in ("Traceback", "Exception in ASGI", "dashboard_read_failed", "[error", '"level": "error"', "ERROR "):
        assert bad not in logged, (where, logged[-3000:])


@pytest.mark.parametrize(("path", "name", "value"), [
    ("/api/orders", "limit", "١٢"), ("/api/audit", "limit", "１２"), ("/api/health/history", "since", "١٢"),
    ("/api/health/history", "since", "nan"), ("/api/health/trend", "bucket", "+-5"), ("/api/orders", "limit", "12\n"),
])
def test_query_numbers_are_ascii_and_a_refusal_names_the_parameter(client: httpx.Client, path: str, name: str, value: str) -> None:
    r = client.get(path, params={name: value})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == name and name in r.json()["detail"]


def test_an_unknown_path_or_method_is_a_json_refusal(client: httpx.Client) -> None:
    missing = client.get("/api/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = client.delete("/api/status")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed" and "GET" in wrong.headers["allow"]


webhook_values = st.one_of(junk, st.none(), st.booleans(), st.integers(), st.floats(), st.sampled_from(
    ["buy", "sell", "close", "BTCIRT", "NOBITEX:BTCIRT", "BTCıRT", "limit", "market", "mar\u212aet", "0.01", "50%", "١٢٣"]))
webhook_keys = st.sampled_from(["ticker", "action", "amount", "percent", "price", "order_type", "strategy", "id",
                                "time", "max_lag", "size", "symbol", "data", "order", "passphrase"])


@st.composite
def webhook_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:
        return draw(st.text(max_size=200)).encode()
    body: dict[str, Any] = {"ticker": "BTCIRT", "action": "buy", "amount": "0.01"} if kind == 2 else {}
    body.update(draw(st.dictionaries(webhook_keys, webhook_values, max_size=4)))
    if draw(st.integers(0, 4)):
        body["secret"] = SECRET
    return json.dumps(body, allow_nan=True).encode()


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=webhook_bodies(), content_type=st.sampled_from(["application/json", "text/plain", None]),
       host=st.sampled_from([None, "hooks.example.com", "evil.example"]))
def test_every_webhook_body_through_the_kernel_gets_a_2xx_or_a_json_4xx_naming_the_field(
        client: httpx.Client, capsys: Any, caplog: Any, body: bytes, content_type: str | None, host: str | None) -> None:
    caplog.set_level(logging.WARNING)
    headers = {k: v for k, v in (("content-type", content_type), ("host", host)) if v}
    r = client.post("/webhooks/tradingview", content=body, headers=headers)
    assert r.status_code < 500 and r.status_code != 403, (r.status_code, r.text, body)  # no Host check on the webhook
    answer = r.json()
    assert ("status" in answer) if r.status_code == 200 else (answer.get("error") and answer.get("message") and answer.get("field")), answer
    out, err = capsys.readouterr()
    logged = out + err + "".join(rec.getMessage() for rec in caplog.records if rec.levelno >= logging.ERROR or rec.exc_info)
    caplog.clear()
    assert "Traceback" not in logged and "[error" not in logged, logged[-3000:]
