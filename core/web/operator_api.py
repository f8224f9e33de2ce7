"""Actions a local operator takes through the running kernel: signals, transfers, drift acks.

They are ordinary dashboard actions (token check, audit entry) that also accept the local admin
token of :mod:`hrkernel.web.local_admin`, which is how ``hrkernel signal``, ``hrkernel ledger
deposit|withdraw`` and ``hrkernel reconcile --ack`` reach a running kernel: the orders database is
held by the kernel's process, so commands go through it instead of around it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hrkernel.web.adapters import NotConfigured, find
from hrkernel.web.api import Endpoint, _body, run_action, state_of


class TransferBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    exchange: str
    currency: str
    amount: str
    reason: str


class AckBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    who: str = "operator"


def read_signal_outcomes(host: Any, limit: int = 50) -> list[dict[str, Any]] | None:
    """``signals``: the outcome of each recent signal (accepted / ordered / refused and why)."""
    signals = find(host, "signals")
    table = getattr(signals, "outcomes", None) if signals is not None else None
    if table is None:
        return None
    return [msgspec.to_builtins(o) for o in table.recent(limit)]


async def signal_outcomes(request: Request) -> Response:
    from hrkernel.web.api import _int_param, area, error

    try:
        limit = _int_param(request, "limit", 50, 1, 1000)
    except ValueError as exc:
        return error(400, "bad_request", str(exc))
    return area(read_signal_outcomes(state_of(request).host, limit), "signals")


async def strategy_positions(request: Request) -> Response:
    from hrkernel.web.api import area
    from hrkernel.web.positions_view import read_strategy_positions

    return area(await read_strategy_positions(state_of(request).host), "positions")


def _orders(request: Request) -> Any:
    orders = find(state_of(request).host, "orders")
    if orders is None or getattr(orders, "pipeline", None) is None:
        raise NotConfigured("no order pipeline runs in this kernel (configure an [exchanges.<id>])")
    return orders


async def submit_signal(request: Request) -> Response:
    async def do() -> Any:
        signals = find(state_of(request).host, "signals")
        if signals is None:
            raise NotConfigured("no signal intake runs in this kernel (configure an [exchanges.<id>])")
        raw = await request.body()
        try:
            payload = msgspec.json.decode(raw or b"{}")
        except msgspec.DecodeError as exc:
            raise ValueError(f"request body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise ValueError("request body: expected a JSON object with the signal's fields")
        response: JSONResponse = await signals.intake.submit(payload)
        body = msgspec.json.decode(bytes(response.body))
        if response.status_code >= 400:
            field = f" ({body['field']})" if body.get("field") else ""
            raise ValueError(f"{body.get('message', body)}{field}")
        return body

    return await run_action(request, "signal", "signals", do)


def _transfer(withdraw: bool) -> Any:
    async def handler(request: Request) -> Response:
        from hrkernel.orders.operator import book_transfer

        async def do() -> Any:
            body = await _body(request, TransferBody)
            try:
                amount = Decimal(body.amount)
            except InvalidOperation:
                raise ValueError(f"amount: not a decimal number: {body.amount!r}") from None
            booked = await book_transfer(_orders(request).pipeline, body.exchange, body.currency, amount,
                                         body.reason, withdraw=withdraw)
            return msgspec.to_builtins(booked)

        return await run_action(request, "ledger_withdraw" if withdraw else "ledger_deposit", "ledger", do)
    handler.__name__ = "ledger_withdraw" if withdraw else "ledger_deposit"
    return handler


async def ack_drift(request: Request) -> Response:
    from hrkernel.orders.operator import acknowledge_drift

    async def do() -> Any:
        body = await _body(request, AckBody)
        recon = getattr(_orders(request), "reconciliation", None)
        if recon is None:
            raise NotConfigured("reconciliation has not started yet")
        halted = "drift" in recon.pipeline.halts
        booked = await acknowledge_drift(recon, body.who)
        return {"booked": msgspec.to_builtins(booked), "was_halted": halted}

    return await run_action(request, "drift_ack", "reconciliation", do)


_TRANSFER = {"type": "object", "additionalProperties": False, "required": ["exchange", "currency", "amount", "reason"],
             "properties": {"exchange": {"type": "string"}, "currency": {"type": "string"},
                            "amount": {"type": "string"}, "reason": {"type": "string"}}}

OPERATOR_ENDPOINTS = [
    Endpoint("/api/positions", "GET", strategy_positions,
             "Each strategy's position: amount, value at the book's mid, P&L from the ledger's fills"),
    Endpoint("/api/signals", "GET", signal_outcomes, "Recent signals and their outcome: accepted, ordered (with the order), refused (why)",
             params=[{"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}]),
    Endpoint("/api/signals", "POST", submit_signal,
             "Submit a signal (the webhook's fields, without its secret) through the signal intake",
             tag="action", action=True, body={"type": "object"}),
    Endpoint("/api/ledger/deposit", "POST", _transfer(False),
             "Book a deposit into an exchange account (a paper account is credited too)",
             tag="action", action=True, body=_TRANSFER),
    Endpoint("/api/ledger/withdraw", "POST", _transfer(True),
             "Book a withdrawal from an exchange account (a paper account is debited too)",
             tag="action", action=True, body=_TRANSFER),
    Endpoint("/api/reconcile/ack", "POST", ack_drift,
             "Acknowledge balance drift: book it as an adjustment and lift the drift halt",
             tag="action", action=True,
             body={"type": "object", "additionalProperties": False, "properties": {"who": {"type": "string"}}}),
]
