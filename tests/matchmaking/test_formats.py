"""Every format through one interface: whole tournaments with random results, double forfeits
and corrections, for sizes 2 to 128."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from matchmaking.bracket import BOTH_FORFEITED
from matchmaking.formats import (
    Format,
    FormatError,
    Kind,
    Progress,
    complete,
    correct,
    league_standings,
    matches,
    placements,
    playable,
    report,
    start,
)


def names(n: int) -> list[str]:
    return [f"s{i + 1}" for i in range(n)]


def play(
    fmt: Format, people: list[str], rng: random.Random, forfeits: float = 0.0, corrections: int = 0
) -> Progress:
    """Played to the end: random winners, some double forfeits (where allowed), and some
    corrections of decided matches along the way."""
    progress = start(fmt, people)
    while ready := playable(fmt, people, progress):
        rng.shuffle(ready)
        for match in ready:  # a correction may have changed what is ready
            if match.id[0] in "ULGP3" and match not in playable(fmt, people, progress):
                continue
            if rng.random() < forfeits:
                try:
                    progress = report(fmt, people, progress, match.id, None)
                    continue
                except FormatError as error:
                    assert "decides places" in str(error)
            progress = report(fmt, people, progress, match.id, str(rng.choice(match.sides)))
            if corrections and rng.random() < 0.1:
                corrections -= 1
                decided = [m for m in matches(fmt, people, progress) if m.result in (0, 1)]
                target = rng.choice(decided)
                loser = str(target.sides[1 - int(target.result or 0)])
                progress, reset = correct(fmt, people, progress, target.id, loser)
                assert all(m not in progress.results for m in reset)
                break
    assert complete(fmt, people, progress)
    return progress


def check_places(fmt: Format, people: list[str], progress: Progress) -> list[tuple[int, list[str]]]:
    places = placements(fmt, people, progress)
    placed = [who for _, group in places for who in group]
    assert sorted(placed) == sorted(people)  # everyone exactly once
    count = 0
    for place, group in places:  # ranges follow each other: 1, 2, 3 (shared by two), 5...
        assert place == count + 1
        count += len(group)
    return places


SIZES = [2, 3, 4, 5, 7, 8, 9, 16, 31, 64, 100, 128]


@pytest.mark.parametrize("n", SIZES)
def test_round_robin_plays_every_pair_once(n: int) -> None:
    fmt = Format(Kind.ROUND_ROBIN)
    progress = play(fmt, names(n), random.Random(n), forfeits=0.05)
    pairs = Counter(frozenset(m.sides) for m in matches(fmt, names(n), progress))
    assert len(pairs) == n * (n - 1) // 2 and set(pairs.values()) == {1}
    check_places(fmt, names(n), progress)


@pytest.mark.parametrize("n", SIZES)
def test_swiss_plays_its_rounds_without_rematches(n: int) -> None:
    fmt = Format(Kind.SWISS)
    progress = play(fmt, names(n), random.Random(n), forfeits=0.05, corrections=3)
    rounds = math.ceil(math.log2(n))
    assert len(progress.swiss) == rounds
    pairs = Counter(frozenset(m.sides) for m in matches(fmt, names(n), progress))
    assert set(pairs.values()) == {1} and sum(pairs.values()) == rounds * (n // 2)
    places = check_places(fmt, names(n), progress)
    assert all(len(group) == 1 for _, group in places)  # seed breaks the last ties


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", [Kind.SINGLE_ELIMINATION, Kind.DOUBLE_ELIMINATION])
def test_eliminations_play_to_an_end_with_forfeits_and_corrections(n: int, kind: Kind) -> None:
    fmt = Format(kind, third_place=True)
    for seed in range(3):
        progress = play(fmt, names(n), random.Random(seed), forfeits=0.1, corrections=3)
        check_places(fmt, names(n), progress)


@pytest.mark.parametrize(
    ("n", "groups", "advance"),
    [(4, 2, 1), (8, 2, 2), (9, 2, 2), (16, 4, 2), (33, 4, 3), (128, 8, 2)],
)
def test_groups_then_playoffs(n: int, groups: int, advance: int) -> None:
    fmt = Format(Kind.GROUPS_PLAYOFFS, groups=groups, advance=advance, third_place=True)
    assert fmt.check(n, n) == []
    progress = play(fmt, names(n), random.Random(n), forfeits=0.05, corrections=2)
    seeds = progress.playoff_seeds
    assert seeds is not None and len(seeds) == groups * advance
    stages = Counter(m.stage for m in matches(fmt, names(n), progress))
    sizes = [len(range(g, n, groups)) for g in range(groups)]
    assert sum(c for s, c in stages.items() if s.startswith("groups")) == sum(
        k * (k - 1) // 2 for k in sizes
    )
    places = check_places(fmt, names(n), progress)
    # the playoff's players take the first places
    assert {who for _, group in places[: len(seeds)] for who in group} >= {places[0][1][0]}
    top = [who for _, group in places for who in group][: len(seeds)]
    assert set(top) == set(seeds)


def test_groups_are_snake_seeded_and_winners_seeded_first() -> None:
    fmt = Format(Kind.GROUPS_PLAYOFFS, groups=2, advance=2)
    people = names(8)
    progress = start(fmt, people)
    groups = {m.stage: set() for m in matches(fmt, people, progress)}
    for m in matches(fmt, people, progress):
        groups[m.stage].update(m.sides)  # type: ignore[arg-type]
    assert groups == {"groups:1": {"s1", "s4", "s5", "s8"}, "groups:2": {"s2", "s3", "s6", "s7"}}
    while ready := playable(fmt, people, progress):  # the better seed always wins
        match = ready[0]
        best = min(match.sides, key=lambda s: people.index(str(s)))
        progress = report(fmt, people, progress, match.id, best)
    assert progress.playoff_seeds == ("s1", "s2", "s3", "s4")
    assert [who for _, who in placements(fmt, people, progress)][:1] == [["s1"]]


def test_round_robin_tiebreakers_and_shared_places() -> None:
    people = names(3)
    schedule = [("a", 1, "s1", "s2"), ("b", 2, "s2", "s3"), ("c", 3, "s3", "s1")]
    cycle = {"a": 0, "b": 0, "c": 0}  # s1 > s2 > s3 > s1: all on one point
    assert league_standings(people, schedule, cycle, ["head_to_head"]) == [["s1", "s2", "s3"]]
    assert league_standings(people, schedule, cycle, ["head_to_head", "seed"]) == [
        ["s1"],
        ["s2"],
        ["s3"],
    ]
    results = {"a": 0, "b": 1, "c": BOTH_FORFEITED}  # s1 and s3 one point, s3 beat s2
    assert league_standings(people, schedule, results, ["head_to_head"]) == [
        ["s1", "s3"],
        ["s2"],
    ]
    assert league_standings(people, schedule, results, ["sonneborn_berger", "seed"]) == [
        ["s1"],
        ["s3"],
        ["s2"],
    ]


def test_bad_reports_change_nothing() -> None:
    fmt = Format(Kind.SINGLE_ELIMINATION)
    people = names(4)
    progress = start(fmt, people)
    with pytest.raises(FormatError, match="not ready"):
        report(fmt, people, progress, "U2-1", "s1")
    with pytest.raises(FormatError, match="does not play"):
        report(fmt, people, progress, "U1-1", "s2")
    with pytest.raises(FormatError, match="no result"):
        correct(fmt, people, progress, "U1-1", "s1")
    with pytest.raises(FormatError, match="at least two"):
        start(fmt, ["solo"])
    assert progress == start(fmt, people)


def test_format_checks_name_every_problem() -> None:
    assert Format(Kind.SWISS, swiss_rounds=9).check(8, 16) == [
        "swiss_rounds must be 1..4 for 8 players"
    ]
    problems = Format(Kind.GROUPS_PLAYOFFS, groups=4, advance=3, tiebreakers=("coin",)).check(8, 16)
    assert problems == [
        "unknown tiebreakers ['coin']: choose from ['head_to_head', 'sonneborn_berger', 'buchholz', 'seed']",
        "groups of 2 cannot advance 3",
    ]
