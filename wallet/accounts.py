"""The chart of accounts: which ledger account holds what, with ids derived from what it is.

Every account id is ``derive_id("account", owner, kind, asset)``, so any process finds (or
creates, idempotently: ``exists``) the same account without a lookup table.

- ``user`` (owner: the player id): a player's wallet in one asset; it never goes negative
  (``DEBITS_MUST_NOT_EXCEED_CREDITS``).
- ``prize_pool`` (owner ``tournament:<id>``): a tournament's entry fees, held then posted, and
  its prizes; never negative, and zero once the prizes are paid.
- platform accounts (owner ``platform``): ``revenue`` (rake; FREE_ENTRY tickets spent),
  ``rounding`` (what integer division leaves over), ``expense`` (guaranteed prize pools the
  platform tops up: it may go negative, it is the platform's money going out), and
  ``settlement`` (money entering from outside: deposits; negative by what was brought in),
  ``exchange`` (the platform's inventory of each asset for conversions; may go negative).

Transfer codes (the ledger's ``code``): why value moved, for history and reports.
"""

from __future__ import annotations

from typing import Final

from ledger import Account, AccountFlags, derive_id

PLATFORM: Final = "platform"


class Code:
    """Plain ints (the ledger takes an ``int`` code, not an enum member)."""

    DEPOSIT: Final = 1
    DEPOSIT_FEE: Final = 2
    DEPOSIT_REVERSAL: Final = 3  # a refund or a lost dispute takes a card deposit back
    WITHDRAWAL: Final = 4
    WITHDRAWAL_FEE: Final = 5
    CONVERSION: Final = 6
    CONVERSION_FEE: Final = 7
    SUBSCRIPTION: Final = 8
    CREDIT_GRANT: Final = 9
    BREAKAGE: Final = 15  # expired game credits
    CREDIT_SPEND: Final = 16  # credits used (an XP boost consumed)
    WITHDRAWAL_RETURN: Final = 17  # a sent withdrawal that bounced (a refund that failed)
    ENTRY_FEE: Final = 10
    RAKE: Final = 11
    GUARANTEE: Final = 12
    PRIZE: Final = 13
    ROUNDING: Final = 14
    PRIZE_REVERSAL: Final = 18  # a correction after payout takes a prize (or part) back


# The name a code goes by in a player's history (GET /v1/transactions?kind=...).
KIND_OF_CODE: Final[dict[int, str]] = {
    Code.DEPOSIT: "deposit",
    Code.DEPOSIT_FEE: "deposit_fee",
    Code.DEPOSIT_REVERSAL: "deposit_reversal",
    Code.WITHDRAWAL: "withdrawal",
    Code.WITHDRAWAL_FEE: "withdrawal_fee",
    Code.CONVERSION: "conversion",
    Code.CONVERSION_FEE: "conversion_fee",
    Code.SUBSCRIPTION: "subscription",
    Code.CREDIT_GRANT: "credit_grant",
    Code.BREAKAGE: "credit_expiry",
    Code.CREDIT_SPEND: "credit_spend",
    Code.WITHDRAWAL_RETURN: "withdrawal_return",
    Code.ENTRY_FEE: "entry_fee",
    Code.RAKE: "rake",
    Code.GUARANTEE: "guarantee",
    Code.PRIZE: "prize",
    Code.PRIZE_REVERSAL: "prize_reversal",
    Code.ROUNDING: "rounding",
}
CODE_OF_KIND: Final[dict[str, int]] = {kind: code for code, kind in KIND_OF_CODE.items()}


def account_id(owner: str, kind: str, asset: str) -> int:
    return derive_id("account", owner, kind, asset)


def _account(owner: str, kind: str, asset: str, flags: AccountFlags) -> Account:
    return Account(account_id(owner, kind, asset), asset, owner, kind, flags)


def user(player: str, asset: str) -> Account:
    return _account(player, "user", asset, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)


def prize_pool(tournament: str, asset: str) -> Account:
    return _account(
        f"tournament:{tournament}", "prize_pool", asset, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    )


def revenue(asset: str) -> Account:
    return _account(PLATFORM, "revenue", asset, AccountFlags.NONE)


def rounding(asset: str) -> Account:
    return _account(PLATFORM, "rounding", asset, AccountFlags.NONE)


def expense(asset: str) -> Account:
    return _account(PLATFORM, "expense", asset, AccountFlags.NONE)


def exchange(asset: str) -> Account:
    """The platform's inventory of ``asset`` for conversions (may go negative)."""
    return _account(PLATFORM, "exchange", asset, AccountFlags.NONE)


def settlement(asset: str) -> Account:
    return _account(PLATFORM, "settlement", asset, AccountFlags.NONE)
