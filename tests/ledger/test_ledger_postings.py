"""Ledger: balanced transactions only, fills once, balances derived, batches all-or-nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hrkernel.exchange import Fill, Side
from hrkernel.ledger import (
    Ledger,
    Posting,
    Transaction,
    UnbalancedTransactionError,
    fill_transaction,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _fill(trade_id: str, side: Side, amount: str, price: str, fee: str = "0", fee_ccy: str = "IRT") -> Fill:
    return Fill(
        trade_id=trade_id, order_id="o1", symbol="BTCIRT", side=side, price=D(price), amount=D(amount),
        fee=D(fee), fee_currency=fee_ccy, time=NOW,
    )


def test_unbalanced_transaction_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path / "l.duckdb"))
    ok = Transaction(kind="x", postings=(Posting("a", "BTC", D(1)), Posting("b", "BTC", D(-1))))
    bad = Transaction(kind="x", postings=(Posting("a", "BTC", D(1)), Posting("b", "IRT", D(-1))))
    with pytest.raises(UnbalancedTransactionError, match=r"item 1.*BTC \+1"):
        ledger.post_many([ok, bad])
    assert ledger.balances() == {}


def test_float_and_oversized_amounts_are_refused(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path / "l.duckdb"))
    with pytest.raises(UnbalancedTransactionError, match="DECIMAL"):
        ledger.post(Transaction(kind="x", postings=(Posting("a", "B", D("1e-19")), Posting("b", "B", D("-1e-19")))))
    with pytest.raises(UnbalancedTransactionError, match="Decimal"):
        ledger.post(Transaction(kind="x", postings=(Posting("a", "B", 0.5), Posting("b", "B", -0.5))))  # type: ignore[arg-type]


def test_a_fill_posts_base_quote_and_fee_legs_once(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path / "l.duckdb"))
    ledger.deposit("nobitex", "IRT", D("1000"))
    fill = _fill("t1", Side.BUY, "0.5", "100", fee="2", fee_ccy="IRT")
    assert ledger.post_fill("nobitex", "BTC", "IRT", fill) is not None
    assert ledger.post_fill("nobitex", "BTC", "IRT", fill) is None  # same (exchange, trade id)
    assert ledger.post_many([fill_transaction("nobitex", "BTC", "IRT", fill)] * 2) == [None, None]
    assert ledger.venue_balances("nobitex") == {"BTC": D("0.5"), "IRT": D("948")}
    assert ledger.balance("fees:nobitex:IRT", "IRT") == D(2)
    assert ledger.balance("trades:nobitex:BTC", "BTC") == D("-0.5")
    assert ledger.has_fill("nobitex", "t1") and not ledger.has_fill("other", "t1")


def test_positions_are_the_venue_holdings_with_the_fees_paid_there(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path / "l.duckdb"))
    ledger.deposit("nobitex", "IRT", D("1000"))
    ledger.post_fill("nobitex", "BTC", "IRT", _fill("t1", Side.BUY, "0.5", "100", fee="2", fee_ccy="IRT"))
    ledger.post_fill("nobitex", "BTC", "IRT", _fill("t2", Side.SELL, "0.2", "110", fee="1", fee_ccy="IRT"))
    positions = {(p["exchange"], p["asset"]): (p["amount"], p["fees_paid"]) for p in ledger.positions()}
    assert positions == {("nobitex", "BTC"): (D("0.3"), D(0)), ("nobitex", "IRT"): (D("969"), D(3))}


def test_the_same_trade_id_twice_in_one_batch_is_posted_once(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path / "l.duckdb"))
    tx = fill_transaction("nobitex", "BTC", "IRT", _fill("t9", Side.SELL, "1", "10"))
    ids = ledger.post_many([tx, tx])
    assert ids[0] is not None and ids[1] is None
    assert ledger.venue_balances("nobitex") == {"BTC": D(-1), "IRT": D(10)}


def test_ledger_survives_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "l.duckdb")
    ledger = Ledger(path)
    ledger.post_fill("nobitex", "BTC", "IRT", _fill("t1", Side.BUY, "1", "5"))
    ledger.connection.close()
    again = Ledger(path)
    assert again.post_fill("nobitex", "BTC", "IRT", _fill("t1", Side.BUY, "1", "5")) is None
    assert again.adjust("nobitex", "BTC", D("0.1"), "drift") > 1
    assert again.venue_balances("nobitex") == {"BTC": D("1.1"), "IRT": D(-5)}
    assert [t.reason for t in again.transactions() if t.kind == "adjustment"] == ["drift"]


def test_adjustment_needs_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reason"):
        Ledger(str(tmp_path / "l.duckdb")).adjust("nobitex", "BTC", D(1), "")


def test_reads_on_the_reader_cursor_see_committed_state(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path / "l.duckdb"))
    ledger.deposit("nobitex", "USDT", D("10"))
    assert ledger.venue_balances("nobitex") == {"USDT": D(10)}
    assert ledger.has_postings("nobitex") and not ledger.has_postings("other")


amounts = st.decimals(min_value=D("0.00000001"), max_value=D("1000"), places=8)
prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
ops = st.one_of(
    st.tuples(st.just("fill"), st.sampled_from([Side.BUY, Side.SELL]), amounts, prices, amounts,
              st.sampled_from(["BTC", "IRT"]), st.integers(0, 30)),
    st.tuples(st.just("adjust"), st.sampled_from(["BTC", "IRT", "USDT"]),
              st.decimals(min_value=D("-1000"), max_value=D("1000"), places=18)),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("deposit"), st.sampled_from(["BTC", "IRT"]), amounts),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(ops, max_size=40), st.integers(1, 7))
def test_random_activity_keeps_every_transaction_balanced_and_matches_a_reference_model(
    tmp_path_factory: pytest.TempPathFactory, script: list[tuple], batch: int
) -> None:
    ledger = Ledger(":memory:")
    assert ledger.balances() == {}  # loads the running totals: every post below moves them
    model: dict[tuple[str, str], D] = {}

    def move(account: str, ccy: str, amount: D) -> None:
        model[(account, ccy)] = model.get((account, ccy), D(0)) + amount

    posted_trades: set[str] = set()
    pending: list[Transaction] = []
    for op in script:
        if op[0] == "fill":
            _, side, amount, price, fee, fee_ccy, tid = op
            fill = _fill(f"t{tid}", side, str(amount), str(price), str(fee), fee_ccy)
            pending.append(fill_transaction("ex", "BTC", "IRT", fill))
            if fill.trade_id not in posted_trades:  # duplicates (replays) are posted once
                posted_trades.add(fill.trade_id)
                sign = 1 if side is Side.BUY else -1
                notional = (amount * price).quantize(D(1).scaleb(-18))
                move("ex:BTC", "BTC", sign * amount)
                move("trades:ex:BTC", "BTC", -sign * amount)
                move("ex:IRT", "IRT", -sign * notional)
                move("trades:ex:IRT", "IRT", sign * notional)
                if fee:
                    move(f"ex:{fee_ccy}", fee_ccy, -fee)
                    move(f"fees:ex:{fee_ccy}", fee_ccy, fee)
        elif op[0] == "adjust":
            _, ccy, amount = op
            if amount:
                pending.append(Transaction(kind="adjustment", reason="test", postings=(
                    Posting(f"ex:{ccy}", ccy, amount), Posting("adjustments:ex", ccy, -amount))))
                move(f"ex:{ccy}", ccy, amount)
                move("adjustments:ex", ccy, -amount)
        elif op[0] == "deposit":
            _, ccy, amount = op
            pending.append(Transaction(kind="deposit", postings=(
                Posting(f"ex:{ccy}", ccy, amount), Posting("external:deposits", ccy, -amount))))
            move(f"ex:{ccy}", ccy, amount)
            move("external:deposits", ccy, -amount)
        # a cancel moves no value: nothing is posted
        if len(pending) >= batch:
            ledger.post_many(pending)
            pending = []
    ledger.post_many(pending)
    assert ledger.unbalanced_transactions() == []
    expected = {k: v for k, v in model.items()}
    got = ledger.balances()
    for key in set(expected) | set(got):
        assert got.get(key, D(0)) == expected.get(key, D(0)), key
    assert ledger.balances_from_postings() == got  # the running totals equal a full recount
    per_ccy: dict[str, D] = {}
    for (_, ccy), amount in got.items():
        per_ccy[ccy] = per_ccy.get(ccy, D(0)) + amount
    assert all(v == 0 for v in per_ccy.values())


@pytest.mark.anyio
async def test_group_commit_writes_a_burst_of_concurrent_fills_in_few_commits(tmp_path: Path) -> None:
    import anyio

    from hrkernel.ledger import LedgerWriter

    ledger = Ledger(str(tmp_path / "l.duckdb"))
    writer = LedgerWriter(ledger)
    results: dict[int, list[int | None]] = {}

    async def poster(i: int) -> None:
        tx = fill_transaction("nobitex", "BTC", "IRT", _fill(f"g{i % 150}", Side.BUY, "0.1", "10"))
        results[i] = await writer.post([tx])

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        async with anyio.create_task_group() as posters:
            for i in range(300):
                posters.start_soon(poster, i)
        tg.cancel_scope.cancel()
    assert writer.batches <= 3, writer.batches
    assert sum(1 for ids in results.values() if ids[0] is not None) == 150  # 150 duplicates posted once
    assert ledger.venue_balances("nobitex") == {"BTC": D(15), "IRT": D(-150)}
    with pytest.raises(UnbalancedTransactionError):
        await writer.post([Transaction(kind="x", postings=(Posting("a", "B", D(1)),))])


def test_a_write_to_an_unwritable_database_reports_its_own_error_not_the_failed_rollback(tmp_path: Path) -> None:
    """With the data dir made immutable (as the chaos `duckdb_readonly` fault does), a posting
    fails and DuckDB ends the transaction itself: the error raised is the write's, not the
    "no transaction is active" of the ROLLBACK after it; nothing is half-written and the ledger
    works again once the directory is writable."""
    import duckdb as _duckdb

    from hrkernel_chaos.readonly import ReadOnlyDir

    ledger = Ledger(str(tmp_path / "l.duckdb"))
    ledger.deposit("x", "RLS", D("100"))
    ro = ReadOnlyDir(tmp_path)
    ro.make_readonly()
    try:
        with pytest.raises(_duckdb.Error) as caught:
            ledger.deposit("x", "RLS", D("5"))
        assert "no transaction is active" not in str(caught.value), caught.value
    finally:
        ro.restore()
    assert ledger.balances_from_postings()[("x:RLS", "RLS")] == D("100")
    ledger.deposit("x", "RLS", D("5"))
    assert ledger.balances_from_postings()[("x:RLS", "RLS")] == D("105")


def test_balances_answer_while_a_commit_holds_the_ledger_and_then_include_it(tmp_path: Path) -> None:
    """The order path checks balances on the event loop while the ledger writer's thread commits
    (holding the ledger's lock through DuckDB's commit): the check must not wait for it."""
    import threading
    import time

    ledger = Ledger(str(tmp_path / "l.duckdb"))
    ledger.deposit("nobitex", "IRT", D("1000"))
    assert ledger.venue_balances("nobitex") == {"IRT": D("1000")}
    released = threading.Event()

    def hold() -> None:  # a commit in progress, as long as a slow disk makes it
        with ledger._lock:
            released.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        time.sleep(0.05)
        t0 = time.perf_counter()
        assert ledger.venue_balances("nobitex") == {"IRT": D("1000")}
        assert time.perf_counter() - t0 < 1.0
    finally:
        released.set()
        holder.join()
    ledger.deposit("nobitex", "IRT", D("5"))
    assert ledger.venue_balances("nobitex") == {"IRT": D("1005")} == {
        c: v for (a, c), v in ledger.balances_from_postings().items() if a == "nobitex:IRT"}
