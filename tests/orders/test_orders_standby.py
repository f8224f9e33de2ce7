"""A standby's journal and ledger: an explicit list of what it may call; every write is refused,
and a write method added to the journal or the ledger is not reachable until it is listed."""

from __future__ import annotations

import inspect
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hrkernel.ledger import Ledger
from hrkernel.orders.errors import NotLeaderError
from hrkernel.orders.journal import OrderJournal, OrderRecord, OrderState
from hrkernel.orders.standby import StandbyJournal, StandbyLedger

pytestmark = pytest.mark.anyio


def _rec(coid: str) -> OrderRecord:
    return OrderRecord(client_order_id=coid, signal_id=f"s-{coid}", exchange="nobitex", symbol="BTCIRT", base="BTC",
                       quote="IRT", side="buy", type="limit", amount=D("0.01"), price=D("100"), state=OrderState.PREPARED)


def public_names(instance: Any) -> set[str]:
    """Every public method, property and attribute of a real journal or ledger."""
    names = {n for cls in type(instance).__mro__ if cls is not object for n in vars(cls) if not n.startswith("_")}
    return names | {n for n in vars(instance) if not n.startswith("_")}


def unlisted(instance: Any, view: type[StandbyJournal] | type[StandbyLedger]) -> set[str]:
    return public_names(instance) - (view.READS | view.WRITES | view.NOT_OFFERED)


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    journal = OrderJournal(tmp_path / "j.sqlite")
    yield journal
    journal.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    con = duckdb.connect(str(tmp_path / "l.duckdb"))
    yield Ledger(con)
    con.close()


def test_every_public_name_of_the_journal_and_the_ledger_is_listed_for_the_standby(journal: Any, ledger: Any) -> None:
    assert unlisted(journal, StandbyJournal) == set()
    assert unlisted(ledger, StandbyLedger) == set()
    for view in (StandbyJournal, StandbyLedger):
        assert not view.READS & view.WRITES
        offered = {n for n in vars(view) if not n.startswith("_") and n not in ("READS", "WRITES", "NOT_OFFERED")}
        assert offered == view.READS | view.WRITES, view.__name__


def test_a_write_method_added_to_the_journal_is_neither_reachable_nor_unnoticed(journal: Any, monkeypatch) -> None:
    async def purge(self: OrderJournal) -> None:  # a new write the standby list does not know yet
        raise AssertionError("a standby reached a write")

    monkeypatch.setattr(OrderJournal, "purge", purge, raising=False)
    view = StandbyJournal(lambda: journal, lambda: 0)
    assert unlisted(journal, StandbyJournal) == {"purge"}  # the listing test above fails
    with pytest.raises(AttributeError):
        view.purge  # noqa: B018 - no __getattr__ forwards it


async def test_every_write_is_refused_and_changes_nothing(tmp_path: Path, journal: Any, ledger: Any) -> None:
    await journal.create(_rec("hr1"))
    version = [0]
    jview = StandbyJournal(lambda: OrderJournal.reader(tmp_path / "j.sqlite"), lambda: version[0])
    lview = StandbyLedger(lambda: Ledger(ledger.connection.cursor()), lambda: version[0])
    before = (journal.last_seq(), ledger.balances())
    for view in (jview, lview):
        for name in sorted(view.WRITES):
            method = getattr(view, name)
            with pytest.raises(NotLeaderError, match=f"{name}: standby"):
                outcome = method("anything", 1, reason="x")
                if inspect.isawaitable(outcome):
                    await outcome
    assert (journal.last_seq(), ledger.balances()) == before


async def test_reads_follow_each_replicated_change(tmp_path: Path, journal: Any, ledger: Any) -> None:
    version = [0]
    view = StandbyJournal(lambda: OrderJournal.reader(tmp_path / "j.sqlite"), lambda: version[0])
    lview = StandbyLedger(lambda: Ledger(ledger.connection.cursor()), lambda: version[0])
    await journal.create(_rec("hr1"))
    version[0] += 1
    assert view.get("hr1") is not None and view.get("hr1").state is OrderState.PREPARED
    await journal.record("hr1", OrderState.SUBMITTING, attempts=1)
    version[0] += 1  # replication applied a row: the next read sees it, no stale cache
    assert view.get("hr1").state is OrderState.SUBMITTING
    assert view.last_seq() == journal.last_seq() and view.path == journal.path
    ledger.deposit("nobitex", "USDT", D("5"))
    version[0] += 1
    assert lview.balances() == ledger.balances()
