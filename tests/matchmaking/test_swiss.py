"""Swiss: pairings without rematches, byes, Buchholz standings; every size from 2 to 128."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from matchmaking.swiss import (
    SwissError,
    SwissRound,
    correct,
    default_rounds,
    pair_round,
    report,
    rounds_max,
    standings,
)


def names(n: int) -> list[str]:
    return [f"s{i + 1}" for i in range(n)]


def play(n: int, rounds: int, rng: random.Random) -> tuple[list[SwissRound], dict[str, int]]:
    people = names(n)
    played: list[SwissRound] = []
    results: dict[str, int] = {}
    for _ in range(rounds):
        round_ = pair_round(people, played, results)
        played.append(round_)
        for pairing in round_.pairings:
            results = report(played, results, pairing.id, rng.choice(pairing.sides))
    return played, results


def check(n: int, rounds: list[SwissRound]) -> None:
    people = set(names(n))
    meetings = Counter(frozenset(p.sides) for r in rounds for p in r.pairings)
    assert max(meetings.values()) == 1  # no rematch
    byes: Counter[str] = Counter()
    for round_ in rounds:
        seen = [side for p in round_.pairings for side in p.sides]
        assert len(seen) == len(set(seen))  # nobody twice in a round
        if round_.bye is not None:
            byes[round_.bye] += 1
            seen.append(round_.bye)
        assert set(seen) == people  # everyone plays or sits out
        assert (round_.bye is None) == (n % 2 == 0)
        # nobody has a second bye while someone has none
        assert max(byes.values(), default=0) - min(byes[p] for p in people) <= 1


@pytest.mark.parametrize("n", range(2, 129))
def test_default_rounds_pair_every_size_without_rematches(n: int) -> None:
    rounds, results = play(n, default_rounds(n), random.Random(n))
    check(n, rounds)
    table = standings(names(n), rounds, results)
    assert sum(s.points for s in table) == sum(
        len(r.pairings) + (r.bye is not None) for r in rounds
    )
    assert [s.points for s in table] == sorted((s.points for s in table), reverse=True)


@pytest.mark.parametrize("n", [4, 7, 16, 33, 64, 128])
def test_the_most_rounds_allowed_still_pair_without_rematches(n: int) -> None:
    for seed in range(3 if n <= 64 else 1):
        rounds, _ = play(n, rounds_max(n), random.Random(seed))
        check(n, rounds)


def test_score_groups_meet_first() -> None:
    rounds, results = play(16, 2, random.Random(3))
    # After one round, winners are paired with winners: every round-2 pairing is of equal score
    table = {s.participant: s.points for s in standings(names(16), rounds[:1], results)}
    assert all(table[p.sides[0]] == table[p.sides[1]] for p in rounds[1].pairings)


def test_buchholz_breaks_ties_then_seed() -> None:
    people = names(4)
    first = pair_round(people, [], {})
    assert [p.sides for p in first.pairings] == [("s1", "s2"), ("s3", "s4")]
    results = report([first], {}, "S1-1", "s2")
    results = report([first], results, "S1-2", "s3")
    second = pair_round(people, [first], results)
    rounds = [first, second]
    assert [p.sides for p in second.pairings] == [("s2", "s3"), ("s1", "s4")]
    results = report(rounds, results, "S2-1", "s2")
    results = report(rounds, results, "S2-2", "s4")
    table = standings(people, rounds, results)
    # s2 2 pts (met s1: 0, s3: 1); s3, s4 1 pt: Buchholz s3 = s4(1) + s2(2) = 3, s4 = s3(1)
    # + s1(0) = 1; s1 0 pts (met s2, s4)
    assert [(s.participant, s.points, s.buchholz) for s in table] == [
        ("s2", 2, 1),
        ("s3", 1, 3),
        ("s4", 1, 1),
        ("s1", 0, 3),
    ]


def test_bye_goes_to_the_lowest_ranked_without_one_and_counts_a_point() -> None:
    people = names(5)
    first = pair_round(people, [], {})
    assert first.bye == "s5"
    results = {p.id: 0 for p in first.pairings}  # the higher seed wins
    second = pair_round(people, [first], results)
    assert second.bye == "s4"  # the lowest ranked of those with no bye (s5 had one)
    assert {s.participant: s.points for s in standings(people, [first], results)}["s5"] == 1


def test_bad_reports_and_corrections_are_refused() -> None:
    people = names(4)
    first = pair_round(people, [], {})
    with pytest.raises(SwissError, match="not complete"):
        pair_round(people, [first], {"S1-1": 0})
    with pytest.raises(SwissError, match="does not play"):
        report([first], {}, "S1-1", "s3")
    with pytest.raises(SwissError, match="no pairing"):
        report([first], {}, "S9-1", "s1")
    results = report([first], {}, "S1-1", "s1")
    with pytest.raises(SwissError, match="already"):
        report([first], results, "S1-1", "s2")
    with pytest.raises(SwissError, match="no result"):
        correct([first], results, "S1-2", "s3")
    results = report([first], results, "S1-2", "s3")
    second = pair_round(people, [first], results)
    fixed = correct([first, second], results, "S1-1", "s2")
    assert fixed["S1-1"] == 1
    # the second round stays as it was paired; only the standings change
    assert pair_round(people, [first], results) == second
    points = {s.participant: s.points for s in standings(people, [first], fixed)}
    assert (points["s1"], points["s2"]) == (0, 1)


def test_one_round_for_two() -> None:
    assert default_rounds(2) == 1 == rounds_max(2)
    rounds, results = play(2, 1, random.Random(0))
    assert len(rounds[0].pairings) == 1 and rounds[0].bye is None
    with pytest.raises(SwissError, match="cannot be paired"):
        pair_round(names(2), rounds, results)
