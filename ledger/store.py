"""The ledger store port: what the SQLite and PostgreSQL adapters both provide.

A store is a thin shell around :mod:`ledger.posting`. ``apply`` runs one database transaction:
load what the batch touches (accounts locked against other writers), call the pure posting
rules, write the new records and the accounts' counters, commit; only a committed batch returns.
Everything else is a read.

The store never decides what a transfer does; it guarantees that the view it hands the core is
current for the rows it locked, and that two writers (tasks or processes) can never record the
same transfer id or resolve the same hold twice: the database's unique indexes refuse it, and a
batch that loses such a race is re-run against the winner's rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from .account import Account, AccountState, Balance
from .asset import Asset
from .posting import Command, TransferOutcome
from .result import CreateAccountResult
from .transfer import TransferRecord

HISTORY_PAGE_MAX = 1000


@dataclass(frozen=True, slots=True)
class HistoryPage:
    records: list[TransferRecord]
    next_cursor: int | None  # pass as ``cursor`` to get the next page; None at the end


class LedgerStore(Protocol):
    async def migrate(self) -> None:
        """Create or upgrade the schema, and register the built-in assets. Idempotent."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise when the database cannot answer."""

    async def create_assets(self, assets: Sequence[Asset]) -> list[CreateAccountResult]:
        """Register assets; an existing code with the same definition answers ``exists``."""

    async def assets(self) -> dict[str, Asset]: ...

    async def create_accounts(
        self, accounts: Sequence[Account], now_ns: int
    ) -> list[CreateAccountResult]: ...

    async def apply(
        self, requests: Sequence[Sequence[Command]], now_ns: int
    ) -> list[list[TransferOutcome]]:
        """Apply a batch of requests in one transaction; returns after COMMIT."""

    async def lookup_accounts(self, ids: Sequence[int]) -> list[AccountState]:
        """The accounts that exist among ``ids``, in the order asked."""

    async def lookup_transfers(self, ids: Sequence[int]) -> list[TransferRecord]: ...

    async def history(
        self,
        account_id: int,
        *,
        cursor: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> HistoryPage:
        """Transfers that touched the account, by timestamp; ``cursor`` is a timestamp."""

    async def balance_at(self, account_id: int, timestamp_ns: int) -> Balance:
        """The account's counters just after its last transfer at or before ``timestamp_ns``."""

    async def due_pending(self, now_ns: int, since_ns: int, limit: int) -> list[int]:
        """Ids of unresolved holds whose ``expires_at`` lies in ``(since_ns, now_ns]``."""

    def scan_accounts(self) -> AsyncIterator[AccountState]: ...

    def scan_transfers(self) -> AsyncIterator[TransferRecord]: ...
