"""The client-order-id derivation in docs/orders.md is the code's, written exactly."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hrkernel.orders.pipeline import client_order_id_for

PAGE = Path(__file__).resolve().parents[2] / "docs" / "orders.md"


def test_the_docs_derive_the_client_order_id_exactly_as_the_pipeline_does() -> None:
    text = " ".join(PAGE.read_text().split())
    assert ('`"hr"` followed by the first 30 hex digits of SHA-256 over the UTF-8 bytes of `<exchange id>` + '
            '`"\\x1f"` (the unit separator) + `<signal id>`') in text
    assert "`-:<id>` without a strategy" in text
    for exchange, signal_id in (("nobitex", "-:after-kill"), ("main", "trend:42"), ("x", "tv-" + "a" * 32)):
        by_readme = "hr" + hashlib.sha256((exchange + "\x1f" + signal_id).encode("utf-8")).hexdigest()[:30]
        assert client_order_id_for(exchange, signal_id) == by_readme
