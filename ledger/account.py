"""Accounts and their balances.

An account holds one asset and four counters, as in TigerBeetle: debits and credits, each
pending (held by a pending transfer) and posted. The counters only ever grow, except the pending
ones, which shrink when a hold is posted, voided or expires. The balance flags are the account's
limits: ``DEBITS_MUST_NOT_EXCEED_CREDITS`` keeps a player's wallet from going negative (debits
pending plus posted never exceed credits posted); ``CREDITS_MUST_NOT_EXCEED_DEBITS`` is the
mirror. An account's identity (asset, owner, kind, flags, code) never changes after creation.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import NamedTuple

OWNER_CHARS_MAX = 128
KIND_CHARS_MAX = 32
CODE_MAX = 65535
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class AccountFlags(enum.IntFlag):
    NONE = 0
    LINKED = 1  # this account's creation succeeds or fails with the next one
    DEBITS_MUST_NOT_EXCEED_CREDITS = 2
    CREDITS_MUST_NOT_EXCEED_DEBITS = 4


ACCOUNT_FLAGS_ALL = (
    AccountFlags.LINKED
    | AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
)


class AccountKind(enum.StrEnum):
    """The kinds the product uses. The ledger accepts any short lowercase name."""

    USER = "user"
    ESCROW = "escrow"
    REVENUE = "revenue"
    LIABILITY = "liability"
    SETTLEMENT = "settlement"
    FEE = "fee"
    PRIZE_POOL = "prize_pool"
    EXPENSE = "expense"
    EQUITY = "equity"


def is_valid_kind(kind: str) -> bool:
    return isinstance(kind, str) and bool(_KIND.match(kind))


@dataclass(frozen=True, slots=True)
class Account:
    """A request to create an account."""

    id: int
    asset: str
    owner: str
    kind: str
    flags: AccountFlags = AccountFlags.NONE
    code: int = 0


class Balance(NamedTuple):
    """The four counters. A named tuple: immutable, and cheap to make on the hot path."""

    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def posted(self) -> int:
        """Credits posted minus debits posted: what a credit-normal account (a wallet) holds."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """Posted credits less every debit, held or posted: what a wallet may still spend."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def pending(self) -> int:
        """Credits held for the account minus debits held from it."""
        return self.credits_pending - self.debits_pending

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)


class AccountState(NamedTuple):
    """An account as the ledger holds it: identity, counters, and the time of its last change."""

    id: int
    asset: str
    owner: str
    kind: str
    flags: AccountFlags
    code: int
    timestamp: int  # ns, creation
    balance: Balance
    last_timestamp: int  # ns, the latest transfer that touched it (creation time if none)


def same_identity(request: Account, state: AccountState) -> bool:
    return (
        request.asset == state.asset
        and request.owner == state.owner
        and request.kind == state.kind
        and int(request.flags) & ~AccountFlags.LINKED == int(state.flags) & ~AccountFlags.LINKED
        and request.code == state.code
    )
