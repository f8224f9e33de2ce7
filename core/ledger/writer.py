"""Group commit: many concurrent posters, one DuckDB transaction per burst.

``await writer.post(txs)`` queues the transactions and waits until they are committed; a single
task (``run``, started in the owner's task group) takes everything queued at that moment (up to
``max_batch`` transactions) and writes it with one :meth:`Ledger.post_many`. A burst of fills from
many orders verifying at once therefore costs one commit, not one per fill. If the batch fails
(an unbalanced transaction), each waiter's own transactions are retried alone so only the bad
ones get the error. The DuckDB commit runs in a worker thread: a single fill's posting (a commit of
5-7 ms on a slow disk) never stalls the event loop, so it does not delay the next order's send.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.lowlevel

from hrkernel.ledger.ledger import Ledger, Transaction, _check

__all__ = ["LedgerWriter"]


class _Request:
    __slots__ = ("done", "error", "ids", "txs")

    def __init__(self, txs: Sequence[Transaction]) -> None:
        self.txs = list(txs)
        self.done = anyio.Event()
        self.ids: list[int | None] = []
        self.error: BaseException | None = None


class LedgerWriter:
    def __init__(self, ledger: Ledger, *, max_batch: int = 10_000) -> None:
        self.ledger = ledger
        self.max_batch = max_batch
        self._queue: list[_Request] = []
        self._wake = anyio.Event()
        self.batches = 0
        """Commits made so far (for metrics and tests)."""

    async def post(self, txs: Sequence[Transaction]) -> list[int | None]:
        for i, tx in enumerate(txs):
            _check(tx, f"ledger post item {i}")  # refuse bad input at the caller, not in the batch
        request = _Request(txs)
        self._queue.append(request)
        self._wake.set()
        await request.done.wait()
        if request.error is not None:
            raise request.error
        return request.ids

    def _take(self) -> list[_Request]:
        batch: list[_Request] = []
        count = 0
        while self._queue and (not batch or count + len(self._queue[0].txs) <= self.max_batch):
            request = self._queue.pop(0)
            batch.append(request)
            count += len(request.txs)
        return batch

    def flush(self) -> None:
        """Write everything queued now (synchronously, on the calling thread)."""
        while self._queue:
            batch = self._take()
            self._write(batch)
            for request in batch:
                request.done.set()

    async def _flush_off_loop(self) -> None:
        """Write everything queued now; the DuckDB work runs in a worker thread, and the waiters
        are woken here, on the loop (anyio events are not thread-safe)."""
        while self._queue:
            batch = self._take()
            try:
                await anyio.to_thread.run_sync(self._write, batch)  # waits for the thread even if cancelled
            finally:
                for request in batch:
                    request.done.set()

    def _write(self, batch: list[_Request]) -> None:
        try:
            ids = self.ledger.post_many([tx for r in batch for tx in r.txs])
            self.batches += 1
        except Exception:
            for request in batch:  # isolate the failing request(s)
                try:
                    request.ids = self.ledger.post_many(request.txs)
                    self.batches += 1
                except Exception as exc:
                    request.error = exc
            return
        at = 0
        for request in batch:
            request.ids = ids[at : at + len(request.txs)]
            at += len(request.txs)

    async def run(self) -> None:
        """The writer task: start it in a task group; cancelling it flushes what is queued."""
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                # Let every poster that is ready in this loop iteration join the batch.
                await anyio.lowlevel.checkpoint()
                await self._flush_off_loop()
        finally:
            self.flush()
