"""The journal: durable state changes, full history, duplicate protection, survives reopening."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from hrkernel.orders.errors import JournalError
from hrkernel.orders.journal import OrderJournal, OrderRecord, OrderState


def _rec(coid: str = "hrabc", signal: str = "s1") -> OrderRecord:
    return OrderRecord(client_order_id=coid, signal_id=signal, exchange="nobitex", symbol="BTCIRT", base="BTC",
                       quote="IRT", side="buy", type="limit", amount=D("0.01"), price=D("100"), state=OrderState.PREPARED)


def test_state_changes_build_a_full_history_that_survives_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "j.duckdb")
    journal = OrderJournal(path)
    journal.create(_rec())
    journal.record("hrabc", OrderState.SUBMITTING, attempts=1, fencing_token=7)
    journal.record("hrabc", OrderState.UNKNOWN, reason="timeout")
    journal.record("hrabc", OrderState.ACKED, exchange_order_id="42")
    journal.record("hrabc", OrderState.FILLED, filled_amount=D("0.01"))
    journal.record("hrabc", OrderState.VERIFIED)
    journal.connection.close()

    again = OrderJournal(path)
    rec = again.get("hrabc")
    assert rec is not None and rec.state is OrderState.VERIFIED and rec.is_terminal
    assert rec.exchange_order_id == "42" and rec.attempts == 1 and rec.fencing_token == 7
    assert rec.filled_amount == D("0.01")
    history = again.history("hrabc")
    assert [e.state for e in history] == [OrderState.PREPARED, OrderState.SUBMITTING, OrderState.UNKNOWN,
                                          OrderState.ACKED, OrderState.FILLED, OrderState.VERIFIED]
    assert history[2].reason == "timeout" and history[1].fencing_token == 7
    assert all(a.at <= b.at for a, b in zip(history, history[1:], strict=False))
    again.create(_rec("hrdef", "s2"))
    assert [r.client_order_id for r in again.open_orders()] == ["hrdef"]
    assert again.by_signal("s1") == rec and again.by_exchange_id("nobitex", "42") == rec


def test_the_same_signal_or_client_id_cannot_be_journaled_twice(tmp_path: Path) -> None:
    journal = OrderJournal(str(tmp_path / "j.duckdb"))
    journal.create(_rec())
    with pytest.raises(JournalError, match="already journaled"):
        journal.create(_rec("other", "s1"))
    with pytest.raises(JournalError, match="already journaled"):
        journal.create(_rec("hrabc", "s9"))
    with pytest.raises(JournalError, match="no order"):
        journal.record("nope", OrderState.ACKED)
    assert len(journal.query()) == 1


def test_prepared_and_submitting_in_one_commit_keep_seq_gap_free_and_all_or_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "j.duckdb")
    journal = OrderJournal(path)
    assert journal.by_signal("s1") is None  # a miss, remembered until create() journals s1
    rec = journal.create(_rec(), then=OrderState.SUBMITTING, attempts=1, fencing_token=7)
    assert (rec.state, rec.attempts, rec.fencing_token) == (OrderState.SUBMITTING, 1, 7)
    assert journal.by_signal("s1") == rec == journal.get("hrabc")
    with pytest.raises(JournalError, match="already journaled"):
        journal.create(_rec("hrxyz", "s1"), then=OrderState.SUBMITTING, attempts=1)
    assert journal.get("hrxyz") is None
    journal.record("hrabc", OrderState.ACKED, exchange_order_id="42")
    journal.create(_rec("hrdef", "s2"))
    journal.connection.close()

    again = OrderJournal(path)
    history = again.history("hrabc")
    assert [(e.state, e.attempt, e.fencing_token) for e in history] == [
        (OrderState.PREPARED, 0, None), (OrderState.SUBMITTING, 1, 7), (OrderState.ACKED, 1, 7)]
    assert history[0].at == history[1].at  # one commit
    # The failed duplicate took no sequence number: seq stays 1, 2, 3, ... with no gap.
    seqs = [r[0] for r in again.connection.execute("SELECT seq FROM order_events ORDER BY seq").fetchall()]
    assert seqs == [1, 2, 3, 4]
    assert again.get("hrabc").state is OrderState.ACKED  # type: ignore[union-attr]
    assert [r.client_order_id for r in again.open_orders()] == ["hrabc", "hrdef"]
