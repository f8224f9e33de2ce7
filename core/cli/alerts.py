"""``hrkernel alerts list|ack``: read and acknowledge the alert history in the data dir."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from hrkernel.cli.common import EXIT_FAILURE, config_argument, fail, load_sections, pick_config


def _history_path(config: str | None, data_dir: str | None) -> Path:
    from hrkernel.alerts.config import AlertsSection

    if config:
        loaded = load_sections(config, "alerts")
        base = Path(data_dir or loaded.config.kernel.data_dir)
        alerts = getattr(loaded.config, "alerts", None) or AlertsSection()
        return base / alerts.history_file
    return Path(data_dir or ".hrkernel") / AlertsSection().history_file


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


@click.group()
def alerts() -> None:
    """Alert history: list alerts and acknowledge them (stops their repeat notifications)."""


_data_dir_option = click.option("--data-dir", "data_dir", type=click.Path(file_okay=False),
                                help="data directory (default: the config's, else .hrkernel)")


@alerts.command("list")
@config_argument
@_data_dir_option
@click.option("--status", type=click.Choice(["firing", "resolved", "expired", "all"]), default="all", show_default=True)
@click.option("--unacked", is_flag=True, help="only alerts nobody acknowledged")
@click.option("--source", default=None, help="only this source")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON for machines (with deliveries)")
def list_alerts(config_arg: str | None, config_opt: str | None, data_dir: str | None, status: str, unacked: bool, source: str | None,
                limit: int, as_json: bool) -> None:
    """List alerts, newest first: id, level, status, count, last seen, title, acknowledgement."""
    from hrkernel.alerts.history import History, HistoryError

    path = _history_path(pick_config(config_arg, config_opt), data_dir)
    if not path.exists():
        if as_json:
            click.echo("[]")
        else:
            click.echo(f"no alert history at {path}")
        return
    try:
        rows = History(path).query(status=None if status == "all" else status, unacknowledged=unacked,
                                   source=source, limit=limit, read_only=True)
    except HistoryError as exc:
        fail(str(exc), EXIT_FAILURE)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for r in rows:
        ack = f"acked by {r['ack_by']} at {_when(r['ack_at'])}" if r["ack_by"] else "unacked"
        failed = sum(1 for d in r["deliveries"] if not d["ok"])
        sent = sum(1 for d in r["deliveries"] if d["ok"])
        click.echo(
            f"{r['id']}  {r['level']:<8} {r['status']:<8} x{r['count']:<4} {_when(r['last_seen'])}  "
            f"{r['source']}: {r['title']}  [{ack}; delivered {sent}, failed {failed}]"
        )
        if r["suppressed"]:
            click.echo(f"    {r['suppressed']}")


@alerts.command("ack")
@click.argument("alert_id")
@click.option("--who", required=True, help="who acknowledges")
@click.option("--note", default="", help="why / what is being done")
@config_argument
@_data_dir_option
def ack(alert_id: str, who: str, note: str, config_arg: str | None, config_opt: str | None, data_dir: str | None) -> None:
    """Acknowledge ALERT_ID (an alert id, or a fingerprint: all its alerts)."""
    from hrkernel.alerts.history import History, HistoryError

    path = _history_path(pick_config(config_arg, config_opt), data_dir)
    if not path.exists():
        fail(f"no alert history at {path}", EXIT_FAILURE)
    try:
        ids = History(path).acknowledge(alert_id, who, note)
    except HistoryError as exc:
        fail(str(exc), EXIT_FAILURE)
    if not ids:
        fail(f"no alert with id or fingerprint {alert_id!r} in {path}", EXIT_FAILURE)
    click.echo(f"acknowledged {', '.join(ids)} as {who}")
