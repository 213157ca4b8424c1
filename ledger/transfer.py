"""Transfers: requests, and the immutable records the ledger keeps.

A transfer moves ``amount`` of one asset from the debit account to the credit account. Its id is
chosen by the client; a retry with the same fields answers ``exists`` and returns the first
record. Flags choose the kind:

- none: a posted transfer;
- ``PENDING``: a hold; the amount is reserved on both accounts until it is posted (in full or in
  part), voided, or the ledger voids it when ``timeout_s`` runs out;
- ``POST_PENDING`` / ``VOID_PENDING``: resolve the hold named by ``pending_id``. Accounts and
  asset may be left empty (0 and ""): they come from the hold. A post with amount 0 posts the
  full held amount;
- ``LINKED``: this transfer succeeds or fails together with the next one in the request; a
  chain ends at the first transfer without the flag.

The ledger records one row per transfer carrying both legs and both accounts' balances after
it: the row *is* the pair of entries. ``EXPIRED`` marks the void the ledger itself wrote when a
hold timed out; clients cannot set it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .account import Balance

TIMEOUT_S_MAX = 366 * 24 * 3600
METADATA_BYTES_MAX = 1024
CODE_MAX = 65535


class TransferFlags(enum.IntFlag):
    NONE = 0
    LINKED = 1
    PENDING = 2
    POST_PENDING = 4
    VOID_PENDING = 8
    EXPIRED = 16  # written by the ledger only, on a void of a timed-out hold


CLIENT_TRANSFER_FLAGS = (
    TransferFlags.LINKED
    | TransferFlags.PENDING
    | TransferFlags.POST_PENDING
    | TransferFlags.VOID_PENDING
)


@dataclass(frozen=True, slots=True)
class Transfer:
    """A request to move value."""

    id: int
    debit_account_id: int = 0
    credit_account_id: int = 0
    amount: int = 0
    asset: str = ""
    code: int = 0  # why, as a number the product defines (entry fee, prize, ...)
    flags: TransferFlags = TransferFlags.NONE
    pending_id: int = 0
    timeout_s: int = 0
    metadata: Mapping[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Expire:
    """The ledger's own command: void the hold ``pending_id`` because its timeout ran out."""

    pending_id: int


class TransferRecord(NamedTuple):
    """A transfer as the ledger keeps it, forever."""

    id: int
    debit_account_id: int
    credit_account_id: int
    amount: int
    asset: str
    code: int
    flags: TransferFlags
    pending_id: int
    timeout_s: int
    expires_at: int  # ns; 0 when the transfer is not a hold with a timeout
    timestamp: int  # ns; strictly increasing per account
    metadata: str | None  # canonical JSON (sorted keys), or None
    debit_after: Balance
    credit_after: Balance

    @property
    def is_pending(self) -> bool:
        return bool(self.flags & TransferFlags.PENDING)

    @property
    def resolves_pending(self) -> bool:
        return bool(self.flags & (TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING))
