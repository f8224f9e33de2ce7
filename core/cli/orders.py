"""``hrkernel orders list|show ID|cancel-all`` and ``hrkernel reconcile [--dry-run] [--ack]``.

``orders cancel-all`` asks the *running* kernel, through its dashboard's token-protected action
``POST /api/orders/cancel-all``, so the leader that owns the orders does the cancelling (fenced
by its lease) and the action lands in the kernel's audit log like any dashboard action.

``orders list|show`` read the order journal (``[orders] journal_file``, SQLite in WAL mode) under
the data directory when no kernel runs. A running kernel holds that file exclusively (SQLite's
``unix-excl`` VFS, so a read-only data dir cannot SIGBUS it through a mapped ``-shm`` file); they
then ask that kernel through its local admin API (``GET /api/journal``, ``GET /api/orders/ID``).
``reconcile`` also needs the ledger (``[orders] db_file``, DuckDB), which one process holds at a
time. While ``hrkernel run`` holds it, ``reconcile --dry-run`` asks the running kernel instead
(its dashboard's ``GET /api/reconcile/dry-run``, on ``[dashboard] host``/``port`` with its token);
``reconcile`` without ``--dry-run`` says so (the running kernel reconciles by itself), and
``--ack`` leaves an acknowledgement file the running kernel picks up within a second.
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


def _paths(config: str | None, data_dir: str | None) -> tuple[Path, Path, Path]:
    """The data dir, the ledger's DuckDB file and the journal file."""
    from hrkernel.orders.config import OrdersSection

    if config:
        loaded = load_sections(config, "orders")
        base = Path(data_dir or loaded.config.kernel.data_dir)
        orders = getattr(loaded.config, "orders", None) or OrdersSection()
    else:
        base, orders = Path(data_dir or ".hrkernel"), OrdersSection()
    return base, base / orders.db_file, base / orders.journal_file


def _open_journal(path: Path) -> Any:
    """The journal file for reading, or None while a running kernel holds it (unix-excl VFS)."""
    import sqlite3

    from hrkernel.orders.journal import OrderJournal
    from hrkernel.orders.journal_store import is_locked

    if not path.exists():
        fail(f"no order journal at {path}", EXIT_FAILURE)
    journal = OrderJournal.reader(path)
    try:
        journal.last_seq()
    except sqlite3.Error as exc:
        journal.close()
        if is_locked(exc):
            return None
        fail(f"cannot read the order journal {path}: {exc}", EXIT_FAILURE)
    return journal


def _ask_kernel(base: Path, path: Path, api: str) -> Any:
    """``api`` of the kernel that holds the journal ``path`` (its local admin URL and token)."""
    from hrkernel.cli.kernel_client import KernelClient, KernelRefused, NoKernel

    try:
        answer = KernelClient(base).get(api)
    except NoKernel as exc:
        fail(f"the order journal {path} is held by another process and no kernel answers for data_dir {base}: "
             f"{exc}", EXIT_FAILURE)
    except KernelRefused as exc:
        if exc.status == 404:
            return None
        fail(f"the running kernel refused {api}: {exc.detail}", EXIT_FAILURE)
    if not answer.get("configured"):
        fail(f"the running kernel has no order pipeline: {answer.get('detail')}", EXIT_FAILURE)
    return answer["data"]


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

    Reads the order journal file when no kernel runs; while `hrkernel run` holds it, asks that
    kernel (its local admin API, `GET /api/journal`)."""
    from hrkernel.orders.journal import NON_TERMINAL

    base, _, path = _paths(pick_config(config_arg, config_opt), data_dir)
    journal = _open_journal(path)
    if journal is None:
        rows = _ask_kernel(base, path, f"/api/journal?limit={limit}&open={1 if only_open else 0}")
    else:
        rows = msgspec.to_builtins(journal.query(states=NON_TERMINAL if only_open else None, limit=limit))
        journal.close()
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


@orders.command("show")
@click.argument("order_id")
@config_argument
@_data_dir_option
@click.option("--json", "as_json", is_flag=True)
def show_order(order_id: str, config_arg: str | None, config_opt: str | None, data_dir: str | None,
               as_json: bool) -> None:
    """One order (by client order id, signal id or exchange order id) with its full history.

    Reads the journal file, or asks the running kernel that holds it (`GET /api/orders/ID`)."""
    from urllib.parse import quote

    base, _, path = _paths(pick_config(config_arg, config_opt), data_dir)
    journal = _open_journal(path)
    found: dict[str, Any] | None = None
    if journal is None:
        found = _ask_kernel(base, path, f"/api/orders/{quote(order_id, safe='')}")
    else:
        rec = journal.get(order_id) or journal.by_signal(order_id) or journal.by_any_exchange_id(order_id)
        if rec is not None:
            found = {"order": msgspec.to_builtins(rec), "history": msgspec.to_builtins(journal.history(rec.client_order_id))}
        journal.close()
    if found is None:
        fail(f"no order {order_id!r} in {path}", EXIT_FAILURE)
    if as_json:
        click.echo(json.dumps(found))
        return
    for field, value in found["order"].items():
        click.echo(f"{field:>18}: {value}")
    click.echo("history:")
    for e in found["history"]:
        extra = f" exchange_id={e['exchange_order_id']}" if e.get("exchange_order_id") else ""
        click.echo(f"  {e['at']}  {e['state']:<16} attempt={e['attempt']} fence={e['fencing_token']} "
                   f"filled={e['filled_amount']}{extra}" + (f"  ({e['reason']})" if e.get("reason") else ""))


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
@click.option("--dry-run", is_flag=True, help="compare and report; change nothing (no cancel, adjust, journal); "
              "with `hrkernel run` up, asks the running kernel (its dashboard)")
@click.option("--ack", is_flag=True, help="acknowledge balance drift: book it as an adjusting transaction and "
              "lift the drift halt (through the running kernel if there is one)")
@click.option("--json", "as_json", is_flag=True)
def reconcile(config: str, dry_run: bool, ack: bool, as_json: bool) -> None:
    """Compare the exchanges with journal and ledger (open orders, orphans, fills, balance drift)."""
    import anyio

    base, db, journal_path = _paths(config, None)
    if ack:
        _acknowledge(base, db, as_json)
        return
    loaded = load(config)
    # Logs (the adapter's, reconciliation's) go to stderr: stdout is the report, pure JSON with --json.
    hrlogging.configure(loaded.config.logging.level, loaded.config.logging.format, loaded.secrets, stream=sys.stderr)
    if dry_run and _in_use(db):
        reports = _dry_run_by_running_kernel(loaded, db)
    else:
        kernel = build(loaded, discover(loaded, quiet=True))
        reports = anyio.run(_reconcile_with_kernel, kernel, db, journal_path, dry_run)
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


def _in_use(db: Path) -> bool:
    """Another process (``hrkernel run``) holds the ledger's DuckDB file."""
    import duckdb

    if not db.exists():
        return False
    try:
        duckdb.connect(str(db), read_only=True).close()
    except duckdb.IOException:
        return True
    return False


def _dry_run_by_running_kernel(loaded: Any, db: Path) -> list[Any]:
    """The running kernel's own dry-run reconciliation, through its dashboard on loopback."""
    import httpx

    from hrkernel.orders.reconcile import ReconciliationReport

    dash = loaded.config.dashboard
    if not dash.enabled or not dash.port:
        fail(f"{db} is in use by a running kernel whose dashboard is off (or on port 0): a dry run needs "
             "[dashboard] enabled with a fixed port, or the kernel stopped", EXIT_FAILURE)
    host = "127.0.0.1" if dash.host in ("0.0.0.0", "::", "") else dash.host
    headers = {"Authorization": f"Bearer {dash.token}"} if dash.token else {}
    url = f"http://{host}:{dash.port}/api/reconcile/dry-run"
    try:
        answer = httpx.get(url, headers=headers, timeout=60.0)
    except httpx.HTTPError as exc:
        fail(f"{db} is in use, and the running kernel's dashboard at {url} did not answer: {exc}", EXIT_FAILURE)
    if answer.status_code != 200:
        fail(f"{db} is in use, and the running kernel's dashboard refused the dry run ({answer.status_code}): "
             f"{answer.text[:300]}", EXIT_FAILURE)
    data = answer.json()
    if not data.get("configured"):
        fail(f"the running kernel at {url} has no order pipeline to reconcile", EXIT_FAILURE)
    return msgspec.convert(data["data"], list[ReconciliationReport], strict=False)


async def _reconcile_with_kernel(kernel: Any, db: Path, journal_path: Path, dry_run: bool) -> list[Any]:
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
    journal = OrderJournal(journal_path)
    try:
        async with anyio_task_group() as tg:
            for comp in exchanges.values():
                await comp.start(tg)
                started.append(comp)
            pipeline = TransactionVerificationPipeline(
                exchanges={k: v.obj for k, v in exchanges.items()}, journal=journal, ledger=Ledger(con),
                config=orders_cfg)
            reports = await StateReconciliation(pipeline).reconcile_all(dry_run=dry_run)
            for comp in reversed(started):
                await comp.stop()
            started.clear()
            tg.cancel_scope.cancel()
        return reports
    finally:
        journal.close()
        con.close()


def anyio_task_group() -> Any:
    import anyio

    return anyio.create_task_group()
