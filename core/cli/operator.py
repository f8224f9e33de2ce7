"""``hrkernel signal`` and ``hrkernel ledger deposit|withdraw``: an operator acting on the
running kernel from its own machine (see :mod:`hrkernel.cli.kernel_client`)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from hrkernel.cli.common import (
    EXIT_FAILURE,
    config_argument,
    fail,
    fmt_amount,
    load_sections,
    pick_config,
)
from hrkernel.cli.kernel_client import KernelClient, KernelRefused, NoKernel


def _client(config_arg: str | None, config_opt: str | None) -> KernelClient:
    path = pick_config(config_arg, config_opt)
    assert path is not None
    if not Path(path).exists():
        fail(f"{path}: file not found (give the kernel's config: hrkernel ... CONFIG)")
    loaded = load_sections(path)
    return KernelClient(loaded.config.kernel.data_dir)


def _call(client: KernelClient, path: str, body: dict[str, Any]) -> Any:
    try:
        return client.post(path, body)
    except NoKernel as exc:
        fail(str(exc), EXIT_FAILURE)
    except KernelRefused as exc:
        fail(f"refused by the kernel ({exc.status}): {exc.detail}", EXIT_FAILURE if exc.status >= 409 else 2)


def _decimal(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        if not Decimal(value).is_finite() or Decimal(value) <= 0:
            raise InvalidOperation
    except InvalidOperation:
        fail(f"{name}: expected a positive decimal number, found {value!r}")
    return value


def _looks_like_amount(text: str) -> bool:
    try:
        Decimal(text.removesuffix("%"))
    except InvalidOperation:
        return False
    return True


@click.command()
@click.argument("action", type=click.Choice(["buy", "sell", "close"], case_sensitive=False))
@click.argument("symbol")
@click.argument("amount", required=False)
@config_argument
@click.option("--price", help="limit price (quote currency); without it the order is a market order")
@click.option("--strategy", help="the strategy the signal belongs to (it owns the position it opens)")
@click.option("--id", "signal_id", help="signal id (default: a new one); the same id again is a duplicate")
@click.option("--json", "as_json", is_flag=True, help="print the kernel's answer as JSON")
def signal(action: str, symbol: str, amount: str | None, config_arg: str | None, config_opt: str | None,
           price: str | None, strategy: str | None, signal_id: str | None, as_json: bool) -> None:
    """Send a signal to the running kernel: ACTION SYMBOL [AMOUNT] [CONFIG].

    It goes through the same intake as the TradingView webhook (same validation, same dedupe by
    id), authenticated with the local admin token under the config's data_dir. AMOUNT is in the
    base currency (0.01 BTC) or a percentage (25%); a close without AMOUNT closes the strategy's
    position. Follow it with `hrkernel signals` or `hrkernel orders list`.
    """
    if amount is not None and config_arg is None and not _looks_like_amount(amount):
        amount, config_arg = None, amount  # `hrkernel signal close BTCIRT hr.toml`
    if amount is not None and not amount.endswith("%"):
        _decimal("AMOUNT", amount)
    if amount is None and action.lower() != "close":
        fail("AMOUNT is required for buy and sell (e.g. 0.01, or 25%)")
    body: dict[str, Any] = {"ticker": symbol.upper(), "action": action.lower(),
                            "id": signal_id or f"cli-{uuid.uuid4().hex[:16]}",
                            "time": datetime.now(UTC).isoformat()}
    if amount is not None:
        body["amount"] = amount
    if price is not None:
        body["price"] = _decimal("--price", price)
        body["order_type"] = "limit"
    if strategy:
        body["strategy"] = strategy
    result = _call(_client(config_arg, config_opt), "/api/signals", body)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"signal {result.get('signal_id')}: {result.get('status')}")


@click.group()
def ledger() -> None:
    """Balance changes the operator makes, recorded in the ledger with a reason."""


def _transfer_command(withdraw: bool) -> click.Command:
    verb = "withdraw" if withdraw else "deposit"

    @click.command(verb)
    @click.argument("exchange")
    @click.argument("currency")
    @click.argument("amount")
    @config_argument
    @click.option("--reason", required=True, help="why (kept with the ledger transaction)")
    @click.option("--json", "as_json", is_flag=True)
    def command(exchange: str, currency: str, amount: str, config_arg: str | None, config_opt: str | None,
                reason: str, as_json: bool) -> None:
        _decimal("AMOUNT", amount)
        result = _call(_client(config_arg, config_opt), f"/api/ledger/{verb}",
                       {"exchange": exchange, "currency": currency, "amount": amount, "reason": reason})
        if as_json:
            click.echo(json.dumps(result))
            return
        click.echo(f"{result['kind']} booked on {result['exchange']}: {result['amount']} {result['currency']} "
                   f"(transaction {result['tx_id']}: {result['reason']})")

    command.help = (f"Book a {'withdrawal from' if withdraw else 'deposit into'} an exchange account: "
                    "EXCHANGE CURRENCY AMOUNT [CONFIG] --reason TEXT.\n\nThe running kernel records it as a "
                    "ledger transaction, so reconciliation does not take it for drift. On a paper "
                    f"account (type sim) the simulated balance is {'debited' if withdraw else 'credited'} too.")
    return command


ledger.add_command(_transfer_command(False))
ledger.add_command(_transfer_command(True))


@click.command()
@config_argument
@click.option("--status", type=click.Choice(["accepted", "ordered", "refused"]), default=None,
              help="only signals with this outcome")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def signals(config_arg: str | None, config_opt: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """Every signal's outcome, newest first: accepted, ordered (with its order) or refused (why).

    Read from <data_dir>/signals.sqlite, also while the kernel runs."""
    from hrkernel.signals.outcomes import FILE, SignalOutcomes

    path = pick_config(config_arg, config_opt)
    data_dir = Path(load_sections(path).config.kernel.data_dir) if path else Path(".hrkernel")
    db = data_dir / FILE
    if not db.exists():
        fail(f"no signals recorded yet ({db} does not exist)", EXIT_FAILURE)
    table = SignalOutcomes(db, read_only=True)
    try:
        rows = table.recent(limit, status)
    finally:
        table.close()
    if as_json:
        import msgspec

        click.echo(msgspec.json.encode(rows).decode())
        return
    if not rows:
        click.echo("no signals")
    for r in rows:
        when = datetime.fromtimestamp(r.received_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        size = (fmt_amount(r.amount) if r.amount else f"{fmt_amount(r.percent)}%" if r.percent else "all")
        price = f" @ {fmt_amount(r.price)}" if r.price else ""
        strategy = f" [{r.strategy}]" if r.strategy else ""
        outcome = (f"ordered {r.client_order_id}" if r.status == "ordered"
                   else f"refused: {r.reason}" if r.status == "refused" else r.status)
        click.echo(f"{when}  {r.signal_id}  {r.action} {r.symbol} {size}{price}{strategy}  {outcome}")
