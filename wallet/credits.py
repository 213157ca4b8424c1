"""Game credits that expire: lots in the ledger, spent oldest first, broken at expiry (pure).

A grant of credits (LEETCOIN, XP_BOOST, FREE_ENTRY) that expires is held in a *lot*: a ledger
account of the player's per asset and expiry day (kind ``lot_<yyyymmdd>``), credited from the
platform's ``credits_issued`` account. Credits without an expiry sit in the player's ordinary
``user`` account. Spending takes from the lots that expire first, then from the ``user``
account, as one linked request, so credits never outlive their day while newer ones are
spent. At the end of its day a lot's remaining balance moves to the platform's ``breakage``
account, once (the transfer id is the lot's). So a player's credits are always the sum of
ledger balances, and breakage is revenue the ledger can show.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ledger import Account, AccountFlags, Transfer, TransferFlags, derive_id

from . import accounts
from .accounts import PLATFORM, Code

CREDIT_ASSETS: Final = frozenset({"LEETCOIN", "XP_BOOST", "FREE_ENTRY"})
_DAY: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
EXPIRY_DAYS_MAX: Final = 5 * 366
# one grant's limit: the issuing account (shared by every grant of an asset) holds at most
# 2^128 - 1, and one absurd grant must not use that up for everyone after it
GRANT_AMOUNT_MAX: Final = 10**12


class Refused(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def day_of(text: object, today: dt.date) -> dt.date:
    """An expiry day (``YYYY-MM-DD``, after today, within five years), or :class:`Refused`."""
    if not isinstance(text, str) or not _DAY.match(text):
        raise Refused("bad_expiry", "expires_on is a day, YYYY-MM-DD")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise Refused("bad_expiry", "expires_on is not a day of the calendar") from None
    if not today < day <= today + dt.timedelta(days=EXPIRY_DAYS_MAX):
        raise Refused("bad_expiry", "expires_on is after today and within five years")
    return day


def lot(player: str, asset: str, day: dt.date) -> Account:
    kind = f"lot_{day:%Y%m%d}"
    return Account(
        accounts.account_id(player, kind, asset),
        asset,
        player,
        kind,
        AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    )


def issued(asset: str) -> Account:
    """Where granted credits come from (the platform's; it goes negative by what it issued)."""
    return Account(
        accounts.account_id(PLATFORM, "credits_issued", asset), asset, PLATFORM, "credits_issued"
    )


def breakage(asset: str) -> Account:
    """Where expired credits go."""
    return Account(accounts.account_id(PLATFORM, "breakage", asset), asset, PLATFORM, "breakage")


def grant(grant_id: str, player: str, asset: str, amount: int, day: dt.date | None) -> Transfer:
    if asset not in CREDIT_ASSETS:
        raise Refused("not_a_credit", f"credits are {', '.join(sorted(CREDIT_ASSETS))}")
    if amount > GRANT_AMOUNT_MAX:
        raise Refused("bad_amount", f"a grant is at most {GRANT_AMOUNT_MAX:,} credits")
    target = accounts.user(player, asset) if day is None else lot(player, asset, day)
    return Transfer(
        derive_id("credit.grant", grant_id),
        issued(asset).id,
        target.id,
        amount,
        asset,
        Code.CREDIT_GRANT,
        metadata={"grant": grant_id, "expires_on": None if day is None else day.isoformat()},
    )


@dataclass(frozen=True, slots=True)
class Holding:
    day: dt.date | None  # None: the user account, no expiry
    available: int


def spend(
    spend_id: str,
    player: str,
    asset: str,
    amount: int,
    holdings: Sequence[Holding],
    to_account: int,
    code: int,
    today: dt.date,
) -> list[Transfer]:
    """Take ``amount`` from the lots that expire first (those of today or earlier excluded:
    they are breakage), then from the user account; one linked request."""
    usable = sorted(
        (h for h in holdings if h.available > 0 and (h.day is None or h.day > today)),
        key=lambda h: (h.day is None, h.day or today),
    )
    if sum(h.available for h in usable) < amount:
        raise Refused("insufficient_credits", f"not enough {asset}")
    parts: list[tuple[Holding, int]] = []
    left = amount
    for h in usable:
        if left == 0:
            break
        take = min(left, h.available)
        parts.append((h, take))
        left -= take
    out = []
    for i, (h, take) in enumerate(parts):
        source = accounts.user(player, asset) if h.day is None else lot(player, asset, h.day)
        out.append(
            Transfer(
                derive_id("credit.spend", spend_id, i),
                source.id,
                to_account,
                take,
                asset,
                code,
                TransferFlags.LINKED if i < len(parts) - 1 else TransferFlags.NONE,
                metadata={"spend": spend_id},
            )
        )
    return out


def expire(player: str, asset: str, day: dt.date, balance: int) -> Transfer | None:
    """Move what is left of a lot whose day has ended to breakage (None when nothing is)."""
    if balance <= 0:
        return None
    return Transfer(
        derive_id("credit.expire", player, asset, day.isoformat()),
        lot(player, asset, day).id,
        breakage(asset).id,
        balance,
        asset,
        Code.BREAKAGE,
        metadata={"expired_on": day.isoformat()},
    )
