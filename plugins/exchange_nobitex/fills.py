"""The account's fills, read through one shared, paced poll of ``/market/trades/list``.

Nobitex answers "which trades filled this order" only through ``/market/trades/list`` (the
account's trades of the last 3 days, newest first, 30 requests a minute), and the order
pipeline asks for an order's fills each time the order's filled amount moves. One request per
question spends the minute's budget on the first 30 orders of a burst and leaves the rest
unverified for up to a minute. :class:`FillFeed` instead keeps the trades it has read and
answers ``order_fills`` from them:

* An order whose status says nothing is filled needs no request at all.
* An order whose filled amount the known trades already cover is answered from them.
* Otherwise the call needs a poll *sent after it asked* (earlier ones may predate its fill). At
  most one poll is in flight (single flight): every call arriving meanwhile waits for it, checks
  again and, if still short, shares the next one. A poll asks only for trades newer than any seen
  (``fromId``, documented as "id >= fromId"), page after page while ``hasNext``.
* Polls are paced to the endpoint's limit spread evenly (``per / requests``: one every 2 s for
  Nobitex's 30/min) with a small burst, so sustained load never uses the whole window up front
  and then waits a minute; every request also passes the adapter's exact sliding-window limiter
  and any 429 ``backOff`` it recorded. A call waits for the next slot (up to ``fills_wait``)
  instead of failing.
* If a poll sent after the call did not cover the order (its trades are older than the feed's
  first poll, were dropped from the cache, or appeared out of id order), the call scans the
  order's market newest first, a few pages, down to the order's creation time. One scan serves
  every call left short by the same poll: if it read back past their orders, their trades are
  simply not listed yet, and they wait for the next poll instead of scanning again.

A poll that fails for another reason than a rate limit fails every call waiting on it; the
caller retries (the pipeline does, with its own back-off). Takes the transport's clock and sleep.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio

from hrkernel.exchange import Fill, Order
from hrkernel.exchange import errors as ex
from hrkernel_nobitex import wire
from hrkernel_nobitex.config import NobitexConfig
from hrkernel_nobitex.transport import Transport

ENDPOINT = "list_trades"
PATH = "/market/trades/list"
MAX_POLL_PAGES = 20
"""Pages one poll reads at most (2,000 new trades at 100 a page); the rest is left to scans."""
SCAN_PAGES = 5
"""Pages a scan for one order's missing trades reads at most."""
SCAN_SLACK = timedelta(minutes=1)
"""A scan stops at trades this much older than the order's creation time."""
MAX_CACHED = 20_000
"""Trades kept at most (the oldest read are dropped first)."""


class NoSlotError(ex.RateLimitedError):
    """No ``/market/trades/list`` request could be sent within the call's ``fills_wait``."""


class FillFeed:
    """See the module docstring. One per exchange (per account: Nobitex's token)."""

    def __init__(self, transport: Transport, config: NobitexConfig, *, log: Any) -> None:
        self.transport = transport
        self.limits = transport.limits
        self.clock = transport.clock
        self.sleep = transport.sleep
        self.log = log
        self.page_size = config.fills_page_size
        self.wait = float(config.fills_wait)
        self.interval = float(config.fills_poll_interval)
        if self.interval <= 0 and self.limits.enabled and ENDPOINT in self.limits.limits:
            count, per = self.limits.limits[ENDPOINT]
            self.interval = per / max(1, count)
        self.tolerance = max(0, config.fills_poll_burst - 1) * self.interval
        self._tat: float | None = None  # pacing: theoretical time of the next request (GCRA)
        self._trades: OrderedDict[str, Fill] = OrderedDict()
        self._by_order: dict[str, dict[str, Fill]] = {}
        self._cursor: int | None = None  # fromId of the next poll: one past the highest id read
        self._epoch = 0  # polls sent (counted just before the first page goes out)
        self._fresh = 0  # epoch of the newest poll that completed
        self._polling: anyio.Event | None = None
        self._failure: tuple[anyio.Event, Exception] | None = None  # the last poll's, if it failed
        self._scan_lock = anyio.Lock()
        self._scans: dict[str, tuple[int, datetime | None]] = {}
        """Per market, the last scan: the poll it followed, and how far back it read (None: all)."""
        self.stats = {"calls": 0, "answered_from_cache": 0, "nothing_filled": 0, "polls": 0, "scans": 0,
                      "requests": 0, "short": 0}

    # ------------------------------------------------------------------ answers

    def known(self, order_id: str) -> list[Fill]:
        """The fills of ``order_id`` read so far, oldest first."""
        fills = list(self._by_order.get(order_id, {}).values())
        fills.sort(key=lambda f: (f.time, _id_key(f.trade_id)))
        return fills

    def _covers(self, order: Order) -> bool:
        have = sum((f.amount for f in self._by_order.get(order.exchange_id, {}).values()), Decimal(0))
        return have >= order.filled_amount

    def snapshot(self) -> dict[str, Any]:
        return {**self.stats, "cached_trades": len(self._trades), "cursor": self._cursor,
                "poll_interval": self.interval}

    async def order_fills(self, order: Order) -> list[Fill]:
        """Every fill of ``order`` once the known trades add up to its ``filled_amount``."""
        self.stats["calls"] += 1
        if order.filled_amount <= 0:
            # The order's own status says nothing was filled: nothing to read.
            self.stats["nothing_filled"] += 1
            return []
        if self._covers(order):
            self.stats["answered_from_cache"] += 1
            return self.known(order.exchange_id)
        deadline = self.clock() + self.wait
        needed_after = self._epoch  # a poll sent from now on sees every trade that exists now
        polled = scanned = False
        while not self._covers(order):
            if self._fresh > needed_after:
                # A poll sent after this call asked has come back without the order's trades.
                polled = True
                if not scanned:
                    await self._retrying(self._scan(order, deadline, self._fresh), deadline)
                    scanned = True
                    continue
                needed_after = self._epoch  # the exchange may list them late: wait for another
            if self.clock() >= deadline:
                return self._short(order, polled)
            if self._polling is not None:
                await self._join(self._polling, deadline)
            else:
                await self._retrying(self._poll(deadline), deadline)
        return self.known(order.exchange_id)

    async def _retrying(self, step: Coroutine[Any, Any, None], deadline: float) -> None:
        """Run ``step``; a 429 (its ``backOff`` is now in the limiter) is waited out by the next
        step's slot instead of failing the call. No slot before ``deadline`` does fail it."""
        try:
            await step
        except NoSlotError:
            raise
        except ex.RateLimitedError as exc:
            self.log.info("fills_poll_rate_limited", error=str(exc), retry_after=exc.retry_after)
            if self.limits.delay(ENDPOINT) <= 0:
                # Refused without a backOff to honour (bulkhead full, pool busy): breathe.
                await self.sleep(max(0.0, min(1.0, deadline - self.clock())))

    def _short(self, order: Order, polled: bool) -> list[Fill]:
        fills = self.known(order.exchange_id)
        if not polled:
            # Not one poll went out and came back in time: say so instead of guessing.
            raise NoSlotError(
                f"no /market/trades/list poll answered within {self.wait:.0f}s for order {order.exchange_id}",
                retry_after=None, exchange=wire.EXCHANGE, endpoint=ENDPOINT)
        self.stats["short"] += 1
        self.log.warning("order_fills_short", exchange_id=order.exchange_id, filled=str(order.filled_amount),
                         found=str(sum((f.amount for f in fills), Decimal(0))), waited=self.wait)
        return fills

    async def _join(self, event: anyio.Event, deadline: float) -> None:
        with anyio.move_on_after(max(0.0, deadline - self.clock())):
            await event.wait()
        failure = self._failure
        if failure is not None and failure[0] is event and not isinstance(failure[1], ex.RateLimitedError):
            # The poll this call waited for failed: fail like it (no stampede of retries).
            raise failure[1].with_traceback(None)

    # ------------------------------------------------------------------ requests

    async def _slot(self, deadline: float) -> None:
        """Wait until pacing and the endpoint's limiter (with any 429 backOff) admit a request."""
        while True:
            now = self.clock()
            pace = 0.0 if self._tat is None or self.interval <= 0 else self._tat - self.tolerance - now
            wait = max(self.limits.delay(ENDPOINT), pace)
            if wait <= 0:
                break
            if now + wait > deadline:
                raise NoSlotError(
                    f"next /market/trades/list slot in {wait:.1f}s, past this call's wait", retry_after=wait,
                    exchange=wire.EXCHANGE, endpoint=ENDPOINT)
            await self.sleep(wait)
        if self.interval > 0:
            self._tat = max(self._tat if self._tat is not None else now, now) + self.interval

    async def _send(self, params: dict[str, Any]) -> wire.TradesReply:
        self.stats["requests"] += 1
        reply: wire.TradesReply = await self.transport.call(ENDPOINT, "GET", PATH, wire.TradesReply,
                                                            params=dict(params))
        return reply

    async def _page(self, params: dict[str, Any], deadline: float) -> wire.TradesReply:
        await self._slot(deadline)
        return await self._send(params)

    async def _poll(self, deadline: float) -> None:
        """Read the trades newer than any seen (this task leads; others join)."""
        event = self._polling = anyio.Event()
        epoch = self._epoch + 1
        try:
            await self._slot(deadline)
            # Counted once the request is about to leave: a call asking from now on may have a
            # fill this request does not see, and needs the next poll.
            self._epoch = epoch
            self.stats["polls"] += 1
            cursor = self._cursor
            params: dict[str, Any] = {"pageSize": self.page_size}
            if cursor is not None:
                params["fromId"] = cursor
            reply = await self._send(params)
            highest = _max_id(None, self._ingest(reply.trades))
            page = 1
            # Without a cursor (the first poll) the newest page is where the feed starts.
            while reply.hasNext and cursor is not None:
                if page == MAX_POLL_PAGES:
                    # The older remainder is left to per-order scans.
                    self.log.warning("fills_poll_truncated", pages=page, from_id=cursor)
                    break
                page += 1
                reply = await self._page(params | {"page": page}, deadline)
                highest = _max_id(highest, self._ingest(reply.trades))
            if highest is not None:
                self._cursor = highest + 1 if cursor is None else max(cursor, highest + 1)
            self._fresh = epoch
            self._failure = None
        except Exception as exc:
            self._failure = (event, exc)
            raise
        finally:
            self._polling = None
            event.set()

    async def _scan(self, order: Order, deadline: float, after: int) -> None:
        """Read ``order``'s market newest first until its trades are there or the list is read
        back past the order's creation. ``after``: the poll that came back without them."""
        with anyio.move_on_after(max(0.0, deadline - self.clock())) as scope:
            await self._scan_lock.acquire()
        if scope.cancelled_caught:
            return
        try:
            if self._covers(order):
                return  # another call's scan found them
            floor = _aware(order.created_at) - SCAN_SLACK if order.created_at is not None else None
            last = self._scans.get(order.symbol)
            if last is not None and last[0] >= after and (last[1] is None or (floor is not None and last[1] <= floor)):
                # A scan since that poll read this market back past the order: its trades are not
                # listed yet (the exchange lags); scanning again would only spend the budget.
                return
            self.stats["scans"] += 1
            started = self._fresh
            reached: datetime | None = None  # None: the whole list was read
            src, dst = wire.request_codes(order.symbol)
            for page in range(1, SCAN_PAGES + 1):
                params = {"srcCurrency": src, "dstCurrency": dst, "pageSize": self.page_size, "page": page}
                reply = await self._page(params, deadline)
                fills = self._ingest(reply.trades)
                if not reply.hasNext or not fills:
                    reached = None
                    break
                reached = min(f.time for f in fills)
                if self._covers(order) or (floor is not None and reached < floor):
                    break
            else:
                self.log.warning("fills_scan_truncated", exchange_id=order.exchange_id, pages=SCAN_PAGES)
            self._scans[order.symbol] = (started, reached)
        finally:
            self._scan_lock.release()

    # ------------------------------------------------------------------ cache

    def ingest(self, fills: list[Fill]) -> None:
        """Remember fills read elsewhere (``recent_fills``)."""
        for fill in fills:
            self._remember(fill)
        self._prune()

    def _ingest(self, trades: list[wire.WireTrade]) -> list[Fill]:
        fills = [wire.fill_from_wire(t) for t in trades]
        self.ingest(fills)
        return fills

    def _remember(self, fill: Fill) -> None:
        if fill.trade_id in self._trades:
            return
        self._trades[fill.trade_id] = fill
        self._by_order.setdefault(fill.order_id, {})[fill.trade_id] = fill

    def _prune(self) -> None:
        while len(self._trades) > MAX_CACHED:
            _, old = self._trades.popitem(last=False)
            siblings = self._by_order.get(old.order_id)
            if siblings is not None:
                siblings.pop(old.trade_id, None)
                if not siblings:
                    del self._by_order[old.order_id]


def _id_key(trade_id: str) -> tuple[int, int, str]:
    try:
        return (0, int(trade_id), "")
    except ValueError:
        return (1, 0, trade_id)


def _max_id(current: int | None, fills: list[Fill]) -> int | None:
    """The highest integer trade id among ``fills`` and ``current`` (Nobitex's ids are integers;
    a non-integer one leaves the cursor alone rather than guessing)."""
    for fill in fills:
        try:
            value = int(fill.trade_id)
        except ValueError:
            continue
        current = value if current is None else max(current, value)
    return current


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
