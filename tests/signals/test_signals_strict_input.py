"""Identifiers and amounts are matched whole and in ASCII: no trailing newline, no digits from
other scripts, no letters that only become ASCII through Unicode case folding."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from hrkernel.signals.normalize import PayloadError, build_signal, flatten

NOW = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
VALID = {"ticker": "BTCIRT", "action": "buy", "amount": "0.5"}
SECRET = "s3cret-for-tests"


def build(**fields: Any) -> Any:
    body = {**VALID, **fields}
    return build_signal(flatten(body), exchange="nobitex", received_at=NOW, symbol_map={}, markets=[], dedupe_bucket=60.0)


def rejected_field(**fields: Any) -> str:
    with pytest.raises(PayloadError) as caught:
        build(**fields)
    return caught.value.field


def test_the_valid_body_is_accepted_as_the_baseline() -> None:
    s = build(id="abc", strategy="s-1", time="1772366400")
    assert (s.symbol, s.amount, s.signal_id) == ("BTCIRT", Decimal("0.5"), "s-1:abc")


@pytest.mark.parametrize("field", ["id", "signal_id", "strategy"])
@pytest.mark.parametrize("value", ["abc\n", "abc\r\n", "\nabc"])
def test_an_identifier_with_a_newline_is_refused(field: str, value: str) -> None:
    assert rejected_field(**{field: value}) == field


@pytest.mark.parametrize("field", ["amount", "price", "percent"])
@pytest.mark.parametrize("value", ["١٢٣", "１２３", "۱۲۳", "1_000", "12\n3", "Infinity", "NaN", "0x10"])
def test_an_amount_is_ascii_decimal_only(field: str, value: str) -> None:
    assert rejected_field(**{field: value, **({"amount": None} if field == "percent" else {})}) == field


@pytest.mark.parametrize("value", ["0.5", " 0.5 ", "1e-3", "+2", ".5", 3, 0.25])
def test_ascii_amounts_still_parse(value: Any) -> None:
    assert build(amount=value).amount == Decimal(str(value).strip())


@pytest.mark.parametrize("ticker", ["BTCıRT", "btcırt", "BTCIRT\u00a0", "\u00a0BTCIRT", "ＢＴＣＩＲＴ", "BTCſIRT", "BTC\nIRT"])
def test_a_ticker_is_not_folded_into_ascii(ticker: str) -> None:
    assert rejected_field(ticker=ticker) == "ticker"


def test_a_ticker_is_upper_cased_in_ascii() -> None:
    assert build(ticker="nobitex:btc-irt").symbol == "BTCIRT"


def test_keywords_are_ascii() -> None:
    assert "mar\u212aet".lower() == "market"  # the Kelvin sign folds to "k"
    assert rejected_field(order_type="mar\u212aet") == "order_type"


@pytest.mark.parametrize("value", ["١٧٧٢٣٦٦٤٠٠", "１７７２３６６４００"])
def test_an_epoch_time_in_other_digits_is_refused(value: str) -> None:
    assert rejected_field(time=value) == "time"


@pytest.mark.anyio
@pytest.mark.parametrize(("fields", "field"), [
    ({"id": "abc\n"}, "id"),
    ({"amount": "١٢٣"}, "amount"),
    ({"amount": "１２３"}, "amount"),
    ({"ticker": "BTCıRT"}, "ticker"),
    ({"max_lag": "٣٠٠", "time": datetime.now(UTC).isoformat()}, "max_lag"),
])
async def test_over_http_each_is_a_400_naming_the_field(intake_server: Any, fields: dict[str, str], field: str) -> None:
    async with intake_server() as srv, httpx.AsyncClient(timeout=5) as c:
        r = await c.post(srv.url, json={"secret": SECRET, **VALID, **fields})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert srv.intake.stats()["accepted"] == 0


@pytest.mark.anyio
async def test_a_stalled_webhook_body_gets_408_naming_the_body(intake_server: Any) -> None:
    import anyio

    from hrkernel.types import Duration

    async with intake_server(body_timeout=Duration(0.5)) as srv:
        port = int(srv.url.split(":")[2].split("/")[0])
        stream = await anyio.connect_tcp("127.0.0.1", port)
        head = "POST /webhooks/tradingview HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 80\r\n\r\n"
        await stream.send(head.encode() + b'{"secret": ')  # and then nothing
        answer = b""
        with anyio.fail_after(10):
            while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                answer += await stream.receive()
        await stream.aclose()
    status = int(answer.split()[1])
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert status == 408 and body["error"] == "body_timeout" and body["field"] == "body"
    assert srv.intake.stats()["rejected_body_timeout"] == 1
