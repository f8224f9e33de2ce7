"""The third-party alert channel of docs/alerts.md, built from the page's own code, pip-installed,
discovered through its entry point and delivering an alert to a real loopback server."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from hrkernel.alerts import AlertSystem
from hrkernel.alerts.build import channels_from_config
from hrkernel.alerts.config import AlertsSection
from hrkernel.errors import ConfigError
from hrkernel.plugins import PluginHost
from hrkernel.types import Duration

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def ntfy_plugin(tmp_path_factory: pytest.TempPathFactory, doc_files):
    """Install the page's package into a private site dir (not the shared venv, which other
    test runs use at the same time) and put it on sys.path like an installed distribution."""
    tmp_path = tmp_path_factory.mktemp("ntfy")
    files = doc_files("alerts.md")
    assert set(files) == {"pyproject.toml", "hrkernel_ntfy/__init__.py"}
    source = tmp_path / "hrkernel-ntfy"
    for name, text in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(source)],
        check=True, capture_output=True,
    )
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("hrkernel_ntfy", None)
        importlib.invalidate_caches()


async def test_readme_channel_plugin_is_discovered_and_delivers(ntfy_plugin, tmp_path, clock, http_server):
    host = PluginHost(strict=True, quiet=True)
    host.discover()
    record = host.records["ntfy"]
    assert record.distribution == "hrkernel-ntfy" and record.state == "loaded"
    assert host.registrations("alert_channel")["ntfy"].plugin == "ntfy"
    assert record.provides == ["alert_channel ntfy"]

    config = AlertsSection(
        channels={"desk": {"type": "ntfy", "url": http_server.url + "/my-desk", "token": "tk-secret",
                           "min_level": "error"}},
        group_wait=Duration(1),
    )
    channels = channels_from_config(config, host)
    async with AlertSystem(config, channels=channels, data_dir=tmp_path, clock=clock) as alerts:
        await alerts.send_alert(source="exchange", level="warning", title="slow")  # below min_level
        await alerts.send_alert(source="exchange", level="critical", title="exchange down", message="no answer")
        clock.advance(1)
        await alerts.wait_idle()
        rows = {r["title"]: r for r in await alerts.query(source="exchange")}
        row = rows["exchange down"]
        assert rows["slow"]["deliveries"] == []
    [req] = http_server.ok_requests()
    assert req.path == "/my-desk"
    assert req.headers["authorization"] == "Bearer tk-secret"
    assert req.headers["priority"] == "5"
    assert req.headers["title"] == "[CRITICAL] exchange: exchange down"
    assert "message: no answer" in req.body.decode() and "count: 1" in req.body.decode()
    assert row["title"] == "exchange down"
    assert [(d["channel"], d["ok"]) for d in row["deliveries"]] == [("desk", True)]


def test_readme_channel_config_errors_read_like_the_kernels(ntfy_plugin):
    host = PluginHost(strict=True, quiet=True)
    host.discover()
    config = AlertsSection(channels={"desk": {"type": "ntfy", "urll": "x"}})
    with pytest.raises(ConfigError) as err:
        channels_from_config(config, host)
    assert sorted(str(i) for i in err.value.issues) == [
        "alerts.channels.desk.url: required key is missing",
        "alerts.channels.desk.urll: unknown key (known keys here: token, url)",
    ]
