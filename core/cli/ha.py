"""``hrkernel status`` and ``hrkernel failover``: the lease as Redis sees it, and a step-down request."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import anyio
import click

from hrkernel.cli.common import EXIT_FAILURE, fail, load, load_sections, required_config


def _lease_state(url: str, prefix: str, timeout: float, instance: str) -> dict[str, Any]:
    from hrkernel.ha.redis_lease import connect, inspect_lease
    from hrkernel.ha.replication import read_status

    async def read() -> dict[str, Any]:
        client = connect(url, timeout)
        try:
            with anyio.fail_after(timeout * 2):
                state = await inspect_lease(client, prefix)
                state["replication"] = await read_status(client, prefix, instance)
                return state
        finally:
            await client.aclose()

    return anyio.run(read)


@click.command()
@required_config
@click.option("--json", "as_json", is_flag=True, help="print JSON for machines")
def status(config: str, as_json: bool) -> None:
    """Show this instance's role, the leader, the fencing token, when the lease expires and the
    replication lag.

    Reads the lease from Redis ([ha] backend = "redis"); with the local backend the instance is
    the leader whenever it runs. replication_lag is how far this instance's copy of the journal
    and ledger trails the leader's, as the running instance last reported it (every second):
    0 when it has applied every entry of the stream, else the age in seconds of the newest
    leader commit it applied (an upper bound on how old its copy is), with the number of stream
    entries still to apply (replication_behind). On the leader (replication_mode "lead") it is 0
    once its rows are published. replication_mode "rebuild": the stream lost history this
    instance needs; it wiped its copy and is rebuilt from the exchange when it leads. "-" when
    the instance is not running or replication is off. Exit 1 if Redis cannot be reached.

    Then, from the running kernel (found under data_dir): its overall state and why (trading,
    halted, degraded, standby, or down when it does not answer), open orders, balances per
    exchange, breakers and firing alerts: the same state the dashboard and /readyz show.
    """
    from hrkernel.cli.status_view import kernel_overview, print_overview

    loaded = load_sections(config, "ha")
    ha = loaded.config.ha
    instance = loaded.config.kernel.instance_id
    info: dict[str, Any] = {"instance_id": instance, "backend": ha.backend}
    if ha.backend == "local":
        info.update(role="leader (local lease: always, while running)", leader=instance, token=1, lease_expires_in=None)
    else:
        try:
            state = _lease_state(ha.redis_url, ha.key_prefix, max(float(ha.renew_interval), 1.0), instance)
        except Exception as exc:
            fail(f"cannot read the lease from Redis ({type(exc).__name__}: {exc})", EXIT_FAILURE)
        role = "leader" if state["leader"] == instance else "standby"
        last = state["last_renewal_ms"]
        info.update(
            role=role,
            leader=state["leader"],
            token=state["token"],
            token_counter=state["token_counter"],
            lease_expires_in=state["expires_in"],
            last_renewal_age=None if last is None else round(time.time() - last / 1000, 3),
            key_prefix=ha.key_prefix,
        )
    info["replication_lag"] = None
    if ha.backend == "redis":
        repl = state.get("replication")
        if repl is not None:
            info["replication_lag"] = repl.get("seconds")
            info["replication_behind"] = repl.get("entries")
            info["replication_mode"] = repl.get("mode")
            info["replication_seq"] = repl.get("seq")
            info["replication_tx"] = repl.get("tx")
            if repl.get("reason"):
                info["replication_reason"] = repl["reason"]
            if repl.get("updated_ms"):
                info["replication_report_age"] = round(time.time() - int(repl["updated_ms"]) / 1000, 3)
        else:
            info["replication_mode"] = "off" if not ha.replication else "not reported (instance not running, or it has no orders to replicate)"
    view = kernel_overview(loaded.config.kernel.data_dir)
    if as_json:
        click.echo(json.dumps({**info, "kernel": view}, indent=2))
        return
    for key, value in info.items():
        timed = ("lease_expires_in", "last_renewal_age", "replication_lag", "replication_report_age")
        shown = "-" if value is None else f"{value:.3f}s" if key in timed else value
        click.echo(f"{key}: {shown}")
    print_overview(view)


def _group_failover(loaded: Any, group: str, to: str | None, token: str | None, reason: str) -> None:
    """POST the running kernel's ``/api/failovers/{group}/failover`` (the dashboard's action)."""
    import httpx

    dashboard = getattr(loaded.config, "dashboard", None)
    if dashboard is None or not getattr(dashboard, "enabled", False):
        fail("group failover goes through the running kernel's dashboard API: enable [dashboard]")
    token = token or os.environ.get("HRKERNEL_DASHBOARD_TOKEN") or getattr(dashboard, "token", None)
    if not token:
        fail("no dashboard token: set [dashboard] token (as ${HRKERNEL_DASHBOARD_TOKEN}) or pass --token")
    url = f"http://{dashboard.host}:{dashboard.port}/api/failovers/{group}/failover"
    try:
        response = httpx.post(url, json={"target": to, "reason": reason}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the kernel at {url} ({type(exc).__name__}: {exc})", EXIT_FAILURE)
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail") or response.text
        except ValueError:
            detail = response.text
        fail(f"group failover refused ({response.status_code}): {detail}", EXIT_FAILURE)
    body = response.json()
    result = body.get("result", body) if isinstance(body, dict) else body
    if isinstance(result, dict) and "to_member" in result:
        click.echo(f"group {group}: {result.get('from_member')} -> {result.get('to_member')}")
    else:
        click.echo(json.dumps(body))


@click.command()
@required_config
@click.option("--token", "secret", help="admin token (default: [ha] admin_token or $HRKERNEL_HA_TOKEN; with --group: the dashboard token or $HRKERNEL_DASHBOARD_TOKEN)")
@click.option("--group", default=None, help="fail over this failover group of the running kernel instead of the leader")
@click.option("--to", "to", default=None, help="with --group: the member to switch to (default: the next healthy one)")
@click.option("--reason", default="manual failover from the CLI", show_default=True)
@click.option("--wait/--no-wait", default=True, help="wait until another instance holds the lease")
@click.option("--timeout", default=30.0, show_default=True, help="seconds to wait with --wait")
def failover(config: str, secret: str | None, group: str | None, to: str | None, reason: str, wait: bool, timeout: float) -> None:
    """Ask the current leader to step down so a standby takes over (or, with --group, switch a
    failover group of the running kernel through its dashboard API).

    The step-down request carries an HMAC of the leader's fencing token made with the shared
    admin token; the leader checks it on its next renewal, releases the lease and stays out for
    one TTL. Exit 1 if there is no leader, Redis is unreachable, or (with --wait) nobody took over.
    """
    from hrkernel.ha.redis_lease import connect, inspect_lease, request_step_down

    loaded = load(config)
    if group is not None:
        _group_failover(loaded, group, to, secret, reason)
        return
    ha = loaded.config.ha
    if ha.backend != "redis":
        fail('hrkernel failover needs [ha] backend = "redis" (a local lease has no standby)')
    secret = secret or os.environ.get("HRKERNEL_HA_TOKEN") or ha.admin_token
    if not secret:
        fail("no admin token: set [ha] admin_token (as ${HRKERNEL_HA_TOKEN}) or pass --token")

    async def go() -> tuple[int, dict[str, Any] | None]:
        client = connect(ha.redis_url, max(float(ha.renew_interval), 1.0))
        try:
            token = await request_step_down(client, ha.key_prefix, secret, ttl=max(float(ha.lease_ttl) * 4, 10.0))
            if not wait:
                return token, None
            with anyio.move_on_after(timeout):
                while True:
                    state = await inspect_lease(client, ha.key_prefix)
                    if state["token"] is not None and state["token"] != token:
                        return token, state
                    await anyio.sleep(0.1)
            return token, {}
        finally:
            await client.aclose()

    try:
        token, state = anyio.run(go)
    except LookupError as exc:
        fail(str(exc), EXIT_FAILURE)
    except Exception as exc:
        fail(f"cannot reach Redis ({type(exc).__name__}: {exc})", EXIT_FAILURE)
    click.echo(f"step-down requested from the leader with token {token}")
    if state is None:
        return
    if not state:
        fail(f"no other instance took over within {timeout:g}s (is a standby running? is the admin token right?)", EXIT_FAILURE)
    click.echo(f"new leader: {state['leader']} (token {state['token']})")
