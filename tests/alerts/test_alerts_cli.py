"""``hrkernel alerts list|ack`` against a history written by a real AlertSystem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hrkernel.alerts import AlertSystem, ChannelSpec
from hrkernel.alerts.config import AlertsSection, ChannelRouting
from hrkernel.types import Duration


def hrkernel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command line, as a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HRKERNEL_")}
    return subprocess.run([sys.executable, "-m", "hrkernel", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=60)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The same click group in-process (fast), answering like :func:`hrkernel`."""
    from click.testing import CliRunner

    from hrkernel.cli.main import cli as group

    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(group, list(args))
    finally:
        os.chdir(old)
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def history(tmp_path: Path, clock, recording_channel, anyio_backend) -> dict[str, str]:
    import anyio

    data = tmp_path / "data"
    ids: dict[str, str] = {}

    async def main() -> None:
        config = AlertsSection(channels={}, group_wait=Duration(0), repeat_interval=Duration(60))
        channel = recording_channel()
        specs = {"rec": ChannelSpec(channel, ChannelRouting(max_per_minute=0))}
        async with AlertSystem(config, channels=specs, data_dir=data, clock=clock) as alerts:
            a = await alerts.send_alert(source="exchange", level="critical", title="exchange down", message="x")
            b = await alerts.send_alert(source="ledger", level="warning", title="drift", message="y")
            await alerts.send_alert(source="ledger", level="warning", title="drift", message="y")
            await alerts.wait_idle()
            alerts.resolve(fingerprint=b.fingerprint)
            clock.advance(60)
            await alerts.wait_idle()
            ids.update(a=a.id, b=b.id, fp_a=a.fingerprint)

    anyio.run(main)
    (tmp_path / "hr.toml").write_text(f'[kernel]\ndata_dir = "{data}"\n')
    return ids


def test_list_shows_alerts_with_counts_status_and_deliveries(tmp_path: Path, history: dict[str, str]) -> None:
    result = hrkernel("alerts", "list", "--config", "hr.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    [down] = [line for line in lines if history["a"] in line]
    assert "critical" in down and "firing" in down and "exchange: exchange down" in down
    assert "unacked" in down and "delivered 2" in down  # firing, then a repeat after 60s
    [drift] = [line for line in lines if history["b"] in line]
    assert "resolved" in drift and "x2" in drift

    rows = json.loads(cli("alerts", "list", "--data-dir", "data", "--json", "--status", "firing", cwd=tmp_path).stdout)
    assert [r["id"] for r in rows] == [history["a"]]
    assert [(d["channel"], d["kind"], d["ok"]) for d in rows[0]["deliveries"]] == [("rec", "firing", True), ("rec", "repeat", True)]


def test_ack_records_who_when_and_why(tmp_path: Path, history: dict[str, str]) -> None:
    result = cli("alerts", "ack", history["a"], "--who", "alice", "--note", "maintenance", "--config", "hr.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"acknowledged {history['a']} as alice" in result.stdout
    rows = json.loads(cli("alerts", "list", "--config", "hr.toml", "--json", cwd=tmp_path).stdout)
    acked = {r["id"]: (r["ack_by"], r["ack_note"]) for r in rows}
    assert acked[history["a"]] == ("alice", "maintenance") and acked[history["b"]] == (None, None)
    assert next(r for r in rows if r["id"] == history["a"])["ack_at"] is not None
    unacked = json.loads(cli("alerts", "list", "--config", "hr.toml", "--json", "--unacked", cwd=tmp_path).stdout)
    assert [r["id"] for r in unacked] == [history["b"]]


def test_ack_of_an_unknown_alert_fails_clearly(tmp_path: Path, history: dict[str, str]) -> None:
    result = cli("alerts", "ack", "nope", "--who", "alice", "--config", "hr.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert "no alert with id or fingerprint 'nope'" in result.stderr


def test_list_without_history_says_so(tmp_path: Path) -> None:
    result = cli("alerts", "list", "--data-dir", "empty", cwd=tmp_path)
    assert result.returncode == 0 and "no alert history at empty/alerts.duckdb" in result.stdout


def test_an_acknowledgement_from_the_cli_stops_repeats_in_a_running_system(tmp_path: Path, clock, recording_channel) -> None:
    import anyio

    async def main() -> None:
        config = AlertsSection(channels={}, group_wait=Duration(0), repeat_interval=Duration(60))
        channel = recording_channel()
        specs = {"rec": ChannelSpec(channel, ChannelRouting(max_per_minute=0))}
        async with AlertSystem(config, channels=specs, data_dir=tmp_path, clock=clock) as alerts:
            a = await alerts.send_alert(source="ha", level="critical", title="lease lost")
            await alerts.wait_idle()
            result = await anyio.to_thread.run_sync(
                lambda: hrkernel("alerts", "ack", a.fingerprint, "--who", "bob", "--data-dir", str(tmp_path), cwd=tmp_path))
            assert result.returncode == 0, result.stderr
            await alerts.refresh_acknowledgements()
            clock.advance(120)
            await alerts.wait_idle()
            assert [n.kind for n in channel.sent] == ["firing"]

    anyio.run(main)
