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


# The column order both stores use for their rows (SQL text, identical on both).
TRANSFER_COLUMNS = (
    "id, debit_account_id, credit_account_id, amount, asset, code, flags, pending_id, timeout_s, "
    "expires_at, timestamp, metadata, dr_debits_pending, dr_debits_posted, dr_credits_pending, "
    "dr_credits_posted, cr_debits_pending, cr_debits_posted, cr_credits_pending, cr_credits_posted"
)
ACCOUNT_COLUMNS = (
    "id, asset, owner, kind, flags, code, timestamp, debits_pending, debits_posted, "
    "credits_pending, credits_posted, last_timestamp"
)


def valid_ids(ids: Sequence[int]) -> list[int]:
    """The well-formed ids among ``ids`` (a lookup of a malformed id finds nothing)."""
    return [i for i in ids if type(i) is int and 0 < i < (1 << 128) - 1]


def history_window(cursor: int | None, limit: int, newest_first: bool) -> tuple[int, str, str, int]:
    """(page size, comparison, order, timestamp bound) of a history query."""
    limit = max(1, min(limit, HISTORY_PAGE_MAX))
    op, order = ("<", "DESC") if newest_first else (">", "ASC")
    bound = cursor if cursor is not None else ((1 << 63) - 1 if newest_first else -1)
    return limit, op, order, bound


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
