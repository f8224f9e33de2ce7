from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from hrkernel.bus.events import SignalAction
from hrkernel.signals.normalize import PayloadError, build_signal, flatten, parse_alertatron

NOW = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def build(body: dict, **kw: object):  # type: ignore[no-untyped-def, type-arg]
    args = {"exchange": "nobitex", "received_at": NOW, "symbol_map": {}, "markets": [], "dedupe_bucket": 60.0}
    args.update(kw)
    return build_signal(flatten(body), **args)  # type: ignore[arg-type]


def test_recommended_shape_is_normalised_exactly() -> None:
    s = build({"ticker": "NOBITEX:BTCIRT", "action": "buy", "amount": "0.0015", "order_type": "limit",
               "price": "6500000000", "strategy": "ema-cross", "signal_id": "42", "time": "2026-03-01T12:00:00Z"})
    assert (s.symbol, s.action, s.amount, s.percent, s.order_type, s.price) == (
        "BTCIRT", SignalAction.BUY, Decimal("0.0015"), None, "limit", Decimal("6500000000"))
    assert s.signal_id == "ema-cross:42"
    assert s.time == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_3commas_shape() -> None:
    s = build({"secret": "x", "max_lag": "300", "timestamp": "2026-03-01T12:00:00Z", "trigger_price": "65000.5",
               "tv_exchange": "BINANCE", "tv_instrument": "BTCUSDT", "action": "sell", "bot_uuid": "b-1",
               "strategy_info": {"market_position": "flat"}, "order": {"amount": "0.25", "currency_type": "base"}})
    assert (s.symbol, s.action, s.amount, s.price, s.strategy) == ("BTCUSDT", SignalAction.SELL, Decimal("0.25"), Decimal("65000.5"), "b-1")


def test_traderspost_shape_with_json_numbers() -> None:
    s = build({"ticker": "BTCIRT", "action": "buy", "signalPrice": "143.12", "quantity": "1",
               "takeProfit": {"percent": 10}, "stopLoss": {"type": "stop", "percent": 5}})
    assert (s.amount, s.price, s.order_type) == (Decimal("1"), Decimal("143.12"), "market")


def test_alerts_processor_shape_with_percent_size_and_direction() -> None:
    s = build({"stub": "dev", "direction": "short", "symbol": "ETH-IRT", "size": "50%"})
    assert (s.symbol, s.action, s.amount, s.percent) == ("ETHIRT", SignalAction.SELL, None, Decimal("50"))
    assert build({"direction": "close", "symbol": "ETHIRT"}).action == SignalAction.CLOSE


def test_mqtt_bridge_data_object_is_merged() -> None:
    s = build({"data": {"strategy-order-action": "buy", "strategy-order-price": "10", "ticker": "BTCIRT",
                        "strategy-id": "fibrsi", "heartbeat": False}, "key": "k"})
    assert (s.action, s.price, s.strategy) == (SignalAction.BUY, Decimal("10"), "fibrsi")


def test_alertatron_text_command() -> None:
    parsed = parse_alertatron("MyKeys(BTCIRT) { market(side=buy, amount=0.01); }\n#bot")
    assert parsed == {"secret": "MyKeys", "ticker": "BTCIRT", "order_type": "market", "side": "buy", "amount": "0.01"}
    s = build(parsed)  # type: ignore[arg-type]
    assert (s.action, s.amount) == (SignalAction.BUY, Decimal("0.01"))


def test_symbol_map_and_unknown_ticker() -> None:
    assert build({"ticker": "BINANCE:BTCUSDT", "action": "buy"}, symbol_map={"BTCUSDT": "BTCIRT"}).symbol == "BTCIRT"
    with pytest.raises(PayloadError) as err:
        build({"ticker": "DOGEIRT", "action": "buy"}, markets=["BTCIRT"])
    assert err.value.field == "ticker" and err.value.reason == "unknown_ticker"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "buy"}, "ticker"),
        ({"ticker": "BTCIRT"}, "action"),
        ({"ticker": "BTCIRT", "action": "hold"}, "action"),
        ({"ticker": "BTCIRT", "action": "buy", "amount": "abc"}, "amount"),
        ({"ticker": "BTCIRT", "action": "buy", "amount": ["1"]}, "amount"),
        ({"ticker": "BTCIRT", "action": "buy", "amount": "-1"}, "amount"),
        ({"ticker": "BTCIRT", "action": "buy", "amount": "1e999999"}, "amount"),
        ({"ticker": "BTCIRT", "action": "buy", "price": "1e-99"}, "price"),
        ({"ticker": "BTCIRT", "action": "buy", "percent": "150"}, "percent"),
        ({"ticker": "BTCIRT", "action": "buy", "amount": "1", "percent": "5"}, "amount"),
        ({"ticker": "BTCIRT", "action": "buy", "order_type": "limit"}, "price"),
        ({"ticker": "BTCIRT", "action": "buy", "order_type": "stop"}, "order_type"),
        ({"ticker": "BTCIRT", "action": "buy", "time": "yesterday"}, "time"),
        ({"ticker": 12, "action": "buy"}, "ticker"),
        ({"ticker": "BTCIRT", "action": "buy", "signal_id": "has space"}, "signal_id"),
    ],
)
def test_schema_violations_name_the_field(body: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(PayloadError) as err:
        build(body)
    assert err.value.field == field


def test_derived_signal_id_is_stable_within_a_time_bucket_and_differs_across() -> None:
    body = {"ticker": "BTCIRT", "action": "buy", "amount": "1"}
    a = build(body, received_at=datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC))
    b = build(body, received_at=datetime(2026, 3, 1, 12, 0, 59, tzinfo=UTC))
    c = build(body, received_at=datetime(2026, 3, 1, 12, 1, 0, tzinfo=UTC))
    d = build({**body, "amount": "2"}, received_at=datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC))
    assert a.signal_id == b.signal_id
    assert len({a.signal_id, c.signal_id, d.signal_id}) == 3
