"""Prize pools and payout tables (pure, integers only).

Amounts are integers in the prize asset's smallest unit; shares are basis points (1/100 of a
percent), so a payout table is exact: it must add up to exactly 10,000.

- The pool: the entry fees collected, less the rake (``rake_bps`` of them, rounded down, so
  rounding favours the players), topped up by the platform to the guaranteed prize pool when
  the fees fall short.
- The split: place ``k`` is worth ``shares_bps[k-1]`` of the pool. Participants sharing a place
  range (two semifinal losers sharing 3rd-4th) split the shares of the places they cover
  equally; a team's prize is split equally among its roster. Every division rounds down; what
  is left over (at most a few units) is the remainder, paid to a defined account by the shell.

Invariant (tested with Hypothesis): the payouts and the remainder add up to exactly the pool,
no payout is negative, and the remainder is less than the number of payees plus the number of
shared groups.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

BPS_TOTAL = 10_000
RAKE_BPS_MIN = 1_000  # 10 %
RAKE_BPS_MAX = 1_500  # 15 %
PAYOUT_PLACES_MAX = 64


class PayoutTableError(ValueError):
    """A payout table that is not a list of 1..64 positive, non-increasing shares adding up to
    exactly 100 %."""


def check_payout_table(shares_bps: Sequence[int]) -> tuple[int, ...]:
    """The table as a tuple, or :class:`PayoutTableError` saying what is wrong."""
    if not 1 <= len(shares_bps) <= PAYOUT_PLACES_MAX:
        raise PayoutTableError(f"a payout table pays 1 to {PAYOUT_PLACES_MAX} places")
    if any(type(s) is not int or s <= 0 for s in shares_bps):
        raise PayoutTableError("every share is a positive whole number of basis points")
    if any(later > earlier for earlier, later in itertools.pairwise(shares_bps)):
        raise PayoutTableError("a place never pays more than the place above it")
    if sum(shares_bps) != BPS_TOTAL:
        raise PayoutTableError(
            f"the payout table adds up to {sum(shares_bps) / 100:g} %, not 100 % "
            f"({sum(shares_bps)} of {BPS_TOTAL} basis points)"
        )
    return tuple(shares_bps)


@dataclass(frozen=True, slots=True)
class Pool:
    collected: int  # entry fees posted
    rake: int  # to revenue
    top_up: int  # from the platform, up to the guarantee
    prizes: int  # what is paid out: collected - rake + top_up

    def __post_init__(self) -> None:
        assert self.prizes == self.collected - self.rake + self.top_up >= 0


def pool(collected: int, rake_bps: int, guaranteed: int = 0) -> Pool:
    if collected < 0 or guaranteed < 0:
        raise ValueError("amounts are never negative")
    if not 0 <= rake_bps < BPS_TOTAL:
        raise ValueError("rake_bps is 0..9999")
    rake = collected * rake_bps // BPS_TOTAL
    top_up = max(0, guaranteed - (collected - rake))
    return Pool(collected, rake, top_up, collected - rake + top_up)


@dataclass(frozen=True, slots=True)
class Payout:
    place: int  # the first place of the range the participant shares
    participant: str
    player: str
    amount: int


@dataclass(frozen=True, slots=True)
class Split:
    payouts: tuple[Payout, ...]  # only positive amounts
    remainder: int


def split(
    prizes: int,
    shares_bps: Sequence[int],
    places: Sequence[tuple[int, Sequence[str]]],
    rosters: Mapping[str, Sequence[str]],
) -> Split:
    """``prizes`` split by the table over ``places`` (first place of a range, participants
    sharing it), each participant's part split over its roster."""
    table = check_payout_table(shares_bps)
    if sum(len(sharing) for _, sharing in places) < len(table):
        raise ValueError(f"the table pays {len(table)} places: fewer participants were placed")
    payouts: list[Payout] = []
    for place, sharing in places:
        covered = table[place - 1 : place - 1 + len(sharing)]
        group = prizes * sum(covered) // BPS_TOTAL
        for participant in sharing:
            roster = rosters[participant]
            each = group // len(sharing) // len(roster)
            if each > 0:
                payouts.extend(Payout(place, participant, player, each) for player in roster)
    paid = sum(p.amount for p in payouts)
    assert 0 <= paid <= prizes
    return Split(tuple(payouts), prizes - paid)
