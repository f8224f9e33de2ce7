"""The exchange contract's types and errors (hrkernel.exchange)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest

from hrkernel.errors import HrkernelError
from hrkernel.exchange import (
    Exchange,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    PriceLevel,
    Side,
)
from hrkernel.exchange import errors as ex


def test_terminal_states_are_exactly_filled_canceled_rejected():
    assert {s for s in OrderStatus if s.is_terminal} == {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED}


def test_amounts_round_trip_as_exact_decimal_strings_never_floats():
    order = Order(exchange_id="1", client_order_id="c", symbol="BTCIRT", side=Side.BUY, type=OrderType.LIMIT,
                  status=OrderStatus.OPEN, amount=Decimal("0.100000000000000001"), price=Decimal("5E+9"),
                  filled_amount=Decimal("0.1"), average_price=None, fee=Decimal(0), fee_currency="BTC",
                  created_at=datetime(2026, 1, 1, tzinfo=UTC))
    encoded = msgspec.json.encode(order)
    assert b'"amount":"0.100000000000000001"' in encoded
    assert msgspec.json.decode(encoded, type=Order) == order
    assert order.remaining == Decimal("0.000000000000000001")


def test_requests_reject_floats_and_unknown_sides():
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"symbol": "BTCIRT", "side": "hold", "type": "limit", "amount": "1"}, OrderRequest)
    req = msgspec.json.decode(b'{"symbol":"BTCIRT","side":"sell","type":"market","amount":"0.5"}', type=OrderRequest)
    assert req.amount == Decimal("0.5") and req.price is None and req.client_order_id is None
    assert msgspec.json.decode(b'["1.5","2"]', type=PriceLevel) == PriceLevel(Decimal("1.5"), Decimal(2))


@pytest.mark.parametrize(("kind", "retryable", "trips_breaker"), [
    (ex.AuthenticationError, False, False),
    (ex.InsufficientBalanceError, False, False),
    (ex.InvalidOrderError, False, False),
    (ex.DuplicateClientOrderIdError, False, False),
    (ex.OrderNotFoundError, False, False),
    (ex.OrderNotCancelableError, False, False),
    (ex.RateLimitedError, True, False),
    (ex.ExchangeUnavailableError, True, True),
    (ex.ExchangeTimeoutError, True, True),
    (ex.MalformedResponseError, True, True),
    (ex.UnknownOutcomeError, False, True),
])
def test_each_error_says_whether_to_retry_and_whether_it_trips_a_breaker(kind, retryable, trips_breaker):
    err = kind("x", exchange="nobitex")
    assert isinstance(err, ex.ExchangeError) and isinstance(err, HrkernelError)
    assert (err.retryable, err.counts_as_failure) == (retryable, trips_breaker)


def test_errors_carry_code_message_status_and_a_truncated_raw_body():
    err = ex.InvalidOrderError("refused", exchange="nobitex", code="SmallOrder", exchange_message="Order Validation Failed",
                               status=200, raw=b"y" * 2000, endpoint="place")
    assert str(err) == "nobitex place: refused code=SmallOrder message='Order Validation Failed' http=200"
    assert err.raw is not None and len(err.raw) < 600 and err.raw.endswith("[1488 more chars]")
    assert ex.RateLimitedError("slow", retry_after=12).retry_after == 12
    assert ex.UnknownOutcomeError("?", client_order_id="c1").client_order_id == "c1"


def test_a_plain_object_is_not_an_exchange():
    assert not isinstance(object(), Exchange)
