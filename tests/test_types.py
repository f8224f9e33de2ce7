"""The public value types: amounts and durations are read from ASCII text, whole."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hrkernel.config import load_config_text
from hrkernel.errors import ConfigError
from hrkernel.types import Amount, Duration, SignedAmount, parse_decimal_text


@pytest.mark.parametrize("text", ["١٢٣", "１２３", "۱۲۳", "1_000", "0.5\n", "NaN", "Infinity", "-inf", "", " ", "1e", "."])
def test_amounts_are_ascii_decimal_text_only(text: str) -> None:
    with pytest.raises(ValueError):
        parse_decimal_text(text)
    with pytest.raises(ValueError):
        Amount.parse(text)
    with pytest.raises(ValueError):
        SignedAmount.parse(text)


@pytest.mark.parametrize(("text", "value"), [("0.5", "0.5"), (" 12 ", "12"), ("-1.5", "-1.5"), ("1e-8", "1E-8"), (".5", "0.5"), ("5.", "5")])
def test_ascii_decimal_text_parses_exactly(text: str, value: str) -> None:
    assert parse_decimal_text(text) == Decimal(value)


@pytest.mark.parametrize("text", ["５s", "٥s", "5s\n", "5 s\n"])
def test_durations_are_ascii_and_whole(text: str) -> None:
    with pytest.raises(ValueError):
        Duration.parse(text)


def test_a_config_amount_in_other_digits_is_an_error_naming_its_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text('[orders]\nmax_price_deviation = "٠.١"\nmax_notional = { IRT = "１２３" }\n', environ={})
    text = str(caught.value)
    assert "orders.max_price_deviation" in text and "orders.max_notional" in text, text
