"""Group commit: work that arrives in bursts (a Swiss round's 512 results within a second) is
done in batches, one transaction each, instead of one transaction per item.

A :class:`Batcher` runs one batch at a time. An item submitted while the database is idle is
done at once, alone (no waiting for company: at low load the latency is one transaction);
items submitted while a batch runs wait for it and go together in the next one, at most
``items_per_batch_max`` of them. So the batch size follows the load by itself, as in
PostgreSQL's and TigerBeetle's group commit.

A batch that fails is done again one item at a time, so one bad item fails only its own
caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("leetgaming.batching")

# What a batch's work returns: one result per item, in order, and what to do after its
# commit (announcements), before the callers hear their results and the next batch starts.
Done = tuple[list[R], Callable[[], Awaitable[None]] | None]


class Batcher(Generic[T, R]):
    def __init__(
        self, run: Callable[[Sequence[T]], Awaitable[Done[R]]], items_per_batch_max: int
    ) -> None:
        if items_per_batch_max < 1:
            raise ValueError("items_per_batch_max must be at least 1")
        self._run = run
        self.items_per_batch_max = items_per_batch_max
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0  # how many batches ran (for tests and metrics)

    async def submit(self, item: T) -> R:
        """Do ``item`` in the next batch; its result (or the exception its batch raised)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work())
        # the caller giving up (a closed connection) does not take the item out of its batch
        return await asyncio.shield(future)

    async def _work(self) -> None:
        while self._pending:
            batch = self._pending[: self.items_per_batch_max]
            del self._pending[: self.items_per_batch_max]
            self.batches += 1
            try:
                await self._done(batch)
            except Exception as exc:
                if len(batch) == 1:
                    _fail(batch, exc)
                    continue
                log.warning("a batch failed: its items done one by one", exc_info=True)
                for one in batch:
                    try:
                        await self._done([one])
                    except Exception as alone:
                        _fail([one], alone)
            except BaseException as exc:  # cancelled: the callers hear it
                _fail(batch, exc)
                for _, future in self._pending:
                    future.cancel()
                self._pending.clear()
                raise

    async def _done(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        results, then = await self._run([item for item, _ in batch])
        if len(results) != len(batch):
            raise RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")
        if then is not None:
            try:
                await then()
            except Exception:
                log.exception("after a batch")
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def stop(self) -> None:
        """Wait for the batch under way and those queued behind it."""
        while self._worker is not None and not self._worker.done():
            await asyncio.gather(self._worker, return_exceptions=True)


def _fail(batch: Sequence[tuple[object, asyncio.Future[R]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
