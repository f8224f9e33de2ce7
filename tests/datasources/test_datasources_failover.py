"""Failover group of two replay sources: the primary goes silent, the backup takes over within
max_age + one check interval, and the group fails back when the primary recovers."""

from __future__ import annotations

import time

import anyio
import pytest

from hrkernel.bus.events import BookEvent, GapEvent
from hrkernel_datasources.config import FailoverConfig, ReplayConfig
from hrkernel_datasources.group import FailoverSource
from hrkernel_datasources.replay import ReplaySource

MAX_AGE = 0.3
CHECK = 0.1


async def wait_until(predicate, timeout: float = 5.0) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)
    return time.monotonic() - started


@pytest.mark.anyio
@pytest.mark.parametrize("failback", [True, False])
async def test_primary_goes_silent_backup_takes_over_then_fail_back(recording, book, failback: bool) -> None:  # type: ignore[no-untyped-def]
    primary = ReplaySource("primary", ReplayConfig(path=str(recording([book("BTCIRT", "100", "101")], "a.jsonl")),
                                                   interval=0.02, max_age=MAX_AGE, source_name="primary"))  # type: ignore[arg-type]
    backup = ReplaySource("backup", ReplayConfig(path=str(recording([book("BTCIRT", "200", "201")], "b.jsonl")),
                                                 interval=0.02, max_age=MAX_AGE, source_name="backup"))  # type: ignore[arg-type]
    group = FailoverSource("group", FailoverConfig(members=["primary", "backup"], max_age=MAX_AGE,  # type: ignore[arg-type]
                                                   check_interval=CHECK, failback=failback), members=[primary, backup])
    events: list[object] = []
    group.listeners.append(events.append)
    async with anyio.create_task_group() as tg:
        for source in (primary, backup, group):
            await source.start(tg)
        await wait_until(lambda: group.active == "primary")
        assert group.latest_book("BTCIRT")[0].source == "primary"  # type: ignore[index]

        primary.pause()  # connected but silent
        took = await wait_until(lambda: group.active == "backup")
        assert took <= MAX_AGE + CHECK + 0.15, f"failover took {took:.3f}s"
        assert group.latest_book("BTCIRT")[0].source == "backup"  # type: ignore[index]
        assert any(isinstance(e, GapEvent) and "backup" in e.reason for e in events)

        primary.resume()
        if failback:
            back = await wait_until(lambda: group.active == "primary")
            assert back <= CHECK + 0.15
            await wait_until(lambda: group.latest_book("BTCIRT")[0].source == "primary")  # type: ignore[index]
        else:
            await anyio.sleep(MAX_AGE + 2 * CHECK)
            assert group.active == "backup"
        for source in (primary, backup, group):
            await source.stop()
        tg.cancel_scope.cancel()
    sources = {e.source for e in events if isinstance(e, BookEvent)}
    assert sources == ({"primary", "backup"})
    assert [s[2] for s in group.switches] == (["primary", "backup", "primary"] if failback else ["primary", "backup"])


@pytest.mark.anyio
async def test_group_is_stale_when_every_member_is(recording, book) -> None:  # type: ignore[no-untyped-def]
    a = ReplaySource("a", ReplayConfig(path=str(recording([book("BTCIRT", "1", "2")], "a.jsonl")), interval=0.02, max_age=MAX_AGE))  # type: ignore[arg-type]
    b = ReplaySource("b", ReplayConfig(path=str(recording([book("BTCIRT", "1", "2")], "b.jsonl")), interval=0.02, max_age=MAX_AGE))  # type: ignore[arg-type]
    group = FailoverSource("g", FailoverConfig(members=["a", "b"], max_age=MAX_AGE, check_interval=CHECK), members=[a, b])  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        for source in (a, b, group):
            await source.start(tg)
        await wait_until(lambda: group.is_fresh())
        a.pause()
        b.pause()
        await wait_until(lambda: not group.is_fresh())
        assert (await group.check()).status == "unhealthy"
        for source in (a, b, group):
            await source.stop()
        tg.cancel_scope.cancel()


def test_a_group_needs_two_members() -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="at least two"):
        msgspec.convert({"members": ["only"]}, FailoverConfig)


@pytest.mark.anyio
async def test_members_are_found_by_datasource_id_through_the_kernel_context(recording, book) -> None:  # type: ignore[no-untyped-def]
    a = ReplaySource("replay", ReplayConfig(path=str(recording([book("BTCIRT", "1", "2")], "a.jsonl")), interval=0.02, max_age=MAX_AGE))  # type: ignore[arg-type]
    b = ReplaySource("replay", ReplayConfig(path=str(recording([book("BTCIRT", "3", "4")], "b.jsonl")), interval=0.02, max_age=MAX_AGE))  # type: ignore[arg-type]

    class Context:
        def component(self, name: str) -> object:
            return {"datasource:ws": a, "datasource:rest": b}[name]  # KeyError for "bus": no bus

    group = FailoverSource("g", FailoverConfig(members=["ws", "rest"], max_age=MAX_AGE, check_interval=CHECK), context=Context())  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        for source in (a, b, group):
            await source.start(tg)
        await wait_until(lambda: group.active == "ws")  # same source names, told apart by id
        a.pause()
        await wait_until(lambda: group.active == "rest")
        assert group.stats()["active"] == "rest" and group.stats()["switches"] == 2
        for source in (a, b, group):
            await source.stop()
        tg.cancel_scope.cancel()
