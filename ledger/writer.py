"""The ledger as the product uses it: one batching writer per process around a store.

Callers hand in requests (lists of transfers) concurrently; a writer task takes every request
that is waiting, up to ``batch_transfers_max`` transfers, and applies them as one batch in one
database transaction, then answers each caller with its own outcomes. Two writer tasks by
default, so one batch is validated while the other waits for its COMMIT; they never see stale
counters, because each batch locks its accounts in the database (as two processes would). Under load a batch fills
while the previous one commits, so one COMMIT (and one lock of each hot account) is paid for
hundreds of transfers; with no load a request is written alone and at once. Nothing is answered
before its COMMIT.

Several processes (and several nodes) may each run a writer against one PostgreSQL database:
no process owns any account. Each batch locks the accounts it touches in the database for the
length of its transaction, so all writers see and leave consistent counters (see
:mod:`ledger.postgres_store`).

The writer also voids holds whose timeout ran out (``expire_due``), on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .account import Account, AccountState, Balance
from .posting import NS_PER_S, Command, TransferOutcome
from .result import CreateAccountResult, CreateTransferResult
from .store import HistoryPage, LedgerStore
from .transfer import Expire, Transfer, TransferRecord

log = logging.getLogger("ledger")


class LedgerBusy(Exception):
    """Too many requests are waiting for the writer; retry later (the request changed nothing)."""


class LedgerClosed(Exception):
    """The ledger is shutting down; the request was not applied."""


class RequestTooLarge(ValueError):
    """A request carries more transfers than ``request_transfers_max``."""


@dataclass(frozen=True, slots=True)
class LedgerLimits:
    request_transfers_max: int = 8190  # transfers in one create_transfers call
    batch_transfers_max: int = 8190  # transfers in one database transaction
    queue_requests_max: int = 100_000  # requests waiting for the writer before LedgerBusy
    expiry_interval_s: float = 1.0
    expiry_batch_max: int = 1000
    expiry_lookback_s: int = 300  # how far behind the last sweep a late hold is still found


def wall_clock_ns() -> int:
    return time.time_ns()


@dataclass(slots=True)
class _Request:
    commands: Sequence[Command]
    future: asyncio.Future[list[TransferOutcome]]


class Ledger:
    """See the module docstring. ``async with Ledger(store) as ledger: ...``"""

    def __init__(
        self,
        store: LedgerStore,
        *,
        clock_ns: Callable[[], int] = wall_clock_ns,
        limits: LedgerLimits | None = None,
        expire_on_timer: bool = True,
        writers: int = 2,
    ) -> None:
        if writers < 1:
            raise ValueError("a ledger needs at least one writer task")
        self.store = store
        self._clock_ns = clock_ns
        self.limits = limits or LedgerLimits()
        self._queue: deque[_Request] = deque()
        self._wakeup = asyncio.Event()
        self._writer_count = writers
        self._writers: list[asyncio.Task[None]] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._expire_on_timer = expire_on_timer
        self._swept_until_ns = 0
        self._closing = False
        self.batches_written = 0
        self.transfers_written = 0

    async def __aenter__(self) -> Ledger:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        if not self._writers:
            self._writers = [
                asyncio.create_task(self._write_loop(), name=f"ledger-writer-{n}")
                for n in range(self._writer_count)
            ]
        if self._expire_on_timer and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._expiry_loop(), name="ledger-expiry")

    async def close(self) -> None:
        """Finish every request already accepted, then stop."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._writers:
            self._wakeup.set()
            await asyncio.gather(*self._writers)
            self._writers = []

    def stats(self) -> dict[str, int]:
        return {
            "transfers_written": self.transfers_written,
            "batches_written": self.batches_written,
            "queued_requests": len(self._queue),
        }

    # Writes ------------------------------------------------------------------------------

    async def create_accounts(self, accounts: Sequence[Account]) -> list[CreateAccountResult]:
        if len(accounts) > self.limits.request_transfers_max:
            raise RequestTooLarge(f"at most {self.limits.request_transfers_max} accounts a request")
        return await self.store.create_accounts(accounts, self._clock_ns())

    async def create_transfers(self, transfers: Sequence[Transfer]) -> list[TransferOutcome]:
        """Apply the transfers (in order, linked chains whole); one outcome per transfer."""
        if len(transfers) > self.limits.request_transfers_max:
            raise RequestTooLarge(
                f"at most {self.limits.request_transfers_max} transfers a request, got {len(transfers)}"
            )
        for t in transfers:
            if not isinstance(t, Transfer):
                raise TypeError(f"create_transfers takes Transfer objects, not {type(t).__name__}")
        if not transfers:
            return []
        return await self._submit(transfers)

    async def create_transfer(self, transfer: Transfer) -> TransferOutcome:
        return (await self.create_transfers([transfer]))[0]

    async def _submit(self, commands: Sequence[Command]) -> list[TransferOutcome]:
        if self._closing or not self._writers:
            raise LedgerClosed("the ledger is not running")
        if len(self._queue) >= self.limits.queue_requests_max:
            raise LedgerBusy(f"{len(self._queue)} requests are waiting for the ledger writer")
        future: asyncio.Future[list[TransferOutcome]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(commands, future))
        self._wakeup.set()
        return await future

    async def _write_loop(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch: list[_Request] = []
            size = 0
            while self._queue and (
                not batch or size + len(self._queue[0].commands) <= self.limits.batch_transfers_max
            ):
                request = self._queue.popleft()
                batch.append(request)
                size += len(request.commands)
            try:
                outcomes = await self.store.apply([r.commands for r in batch], self._clock_ns())
            except Exception as error:  # the transaction rolled back: nothing was applied
                log.error(
                    "ledger batch failed", extra={"error": type(error).__name__, "transfers": size}
                )
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            self.batches_written += 1
            self.transfers_written += size
            for request, result in zip(batch, outcomes, strict=True):
                if not request.future.done():
                    request.future.set_result(result)

    # Expiry ------------------------------------------------------------------------------

    async def expire_due(self) -> int:
        """Void every hold whose timeout has run out; returns how many were voided."""
        now = self._clock_ns()
        since = max(0, self._swept_until_ns - self.limits.expiry_lookback_s * NS_PER_S)
        voided = 0
        while True:
            due = await self.store.due_pending(now, since, self.limits.expiry_batch_max)
            if not due:
                break
            outcomes = await self._submit([Expire(pending_id) for pending_id in due])
            voided += sum(o.result is CreateTransferResult.OK for o in outcomes)
            if len(due) < self.limits.expiry_batch_max:
                break
            # Holds resolved meanwhile answer "already …" and drop out of the next query.
        self._swept_until_ns = now
        return voided

    async def _expiry_loop(self) -> None:
        while True:
            try:
                await self.expire_due()
            except (LedgerClosed, asyncio.CancelledError):
                raise
            except Exception as error:
                log.error("ledger expiry sweep failed", extra={"error": type(error).__name__})
            await asyncio.sleep(self.limits.expiry_interval_s)

    # Reads -------------------------------------------------------------------------------

    async def lookup_accounts(self, ids: Sequence[int]) -> list[AccountState]:
        return await self.store.lookup_accounts(ids)

    async def lookup_transfers(self, ids: Sequence[int]) -> list[TransferRecord]:
        return await self.store.lookup_transfers(ids)

    async def history(
        self,
        account_id: int,
        *,
        cursor: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> HistoryPage:
        return await self.store.history(
            account_id, cursor=cursor, limit=limit, newest_first=newest_first
        )

    async def balance_at(self, account_id: int, timestamp_ns: int) -> Balance:
        return await self.store.balance_at(account_id, timestamp_ns)
