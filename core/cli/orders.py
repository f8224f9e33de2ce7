"""``hrkernel orders list|show ID|cancel-all`` and ``hrkernel reconcile [--dry-run] [--ack]``.

``orders cancel-all`` asks the *running* kernel, through its dashboard's token-protected action
``POST /api/orders/cancel-all``, so the leader that owns the orders does the cancelling (fenced
by its lease) and the action lands in the kernel's audit log like any dashboard action.

They open the orders DuckDB file under the data directory (``[orders] db_file``). DuckDB lets one
process hold a database file at a time: while ``hrkernel run`` holds it these commands say so;
``--ack`` then leaves an acknowledgement file the running kernel picks up within a second.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import msgspec

from hrkernel import logging as hrlogging
from hrkernel.cli.common import (
    EXIT_FAILURE,
    build,
    config_argument,
    discover,
    fail,
    fmt_amount,
    load,
    load_sections,
    pick_config,
    required_config,
)
from hrkernel.orders.component import ACK_FILE


def _paths(config: str | None, data_dir: str | None) -> tuple[Path, Path]:
    from hrkernel.orders.config import OrdersSection

    if config:
        loaded = load_sections(config, "orders")
        base = Path(data_dir or loaded.config.kernel.data_dir)
        orders = getattr(loaded.config, "orders", None) or OrdersSection()
        return base, base / orders.db_file
    base = Path(data_dir or ".hrkernel")
    return base, base / OrdersSection().db_file


def _open(db: Path, *, read_only: bool = True, in_use_ok: bool = False) -> Any:
    """A connection, or (``in_use_ok``) None while a running kernel holds the file."""
    import duckdb

    if not db.exists():
        fail(f"no orders database at {db}", EXIT_FAILURE)
    try:
        return duckdb.connect(str(db), read_only=read_only)
    except duckdb.IOException as exc:
        if in_use_ok:
            return None
        fail(f"{db} is in use (is `hrkernel run` running?): {exc}", EXIT_FAILURE)


_data_dir_option = click.option("--data-dir", "data_dir", type=click.Path(file_okay=False),
                                help="data directory (default: the config's, else .hrkernel)")


@click.group()
def orders() -> None:
    """The order journal: list orders, show one with its full history; emergency cancel-all."""


@orders.command("list")
@config_argument
@_data_dir_option
@click.option("--open", "only_open", is_flag=True, help="only orders not in a terminal state")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def list_orders(config_arg: str | None, config_opt: str | None, data_dir: str | None, only_open: bool,
                limit: int, as_json: bool) -> None:
    """Orders, oldest first: client order id, state, exchange, symbol, side, amount, price, filled.

    While `hrkernel run` holds the database, the running kernel is asked instead."""
    from hrkernel.orders.journal import NON_TERMINAL, OrderJournal

    base, db = _paths(pick_config(config_arg, config_opt), data_dir)
    con = _open(db, in_use_ok=True)
    if con is None:
        rows = _orders_from_kernel(base, db, limit)
        if only_open:
            rows = [r for r in rows if r["state"] in {s.value for s in NON_TERMINAL}]
    else:
        journal = OrderJournal.reader(con)
        rows = [msgspec.to_builtins(r) for r in
                journal.query(states=NON_TERMINAL if only_open else None, limit=limit)]
    if as_json:
        click.echo(msgspec.json.encode(rows).decode())
        return
    if not rows:
        click.echo("no orders")
    for r in rows:
        flag = " UNRESOLVED" if r.get("unresolved") else ""
        reason = f"  ({r['reason']})" if r.get("reason") else ""
        price = fmt_amount(r["price"]) if r.get("price") is not None else "market"
        click.echo(f"{r['client_order_id']}  {r['state']:<16} {r['exchange']}:{r['symbol']} {r['side']} "
                   f"{fmt_amount(r['amount'])} @ {price} filled {fmt_amount(r['filled_amount'])} "
                   f"attempts {r['attempts']}{flag}{reason}")


def _orders_from_kernel(base: Path, db: Path, limit: int) -> list[dict[str, Any]]:
    from hrkernel.cli.kernel_client import KernelClient, KernelRefused, NoKernel

    try:
        body = KernelClient(base).get(f"/api/orders?limit={min(limit, 1000)}")
    except (NoKernel, KernelRefused) as exc:
        fail(f"{db} is in use and the running kernel could not be asked: {exc}", EXIT_FAILURE)
    data = body.get("data") or {}
    return list(data.get("orders") or [])


@orders.command("show")
@click.argument("order_id")
@config_argument
@_data_dir_option
@click.option("--json", "as_json", is_flag=True)
def show_order(order_id: str, config_arg: str | None, config_opt: str | None, data_dir: str | None,
               as_json: bool) -> None:
    """One order (by client order id, signal id or exchange order id) with its full history."""
    from hrkernel.orders.journal import OrderJournal

    _, db = _paths(pick_config(config_arg, config_opt), data_dir)
    journal = OrderJournal.reader(_open(db))
    rec = journal.get(order_id) or journal.by_signal(order_id)
    if rec is None:
        match = [r for r in journal.query(limit=1_000_000) if r.exchange_order_id == order_id]
        rec = match[0] if match else None
    if rec is None:
        fail(f"no order {order_id!r} in {db}", EXIT_FAILURE)
    history = journal.history(rec.client_order_id)
    if as_json:
        click.echo(json.dumps({"order": msgspec.to_builtins(rec), "history": msgspec.to_builtins(history)}))
        return
    for field in rec.__struct_fields__:
        click.echo(f"{field:>18}: {getattr(rec, field)}")
    click.echo("history:")
    for e in history:
        extra = f" exchange_id={e.exchange_order_id}" if e.exchange_order_id else ""
        click.echo(f"  {e.at.isoformat()}  {e.state:<16} attempt={e.attempt} fence={e.fencing_token} "
                   f"filled={e.filled_amount}{extra}" + (f"  ({e.reason})" if e.reason else ""))


@orders.command("cancel-all")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--reason", default="hrkernel orders cancel-all", show_default=True, help="recorded in the audit log")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--json", "as_json", is_flag=True)
def cancel_all(config: str, reason: str, yes: bool, as_json: bool) -> None:
    """Emergency: cancel every open order the running kernel placed (needs [dashboard] token).

    The running kernel's dashboard (``[dashboard] host``/``port``) does it with its lease; the
    token is the config's ``[dashboard] token``. Orders placed by hand on the same account are
    left alone. Exit 1 when the kernel cannot be reached, refuses, or some order was not cancelled.
    """
    import httpx

    loaded = load(config)
    dash = loaded.config.dashboard
    if not dash.enabled or not dash.port:
        fail("cancel-all talks to the running kernel's dashboard: set [dashboard] enabled = true and a fixed port")
    if dash.token is None:
        fail("cancel-all needs [dashboard] token (the same token the running kernel uses)")
    if not yes and not as_json:
        click.confirm("Cancel every open order this kernel placed?", abort=True)
    host = "127.0.0.1" if dash.host in ("0.0.0.0", "") else dash.host
    url = f"http://{host}:{dash.port}/api/orders/cancel-all"
    try:
        response = httpx.post(url, json={"reason": reason}, headers={"Authorization": f"Bearer {dash.token}"}, timeout=120)
    except httpx.HTTPError as exc:
        fail(f"no running kernel answered at {url} ({type(exc).__name__}: {exc})", EXIT_FAILURE)
    try:
        body = response.json()
    except ValueError:
        fail(f"{url} answered {response.status_code} with a body that is not JSON", EXIT_FAILURE)
    if response.status_code != 200:
        fail(f"cancel-all refused ({response.status_code}): {body.get('detail', body)}", EXIT_FAILURE)
    result = body["result"]
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"cancelled {result['done']}, already closed {result['already_closed']}, failed {result['failed']}")
        for problem in result.get("problems", []):
            click.echo(f"  {problem}")
    if result["failed"]:
        raise SystemExit(EXIT_FAILURE)


@click.command()
@required_config
@click.option("--dry-run", is_flag=True, help="compare and report; change nothing (no cancel, adjust, journal)")
@click.option("--ack", is_flag=True, help="acknowledge balance drift: book it as an adjusting transaction and "
              "lift the drift halt (through the running kernel if there is one)")
@click.option("--json", "as_json", is_flag=True)
def reconcile(config: str, dry_run: bool, ack: bool, as_json: bool) -> None:
    """Compare the exchanges with journal and ledger (open orders, orphans, fills, balance drift)."""
    import anyio

    base, db = _paths(config, None)
    if ack:
        _acknowledge(base, db, as_json)
        return
    loaded = load(config)
    # Logs (the adapter's, reconciliation's) go to stderr: stdout is the report, pure JSON with --json.
    hrlogging.configure(loaded.config.logging.level, loaded.config.logging.format, loaded.secrets, stream=sys.stderr)
    kernel = build(loaded, discover(loaded, quiet=True))
    reports = anyio.run(_reconcile_with_kernel, kernel, db, dry_run)
    if as_json:
        click.echo(msgspec.json.encode(reports).decode())
        return
    for rep in reports:
        click.echo(f"{rep.exchange}: {'DRY RUN ' if rep.dry_run else ''}open={len(rep.open_orders)} "
                   f"orphans={len(rep.orphans)} changed={len(rep.changed)} late_fills={rep.late_fills}")
        for o in rep.orphans:
            click.echo(f"  orphan {o.exchange_id} {o.symbol} {o.side} {o.amount} @ {o.price}: {o.action}")
        for c in rep.changed:
            click.echo(f"  order {c.client_order_id}: {c.before} -> {c.after} {c.note}")
        for d in rep.drift:
            click.echo(f"  drift {d.currency}: exchange {d.exchange_total} ledger {d.ledger_total} "
                       f"({d.drift:+}, tolerance {d.tolerance}): {d.action}")
        for text in rep.discrepancies:
            click.echo(f"  discrepancy: {text}")
        if rep.clean:
            click.echo("  clean")


def _acknowledge(base: Path, db: Path, as_json: bool) -> None:
    """Book the drift the last reconciliation alerted as adjustments and lift the drift halt:
    through the running kernel when there is one, else in the orders database directly."""
    from hrkernel.cli.kernel_client import KernelClient, KernelRefused, NoKernel

    try:
        result = KernelClient(base).post("/api/reconcile/ack", {"who": "hrkernel reconcile --ack"})
        booked, where = result["booked"], "by the running kernel"
    except KernelRefused as exc:
        fail(f"refused by the kernel ({exc.status}): {exc.detail}", EXIT_FAILURE)
    except NoKernel:
        booked, where = _acknowledge_offline(base, db), f"in {db}"
    if as_json:
        click.echo(json.dumps({"booked": booked}))
        return
    if booked is None:
        click.echo(f"the orders database is in use; acknowledgement left in {base / ACK_FILE} for the "
                   "running kernel (it books the drift it alerted, if any, within a second)")
    elif not booked:
        click.echo("no drift to acknowledge")
    for b in booked or []:
        click.echo(f"booked {where}: {b['exchange']} {b['currency']} {Decimal(b['amount']):+} "
                   f"(adjusting transaction {b['tx_id']})")


def _acknowledge_offline(base: Path, db: Path) -> list[dict[str, Any]] | None:
    """With no kernel running: book the alerted drift of each exchange's latest stored report and
    store that report again with the drift marked acknowledged (a second --ack finds nothing)."""
    import duckdb

    from hrkernel.ledger import Ledger

    if not db.exists():
        return []
    try:
        con = duckdb.connect(str(db))
    except duckdb.IOException:
        base.mkdir(parents=True, exist_ok=True)
        (base / ACK_FILE).write_text("acknowledged\n")
        return None
    booked: list[dict[str, Any]] = []
    try:
        rows = con.execute("SELECT id, exchange, report FROM reconcile_reports WHERE NOT dry_run "
                           "AND id IN (SELECT max(id) FROM reconcile_reports WHERE NOT dry_run GROUP BY exchange)"
                           ).fetchall()
        ledger = Ledger(con)
        for _id, exchange, raw in rows:
            report = json.loads(raw)
            changed = False
            for d in report.get("drift", []):
                if d.get("action") != "alerted":
                    continue
                reason = (f"drift acknowledged by hrkernel reconcile --ack: exchange {d['exchange_total']} "
                          f"vs ledger {d['ledger_total']} {d['currency']}")
                tx_id = ledger.adjust(exchange, d["currency"], Decimal(str(d["drift"])), reason=reason)
                booked.append({"exchange": exchange, "currency": d["currency"], "amount": str(d["drift"]),
                               "kind": "adjustment", "reason": reason, "tx_id": tx_id})
                d["action"] = "acknowledged"
                changed = True
            if changed:
                con.execute("INSERT INTO reconcile_reports SELECT (SELECT max(id) + 1 FROM reconcile_reports), "
                            "exchange, now(), dry_run, clean, ? FROM reconcile_reports WHERE id = ?",
                            [json.dumps(report), _id])
    except duckdb.CatalogException:
        return []  # never reconciled: nothing to acknowledge
    finally:
        con.close()
    return booked


async def _reconcile_with_kernel(kernel: Any, db: Path, dry_run: bool) -> list[Any]:
    import duckdb

    from hrkernel.ledger import Ledger
    from hrkernel.orders.journal import OrderJournal
    from hrkernel.orders.pipeline import TransactionVerificationPipeline
    from hrkernel.orders.reconcile import StateReconciliation

    orders_cfg = kernel.config.orders
    exchanges = {item.id: kernel.get(f"exchange:{item.id}") for item in kernel.plugin_config.exchanges}
    if not exchanges:
        fail("no [exchanges.*] configured: nothing to reconcile")
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(db))
    except duckdb.IOException as exc:
        fail(f"{db} is in use (is `hrkernel run` running? it reconciles by itself): {exc}", EXIT_FAILURE)
    started = []
    try:
        async with anyio_task_group() as tg:
            for comp in exchanges.values():
                await comp.start(tg)
                started.append(comp)
            pipeline = TransactionVerificationPipeline(
                exchanges={k: v.obj for k, v in exchanges.items()}, journal=OrderJournal(con), ledger=Ledger(con),
                config=orders_cfg)
            reports = await StateReconciliation(pipeline).reconcile_all(dry_run=dry_run)
            for comp in reversed(started):
                await comp.stop()
            started.clear()
            tg.cancel_scope.cancel()
        return reports
    finally:
        con.close()


def anyio_task_group() -> Any:
    import anyio

    return anyio.create_task_group()
