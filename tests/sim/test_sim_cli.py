"""``hrkernel sim serve`` as a real process: config file, port, SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest

from hrkernel_sim.config import load_config

SIM_TOML = """
[sim]
admin_token = "adm"
seed = 5

[sim.accounts.carol]
token = "tok-carol"
balances = { rls = "50000000", btc = "0.1" }

[sim.faults]
seed = 5
[sim.faults.endpoints.stats]
error_503 = 1.0
"""




def test_load_config_reports_the_bad_key_with_its_path(tmp_path):
    bad = tmp_path / "sim.toml"
    bad.write_text('[sim.faults.latency]\nfixed = "soon"\n')
    with pytest.raises(ValueError, match=r"sim.toml.*\$\.faults\.latency\.fixed"):
        load_config(bad)


@pytest.mark.slow
def test_serve_command_runs_the_configured_simulator_until_sigterm(tmp_path, unused_port):
    cfg = tmp_path / "sim.toml"
    cfg.write_text(SIM_TOML)
    port = unused_port()
    proc = subprocess.Popen([sys.executable, "-m", "hrkernel", "sim", "serve", "--port", str(port),
                             "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v2/options", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
                assert time.monotonic() < deadline, "simulator did not start"
                time.sleep(0.05)
        assert r.json()["status"] == "ok"
        r = httpx.post(f"http://127.0.0.1:{port}/users/wallets/balance", json={"currency": "btc"},
                       headers={"Authorization": "Token tok-carol"})
        assert r.json() == {"balance": "0.1000000000", "status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/market/stats").status_code == 503
        r = httpx.get(f"http://127.0.0.1:{port}/_sim/balances", headers={"X-Sim-Admin-Token": "adm"})
        assert r.json()["balances"]["carol"]["rls"]["balance"] == "50000000"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert b"listening on http://127.0.0.1:" in err and b"stopped" in err
