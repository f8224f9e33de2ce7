"""Adapters for the trading areas: the order pipeline (recent orders, counts, halts, kill switch),
the ledger (balances, drift, reconciliation reports) and the webhook intake."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec

from hrkernel.web.adapters import (
    Host,
    NotConfigured,
    find,
    jsonable,
    maybe_await,
    method_of,
    stats_of,
)

# ---------------------------------------------------------------------------- orders, ledger


def _pipeline(host: Host) -> Any:
    """The order pipeline: the ``orders`` component (or the pipeline it holds)."""
    orders = find(host, "orders")
    if orders is None:
        return None
    return getattr(orders, "pipeline", orders)


def _recent_from_journal(journal: Any, limit: int) -> tuple[list[Any], dict[str, int], list[float]]:
    """Newest ``limit`` orders, counts by state, and for the finished ones among them the seconds
    from being journaled to their final state. Two bounded, indexed reads: the newest page and
    the counts from the state index (never a scan of every order ever made)."""
    records = list(journal.query(limit=limit, newest_first=True))
    counts = dict(journal.counts_by_state())
    latencies: list[float] = []
    for record in records:
        created, updated = getattr(record, "created_at", None), getattr(record, "updated_at", None)
        if getattr(record, "is_terminal", False) and created is not None and updated is not None:
            latencies.append(max(0.0, (updated - created).total_seconds()))
    return records, counts, latencies


async def read_orders(host: Host, limit: int = 50) -> dict[str, Any] | None:
    """``orders``: ``recent(limit)`` and ``counts()`` if offered, else read from its ``journal``;
    ``halts`` (why new orders are refused) and ``stats``."""
    pipeline = _pipeline(host)
    if pipeline is None:
        return None
    recent_fn = method_of(pipeline, "recent", "recent_orders")
    counts_fn = method_of(pipeline, "counts", "counts_by_state")
    journal = getattr(pipeline, "journal", None)
    recent: Any = []
    counts: Any = {}
    latencies: dict[str, list[float]] = {}
    if recent_fn is not None:
        recent = await maybe_await(recent_fn(limit))
        counts = await maybe_await(counts_fn()) if counts_fn else {}
    elif journal is not None and hasattr(journal, "query"):
        recent, counts, total = await anyio.to_thread.run_sync(_recent_from_journal, journal, limit)
        latencies = {"total": total}
    latencies_fn = method_of(pipeline, "latencies")
    if latencies_fn is not None:  # per phase, when the pipeline measures them itself
        latencies = await maybe_await(latencies_fn())
    halts = getattr(pipeline, "halts", None)
    halted_fn = method_of(pipeline, "is_halted")
    halted = bool(halts) if halts is not None else bool(halted_fn()) if halted_fn else None
    stats = getattr(pipeline, "stats", None)
    return {
        "orders": jsonable(recent), "counts": jsonable(counts), "halted": halted,
        "halts": jsonable(halts or {}), "stats": jsonable(stats() if callable(stats) else stats or {}),
        "latencies": jsonable(latencies),
    }


def _journal_reads(host: Host) -> Any:
    pipeline = _pipeline(host)
    journal = getattr(pipeline, "journal", None) if pipeline is not None else None
    return journal if journal is not None and hasattr(journal, "history") else None


async def journal_page(host: Host, only_open: bool, limit: int) -> list[Any] | None:
    """Orders oldest first, like ``hrkernel orders list`` reading the file: the CLI asks the
    running kernel for this, since the kernel holds the journal file exclusively (unix-excl VFS)."""
    from hrkernel.orders.journal import NON_TERMINAL

    journal = _journal_reads(host)
    if journal is None:
        return None
    states = NON_TERMINAL if only_open else None
    # msgspec's own form (ISO times, exact Decimal strings): the same JSON the CLI prints reading the file
    return msgspec.to_builtins(await anyio.to_thread.run_sync(lambda: journal.query(states=states, limit=limit)))


async def journal_order(host: Host, order_id: str) -> dict[str, Any] | None:
    """One order by client order id, signal id or exchange order id, with its full history
    (``hrkernel orders show`` while the kernel runs); ``{"order": None}`` when there is none."""
    journal = _journal_reads(host)
    if journal is None:
        return None

    def read() -> dict[str, Any]:
        rec = journal.get(order_id) or journal.by_signal(order_id) or journal.by_any_exchange_id(order_id)
        if rec is None:
            return {"order": None, "history": []}
        return {"order": msgspec.to_builtins(rec), "history": msgspec.to_builtins(journal.history(rec.client_order_id))}

    return await anyio.to_thread.run_sync(read)


def _ledger(host: Host) -> Any:
    ledger = find(host, "ledger")
    if ledger is not None:
        return getattr(ledger, "ledger", ledger)
    pipeline = _pipeline(host)
    return getattr(pipeline, "ledger", None) if pipeline is not None else None


def _ledger_rows(ledger: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    balances = ledger.balances() if hasattr(ledger, "balances") else None
    if isinstance(balances, dict):
        rows = []
        for key, amount in balances.items():
            account, currency = key if isinstance(key, tuple) and len(key) == 2 else (str(key), "")
            rows.append({"account": account, "currency": currency, "balance": jsonable(amount)})
        out["balances"] = rows
    else:
        out["balances"] = jsonable(balances)
    for key, names in (("positions", ("positions",)), ("drift", ("drift", "discrepancies")),
                       ("reconciliations", ("reconciliations", "reconciliation_reports"))):
        fn = method_of(ledger, *names)
        out[key] = jsonable(fn() if callable(fn) else fn) if fn is not None else None
    return out


def _reconciliation_rows(recon: Any, limit: int = 20) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Summaries of the last reports, and the drift per exchange and asset of each exchange's latest."""
    reports = [r for r in recon.reports(limit) if isinstance(r, dict)]
    summaries, drift, seen = [], [], set()
    for r in reports:  # newest first
        summaries.append({
            "exchange": r.get("exchange"), "started_at": r.get("started_at"), "finished_at": r.get("finished_at"),
            "dry_run": r.get("dry_run", False), "orphans": len(r.get("orphans") or []),
            "changed": len(r.get("changed") or []), "late_fills": r.get("late_fills", 0),
            "drift": len([d for d in r.get("drift") or [] if d.get("action") != "opening balance"]),
            "discrepancies": "; ".join(r.get("discrepancies") or []), "halted": r.get("halted", False),
        })
        if r.get("exchange") in seen or r.get("dry_run"):
            continue
        seen.add(r.get("exchange"))
        for d in r.get("drift") or []:
            drift.append({"exchange": r.get("exchange"), "asset": d.get("currency"), "drift": d.get("drift"),
                          "exchange_total": d.get("exchange_total"), "ledger_total": d.get("ledger_total"),
                          "tolerance": d.get("tolerance"), "action": d.get("action")})
    return summaries, drift


async def read_ledger(host: Host) -> dict[str, Any] | None:
    """``ledger`` (or the pipeline's ``ledger``): ``balances()`` per account and currency, and
    ``positions()``, ``drift()``, ``reconciliations()`` where offered; otherwise drift and
    reconciliation reports from the orders component's ``reconciliation.reports()``."""
    ledger = _ledger(host)
    if ledger is None:
        return None
    out = await anyio.to_thread.run_sync(_ledger_rows, ledger)
    orders = find(host, "orders")
    recon = getattr(orders, "reconciliation", None) if orders is not None else None
    if recon is not None and hasattr(recon, "reports"):
        summaries, drift = await anyio.to_thread.run_sync(_reconciliation_rows, recon)
        if out.get("reconciliations") is None:
            out["reconciliations"] = jsonable(summaries)
        if out.get("drift") is None:
            out["drift"] = jsonable(drift)
    return out


KILL_SWITCH_KEY = "kill_switch"


async def dry_run_reconciliation(host: Host) -> list[Any] | None:
    """Every exchange compared with journal and ledger by the running kernel, changing nothing
    (``hrkernel reconcile --dry-run`` asks for this while the kernel holds the ledger's file).
    Each call reads the exchanges' open orders, fills and balances: it spends their request budget."""
    orders = find(host, "orders")
    recon = getattr(orders, "reconciliation", None)
    if recon is None:
        return None
    return jsonable(await recon.reconcile_all(dry_run=True))


async def set_kill_switch(host: Host, on: bool, reason: str) -> dict[str, Any]:
    """Engage or release the kill switch: the pipeline's ``halt(key, reason)`` / ``resume(key)``
    (or a ``killswitch`` component's ``engage(reason)`` / ``release(reason)``)."""
    switch = find(host, "killswitch", "kill_switch")
    if switch is not None:
        await maybe_await(switch.engage(reason) if on else switch.release(reason))
        return {"halted": on}
    pipeline = _pipeline(host)
    if pipeline is None or method_of(pipeline, "halt") is None:
        raise NotConfigured("no kill switch is configured (needs an order pipeline with halt/resume)")
    if on:
        await maybe_await(pipeline.halt(KILL_SWITCH_KEY, reason))
    else:
        await maybe_await(pipeline.resume(KILL_SWITCH_KEY))
    halts = getattr(pipeline, "halts", {})
    return {"halted": bool(halts), "halts": jsonable(halts)}


async def cancel_all_orders(host: Host, reason: str) -> dict[str, Any]:
    """Emergency cancel of every open order this kernel placed (the orders component's
    ``cancel_open_orders``; only the leader may): counts and the orders that could not be."""
    orders = find(host, "orders")
    cancel = method_of(orders, "cancel_open_orders") if orders is not None else None
    if cancel is None:
        raise NotConfigured("no order pipeline is running (no [exchanges.*] or [orders] enabled = false)")
    report = await cancel(reason)
    return {"outcome": report.outcome, **jsonable(report)}


# ---------------------------------------------------------------------------- signals


def read_webhooks(host: Host) -> dict[str, Any] | None:
    """``signals``: ``stats()`` of the TradingView webhook intake (accepted, rejected, duplicates)."""
    intake = find(host, "signals", "webhooks")
    if intake is None:
        return None
    return stats_of(intake)
