"""The orders component on its own: start-up reconciliation gates trading, the CLI's --ack file
lifts a drift halt, concurrent copies of one signal make one order."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from hrkernel.exchange import Side
from hrkernel.orders.component import ACK_FILE, OrdersComponent
from hrkernel.orders.config import OrdersSection
from hrkernel.orders.pipeline import Signal

pytestmark = pytest.mark.anyio


async def test_component_gates_trading_on_startup_and_takes_the_cli_ack(exchange: Any, sim_admin: Any,
                                                                       tmp_path: Path) -> None:
    component = OrdersComponent(OrdersSection(reconcile_interval=60.0), db_path=tmp_path / "data" / "orders.duckdb",
                                exchanges={"nobitex": exchange}, lease=None)
    async with anyio.create_task_group() as tg:
        await component.start(tg)
        pipeline = component.pipeline
        assert pipeline is not None and "startup" in pipeline.halts
        with anyio.fail_after(10):
            while pipeline.halts:
                await anyio.sleep(0.05)
        assert component.reconciliation is not None and component.reconciliation.startup_done

        m = Decimal((await sim_admin.get("/_sim/markets/BTCIRT")).json()["mid"])
        signal = Signal(signal_id="dup", exchange="nobitex", symbol="BTCIRT", side=Side.BUY, amount=Decimal("0.0001"),
                        price=(m * Decimal("1.02") / 10).to_integral_value() * 10)
        results = []

        async def go() -> None:
            results.append(await pipeline.submit(signal))

        async with anyio.create_task_group() as copies:
            for _ in range(3):
                copies.start_soon(go)
        assert len({r.client_order_id for r in results}) == 1
        assert len((await sim_admin.get("/_sim/orders")).json()["orders"]) == 1

        pipeline.halt("drift", "test drift")
        (tmp_path / "data" / ACK_FILE).write_text("ack\n")
        with anyio.fail_after(5):
            while "drift" in pipeline.halts:
                await anyio.sleep(0.05)
        assert not (tmp_path / "data" / ACK_FILE).exists()
        assert component.describe()["halts"] == {}
        await component.stop()
        tg.cancel_scope.cancel()

    # the CLI reads the journal once the component let go of the file
    import subprocess
    import sys

    data = str(tmp_path / "data")
    shown = subprocess.run([sys.executable, "-m", "hrkernel", "orders", "show", "dup", "--data-dir", data],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert [line.split()[1] for line in shown.stdout.splitlines() if line.startswith("  20")] == [
        "PREPARED", "SUBMITTING", "ACKED", "FILLED", "VERIFIED"]
    listed = subprocess.run([sys.executable, "-m", "hrkernel", "orders", "list", "--data-dir", data, "--json"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and '"signal_id":"dup"' in listed.stdout


async def test_a_journal_dir_turned_read_only_halts_new_orders_with_a_critical_alert_then_resumes(
        exchange: Any, sim_admin: Any, tmp_path: Path) -> None:
    """For real: the journal's directory gets the immutable attribute (root; what the chaos
    ``duckdb_readonly`` fault does) while the kernel trades. The order's durable write fails, so
    nothing is sent; new orders halt with a critical alert; once the directory takes writes again
    the halt is lifted by itself."""
    import os

    from hrkernel.orders.errors import JournalWriteError, TradingHaltedError
    from hrkernel_chaos.readonly import ReadOnlyDir

    sent: list[tuple[str, str]] = []

    class Alerts:
        async def send_alert(self, *, source: str, level: str, title: str, context: dict[str, str]) -> None:
            sent.append((level, title))

    journal_dir = tmp_path / "journal"
    component = OrdersComponent(OrdersSection(reconcile_interval=60.0), db_path=tmp_path / "data" / "orders.duckdb",
                                exchanges={"nobitex": exchange}, lease=None, alerts=Alerts(),
                                journal_path=journal_dir / "orders.journal.sqlite")
    journal_dir.mkdir()
    m = Decimal((await sim_admin.get("/_sim/markets/BTCIRT")).json()["mid"])
    price = (m * Decimal("1.02") / 10).to_integral_value() * 10

    def signal(sid: str) -> Signal:
        return Signal(signal_id=sid, exchange="nobitex", symbol="BTCIRT", side=Side.BUY, amount=Decimal("0.0001"),
                      price=price)

    async with anyio.create_task_group() as tg:
        await component.start(tg)
        pipeline = component.pipeline
        assert pipeline is not None
        with anyio.fail_after(10):
            while pipeline.halts:
                await anyio.sleep(0.05)
        os.sync()  # the WAL index pages are clean: SQLite storing into them now would SIGBUS
        ro = ReadOnlyDir(journal_dir)
        if ro.make_readonly() != "immutable attribute":
            ro.restore()
            pytest.skip("needs root and a file system with the immutable attribute")
        try:
            with pytest.raises(JournalWriteError):
                await pipeline.submit(signal("while-read-only"))
            assert "journal" in pipeline.halts
            assert ("critical", "order journal cannot write: new orders halted") in sent
            with pytest.raises(TradingHaltedError):
                await pipeline.submit(signal("halted"))
            assert (await sim_admin.get("/_sim/orders")).json()["orders"] == []  # nothing sent
        finally:
            ro.restore()
        with anyio.fail_after(10):
            while "journal" in pipeline.halts:
                await anyio.sleep(0.05)
        assert ("info", "order journal writes again: new orders resumed") in sent
        placed = await pipeline.submit(signal("after"))
        assert placed.state.value == "VERIFIED"
        assert pipeline.journal.by_signal("while-read-only") is None  # nothing half-written
        await component.stop()
        tg.cancel_scope.cancel()
