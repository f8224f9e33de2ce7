"""What ``hrkernel status`` shows about the running kernel: the overall state and why, open
orders, balances, breakers and firing alerts, read from its API (see ``hrkernel.web.status``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hrkernel.cli.common import fmt_amount
from hrkernel.cli.kernel_client import KernelClient, KernelRefused, NoKernel


def kernel_overview(data_dir: str | Path) -> dict[str, Any]:
    """``{"state": "down", "why": [...]}`` when no kernel answers; else the live picture."""
    client = KernelClient(data_dir, timeout=5.0)
    try:
        status = client.get("/api/status")
        orders = (client.get("/api/orders?limit=1000").get("data") or {})
        ledger = (client.get("/api/ledger").get("data") or {})
        breakers = client.get("/api/breakers").get("data") or []
        alerts = (client.get("/api/alerts").get("data") or {}).get("alerts", [])
    except (NoKernel, KernelRefused) as exc:
        return {"state": "down", "why": [str(exc)]}
    open_states = {"PREPARED", "SUBMITTING", "ACKED", "PARTIALLY_FILLED", "UNKNOWN", "CANCEL_REQUESTED"}
    return {
        "state": status.get("overall"),
        "why": status.get("why", []),
        "role": status.get("role"),
        "open_orders": [o for o in orders.get("orders", []) if o.get("state") in open_states],
        "balances": [b for b in ledger.get("balances", []) if ":" in b["account"]
                     and b["account"].split(":", 1)[1] == b["currency"] and not b["account"].startswith(
                         ("external", "trades", "fees", "adjustments"))],
        "breakers": [{"name": b["name"], "state": b["state"]} for b in breakers],
        "alerts_firing": [{"level": a.get("level"), "source": a.get("source"), "title": a.get("title"),
                           "message": a.get("message")} for a in alerts if a.get("status") == "firing"],
    }


def print_overview(view: dict[str, Any]) -> None:
    why = "; ".join(view.get("why") or [])
    click.echo(f"state: {view['state']}" + (f" ({why})" if why else ""))
    if view["state"] == "down":
        return
    opened = view["open_orders"]
    click.echo(f"open orders: {len(opened)}")
    for o in opened:
        click.echo(f"  {o['client_order_id']} {o['state']} {o['exchange']}:{o['symbol']} {o['side']} "
                   f"{fmt_amount(o['amount'])} filled {fmt_amount(o['filled_amount'])}")
    click.echo("balances: " + (", ".join(f"{b['account'].split(':')[0]} {fmt_amount(b['balance'])} {b['currency']}"
                                         for b in view["balances"]) or "-"))
    click.echo("breakers: " + (", ".join(f"{b['name']} {b['state']}" for b in view["breakers"]) or "-"))
    firing = view["alerts_firing"]
    click.echo(f"alerts firing: {len(firing)}")
    for a in firing:
        click.echo(f"  [{a['level']}] {a['source']}: {a['title']} - {a['message']}")
