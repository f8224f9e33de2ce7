"""Whatever bytes arrive, the adapter's decoding ends in a value or a typed ExchangeError."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hrkernel.exchange import errors as ex
from hrkernel_nobitex import wire

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12) | st.sampled_from(
    ["0E-10", "market", "Active", "Done", "Canceled", "BTC-RLS", "Bitcoin", "﷼", "failed", "ok", "NotFound"])
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["status", "code", "message", "error", "detail", "backOff", "updatedStatus", "order", "orders",
                     "id", "type", "price", "amount", "matchedAmount", "market", "srcCurrency", "dstCurrency",
                     "created_at", "clientOrderId", "execution", "fee", "averagePrice", "trades", "orderId",
                     "timestamp", "wallets", "currency", "balance"]), inner, max_size=8), max_leaves=30)
bodies = st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode())
statuses = st.sampled_from([200, 201, 400, 401, 403, 404, 422, 429, 500, 502, 503, 504])


@settings(max_examples=400, deadline=None)
@given(status=statuses, body=bodies)
def test_any_answer_becomes_a_value_or_a_typed_error(status, body):
    error = wire.error_for(status, body, "status")
    assert error is None or isinstance(error, ex.ExchangeError)
    if error is not None:
        return
    for kind, convert in ((wire.OrderReply, lambda r: wire.order_from_wire(r.order, "status")),
                          (wire.TradesReply, lambda r: [wire.fill_from_wire(t) for t in r.trades]),
                          (wire.WalletsReply, lambda r: [wire.balance_from_wire(w) for w in r.wallets])):
        try:
            convert(wire.decode(body, kind, "status", status))
        except ex.ExchangeError:
            pass


valid_order = {"id": 25, "type": "buy", "execution": "Limit", "status": "Active", "market": "BTC-RLS",
               "srcCurrency": "Bitcoin", "dstCurrency": "﷼", "price": "520000000", "amount": "0.6",
               "matchedAmount": "0E-10", "unmatchedAmount": "0.6", "averagePrice": "0", "fee": 0,
               "created_at": "2018-11-28T11:36:13.592827+00:00", "clientOrderId": "order1"}


@settings(max_examples=400, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(sorted(valid_order)), scalars, max_size=4),
       dropped=st.sets(st.sampled_from(sorted(valid_order)), max_size=3))
def test_a_documented_order_with_odd_fields_decodes_or_is_malformed(changes, dropped):
    order = {k: v for k, v in {**valid_order, **changes}.items() if k not in dropped}
    body = json.dumps({"status": "ok", "order": order}).encode()
    assert wire.error_for(200, body, "status") is None
    try:
        result = wire.order_from_wire(wire.decode(body, wire.OrderReply, "status").order, "status")
    except ex.MalformedResponseError as exc:
        assert exc.raw
    else:
        assert result.exchange_id and result.symbol
