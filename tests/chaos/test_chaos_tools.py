"""The runner's fault tools without kernels: the Redis-path proxy, the read-only data dir, the
alert matching, and the simulator's silent market data."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import duckdb
import httpx
import pytest

from hrkernel_chaos.alerts import AlertReceiver, Injected, default_expectations, find_alert
from hrkernel_chaos.netcut import TcpProxy
from hrkernel_chaos.readonly import ReadOnlyDir
from hrkernel_chaos.scenario import Expect, Fault


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return

            def echo(c: socket.socket = conn) -> None:
                with c:
                    try:
                        while data := c.recv(1024):
                            c.sendall(data)
                    except OSError:
                        return  # the proxy reset it

            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server, int(server.getsockname()[1])


def test_proxy_rst_resets_open_and_new_connections_blackhole_holds_until_restored() -> None:
    server, port = _echo_server()
    proxy = TcpProxy(port)
    try:
        proxy.start()
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        client.sendall(b"ping")
        assert client.recv(16) == b"ping"
        proxy.cut("rst")
        with pytest.raises(ConnectionResetError):
            client.sendall(b"x")
            client.recv(16)
        with pytest.raises(ConnectionResetError):
            fresh = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
            fresh.sendall(b"x")
            fresh.recv(16)
        proxy.restore()
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        held.sendall(b"one")
        assert held.recv(16) == b"one"
        proxy.cut("blackhole")
        held.settimeout(0.5)
        held.sendall(b"two")
        with pytest.raises(TimeoutError):
            held.recv(16)  # nothing comes back, and the connection is not closed either
        proxy.restore()
        held.settimeout(2)
        assert held.recv(16) == b"two"  # delivered late, like a retransmitted segment
    finally:
        proxy.close()
        server.close()


def test_read_only_dir_stops_writes_through_open_handles_and_is_undone(tmp_path: Path) -> None:
    db = duckdb.connect(str(tmp_path / "j.duckdb"))
    db.execute("CREATE TABLE t (a INTEGER)")
    db.execute("INSERT INTO t VALUES (1)")
    ro = ReadOnlyDir(tmp_path)
    ro.make_readonly()
    try:
        with pytest.raises(duckdb.Error):
            db.execute("INSERT INTO t VALUES (2)")
        with pytest.raises(OSError):
            (tmp_path / "new.txt").write_text("x")
    finally:
        ro.restore()
    db.execute("INSERT INTO t VALUES (3)")
    assert db.execute("SELECT a FROM t ORDER BY a").fetchall() == [(1,), (3,)]
    (tmp_path / "new.txt").write_text("x")


def _alert(receiver: AlertReceiver, instance: str, status: str, first: float, resolved: float | None = None,
           check: str = "duckdb_writable", ident: str = "a1") -> None:
    receiver.add({"kind": "firing" if status == "firing" else "resolved", "instance_id": instance, "alerts": [{
        "id": ident, "source": "health", "level": "error", "title": "health check failing", "status": status,
        "first_seen": first, "resolved_at": resolved, "context": {"check": check}}]})


def test_alert_matching_wants_a_fresh_raise_or_one_firing_through_the_fault() -> None:
    receiver = AlertReceiver()
    fault = Injected(1, "ro", "duckdb_readonly", 1000.0, ["hr-a"],
                     default_expectations(Fault(at=1, kind="duckdb_readonly", duration=5.0), 1, 30.0), lasts=5.0)
    expect = fault.expects[0]
    assert (expect.source, expect.check, expect.instance) == ("health", "duckdb_writable", "faulted")
    _alert(receiver, "hr-a", "firing", 990.0, ident="old")
    _alert(receiver, "hr-a", "resolved", 990.0, resolved=1002.0, ident="old")
    assert find_alert(expect, fault, receiver.snapshot()) is None  # resolved while the fault lasted
    _alert(receiver, "hr-b", "firing", 1003.0, ident="other")
    assert find_alert(expect, fault, receiver.snapshot()) is None  # another kernel's disk
    _alert(receiver, "hr-a", "firing", 1003.0, ident="new")
    found = find_alert(expect, fault, receiver.snapshot())
    assert found is not None and found.alert["id"] == "new"
    late = Expect(source="health", title="failing", within=1.0)
    assert find_alert(late, fault, receiver.snapshot()) is None  # raised 3 s after: too late for 1 s
    still = AlertReceiver()
    _alert(still, "hr-a", "firing", 900.0, ident="open")  # raised earlier, never resolved: deduplicated
    assert find_alert(expect, fault, still.snapshot()) is not None


def test_every_kind_declares_its_alerts_or_none() -> None:
    kinds = ["sim_script", "sim_errors", "sim_latency", "sim_down", "kill_leader", "pause_leader",
             "redis_restart", "redis_cut", "feed_stale", "duckdb_readonly"]
    declared = {k: [e.title for e in default_expectations(Fault(at=1, kind=k), 2, 30.0)] for k in kinds}  # type: ignore[arg-type]
    assert declared["sim_script"] == [] and declared["sim_latency"] == []
    assert declared["sim_down"] == ["^health check failing$"]
    assert declared["kill_leader"] == ["^leadership gained$"]
    assert declared["pause_leader"] == ["^leadership lost$", "^leadership gained$"]
    assert declared["redis_cut"] == declared["redis_restart"] == ["^health check failing$", "^leadership lost$"]
    assert declared["feed_stale"] == declared["duckdb_readonly"] == ["^health check failing$"]
    assert default_expectations(Fault(at=1, kind="sim_down", expect=[]), 2, 30.0) == []


@pytest.mark.anyio
async def test_simulator_market_data_goes_silent_per_market() -> None:
    """``{"feed": "silent"}`` holds BTCIRT's order book and stats unanswered (then drops the
    connection); other markets and the private API answer as usual; ``live`` restores it."""
    from hrkernel.types import Duration
    from hrkernel_sim.config import FaultConfig, SimConfig
    from hrkernel_sim.server import SimServer

    async with SimServer(SimConfig(faults=FaultConfig(hang_for=Duration(1.0)))) as sim:
        async with httpx.AsyncClient(base_url=sim.base_url, timeout=5) as http:
            admin = sim.admin_headers
            reply = await http.post("/_sim/markets/BTCIRT", headers=admin, json={"feed": "silent"})
            assert reply.json()["feed"] == "silent"
            with pytest.raises(httpx.HTTPError):
                await http.get("/v3/orderbook/BTCIRT")
            with pytest.raises(httpx.HTTPError):
                await http.get("/market/stats", params={"srcCurrency": "btc", "dstCurrency": "rls"})
            assert (await http.get("/v3/orderbook/ETHIRT")).json()["status"] == "ok"
            bad = await http.post("/_sim/markets/BTCIRT", headers=admin, json={"feed": "stale"})
            assert bad.status_code == 400
            await http.post("/_sim/markets/BTCIRT", headers=admin, json={"feed": "live"})
            assert (await http.get("/v3/orderbook/BTCIRT")).json()["status"] == "ok"
            faults = {r["fault"] for r in (await http.get("/_sim/requests", headers=admin)).json()["requests"]}
            assert "feed_silent" in faults
