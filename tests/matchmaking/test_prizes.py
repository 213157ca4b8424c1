"""Prize pools and payout tables: exact integers, shared places, rosters."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matchmaking.prizes import Payout, PayoutTableError, check_payout_table, pool, split


def test_pool_takes_the_rake_rounded_down_and_tops_up_to_the_guarantee() -> None:
    assert pool(10_005, 1_000) == pool(10_005, 1_000, 0)
    p = pool(10_005, 1_000)
    assert (p.rake, p.top_up, p.prizes) == (1_000, 0, 9_005)  # 1000.5 rounded down
    g = pool(1_000, 1_500, guaranteed=5_000)
    assert (g.rake, g.top_up, g.prizes) == (150, 4_150, 5_000)
    assert pool(0, 1_000, 5_000).prizes == 5_000  # a free tournament with a guarantee
    with pytest.raises(ValueError, match="negative"):
        pool(-1, 1_000)
    with pytest.raises(ValueError, match="fewer participants"):
        split(100, [6_000, 4_000], [(1, ["a"])], {"a": ["a"]})


def test_a_payout_table_must_add_up_to_exactly_100_percent() -> None:
    assert check_payout_table([5_000, 3_000, 2_000]) == (5_000, 3_000, 2_000)
    with pytest.raises(PayoutTableError, match=r"adds up to 99.99 %, not 100 %"):
        check_payout_table([5_000, 3_000, 1_999])
    with pytest.raises(PayoutTableError, match="never pays more"):
        check_payout_table([3_000, 5_000, 2_000])
    with pytest.raises(PayoutTableError, match="positive"):
        check_payout_table([10_000, 0])
    with pytest.raises(PayoutTableError, match="1 to 64 places"):
        check_payout_table([])


def test_shared_places_split_the_places_they_cover_and_rosters_split_their_part() -> None:
    rosters = {"a": ["a1", "a2"], "b": ["b1", "b2"], "c": ["c1", "c2"], "d": ["d1", "d2"]}
    places = [(1, ["a"]), (2, ["b"]), (3, ["c", "d"])]
    result = split(10_001, [5_000, 2_500, 1_500, 1_000], places, rosters)
    amounts = {p.player: p.amount for p in result.payouts}
    # 1st 5000 (2500 each); 2nd 2500 (1250 each); 3rd-4th 2500 split by two teams: 625 each
    assert amounts == {
        "a1": 2_500,
        "a2": 2_500,
        "b1": 1_250,
        "b2": 1_250,
        "c1": 625,
        "c2": 625,
        "d1": 625,
        "d2": 625,
    }
    assert result.remainder == 1
    assert Payout(3, "c", "c1", 625) in result.payouts


@given(
    prizes=st.integers(0, 10**30),
    cut=st.lists(st.integers(1, 9_999), max_size=8, unique=True),
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=12),
    roster=st.integers(1, 5),
)
def test_payouts_and_remainder_add_up_to_the_pool_exactly(
    prizes: int, cut: list[int], sizes: list[int], roster: int
) -> None:
    edges = [0, *sorted(cut), 10_000]
    shares = sorted((b - a for a, b in itertools.pairwise(edges)), reverse=True)
    sizes += [1] * (len(shares) - sum(sizes))  # every place of the table is taken
    participants = [f"t{i}" for i in range(sum(sizes))]
    places, at = [], 0
    for size in sizes:
        places.append((at + 1, participants[at : at + size]))
        at += size
    rosters = {t: [f"{t}-p{k}" for k in range(roster)] for t in participants}
    result = split(prizes, shares, places, rosters)
    assert sum(p.amount for p in result.payouts) + result.remainder == prizes
    assert all(p.amount > 0 for p in result.payouts) and result.remainder >= 0
    assert result.remainder < len(participants) * roster + len(places)
    assert len({(p.participant, p.player) for p in result.payouts}) == len(result.payouts)
