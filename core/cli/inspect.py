"""``hrkernel check`` and ``hrkernel plugins``: look without running."""

from __future__ import annotations

import json

import click

from hrkernel.cli.common import (
    build,
    config_argument,
    discover,
    load,
    load_sections,
    pick_config,
    required_config,
)
from hrkernel.config.secrets import conceal, shown_as_mask


@click.command()
@required_config
def check(config: str) -> None:
    """Validate CONFIG, load plugins and build every component without starting anything.

    Prints what would run, or every error found (exit 2). Warns when a credential-looking key
    (token, secret, password, api_key), or a value inside such a table, holds a literal instead
    of a ${VAR} reference. Secrets are printed as ***; an error shows a value taken from the
    environment as its ${VAR} reference, never in clear.
    """
    loaded = load(config)
    host = discover(loaded)
    kernel = build(loaded, host)

    def echo(line: str, err: bool = False) -> None:
        # A component's description may quote its config (a URL, a header): secrets become ***.
        click.echo(conceal(line, secrets), err=err)

    secrets = shown_as_mask(loaded.secrets)
    for warning in loaded.warnings:
        echo(f"warning: {loaded.source}: {warning}", err=True)
    echo(f"{loaded.source}: ok")
    echo(f"instance: {loaded.config.kernel.instance_id}, data dir: {loaded.config.kernel.data_dir}")
    echo("plugins: " + ", ".join(f"{r.name} ({r.state})" for r in host.records.values()))
    echo("components, in start order:")
    for component in kernel.components:
        info = component.describe()
        extra = ", ".join(f"{k}={v}" for k, v in info.items() if k not in ("name",))
        echo(f"  {info['name']}: {extra}")


@click.command()
@config_argument
@click.option("--json", "as_json", is_flag=True, help="print JSON for machines")
def plugins(config_arg: str | None, config_opt: str | None, as_json: bool) -> None:
    """List every discovered plugin: distribution, version, hooks, what it provides, state.

    Failing plugins are listed with the reason instead of stopping the command.
    """
    config = pick_config(config_arg, config_opt)
    loaded = load_sections(config, "plugins") if config else None
    host = discover(loaded, strict=False, quiet=True)  # failures are part of the listing
    records = [r.as_dict() for r in host.records.values()]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    for r in records:
        dist = f"{r['distribution']} {r['version']}" if r["distribution"] else "(no distribution)"
        click.echo(f"{r['name']}  [{r['state']}]  {dist}  module {r['module']}")
        if r["reason"]:
            click.echo(f"    reason: {r['reason']}")
        if r["hooks"]:
            click.echo(f"    hooks: {', '.join(r['hooks'])}")
        if r["provides"]:
            click.echo(f"    provides: {', '.join(r['provides'])}")
