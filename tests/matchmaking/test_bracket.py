"""Single and double elimination, round robin: invariants over every size from 2 to 128."""

from __future__ import annotations

import math
import random

import pytest

from matchmaking.bracket import (
    BOTH_FORFEITED,
    BYE,
    Bracket,
    BracketError,
    complete,
    correct,
    decided,
    double_elimination,
    forfeit_both,
    placements,
    playable,
    report,
    round_robin,
    seed_order,
    sides,
    single_elimination,
)

SIZES = range(2, 129)


def names(n: int) -> list[str]:
    return [f"s{i + 1}" for i in range(n)]


def play_out(n: int, third_place: bool, seed: int) -> tuple[Bracket, dict[str, int], list[str]]:
    """A single-elimination bracket of ``n`` played to the end with random winners."""
    bracket = single_elimination(names(n), third_place)
    return (bracket, *play_randomly(bracket, random.Random(seed)))


def play_randomly(bracket: Bracket, rng: random.Random) -> tuple[dict[str, int], list[str]]:
    """The results of ``bracket`` played to the end with random winners, and the matches in
    the order they were played."""
    results: dict[str, int] = {}
    played: list[str] = []
    while ready := playable(bracket, results):
        match_id = rng.choice(ready)
        a, b = sides(bracket, results, match_id)
        results = report(bracket, results, match_id, str(rng.choice([a, b])))
        played.append(match_id)
    assert complete(bracket, results)
    return results, played


def test_seed_order_keeps_the_best_seeds_apart() -> None:
    assert seed_order(2) == [0, 1]
    assert seed_order(4) == [0, 3, 1, 2]
    assert seed_order(8) == [0, 7, 3, 4, 1, 6, 2, 5]
    for lines in (2, 4, 8, 16, 32, 64, 128):
        order = seed_order(lines)
        assert sorted(order) == list(range(lines))
        # Each first-round pair adds up to lines - 1: best against worst.
        assert {order[i] + order[i + 1] for i in range(0, lines, 2)} == {lines - 1}


@pytest.mark.parametrize("n", SIZES)
def test_every_size_plays_n_minus_one_matches_and_byes_go_to_the_best_seeds(n: int) -> None:
    lines = 2 ** math.ceil(math.log2(n))
    bracket, results, played = play_out(n, third_place=False, seed=n)
    assert len(played) == n - 1  # everyone but the champion loses exactly once
    # Byes: lines - n of them, each to one of the best lines - n seeds, never bye against bye.
    first_round = [m for m in bracket.matches if m.round == 1]
    with_bye = []
    for match in first_round:
        a, b = sides(bracket, {}, match.id)
        assert not (a is BYE and b is BYE)
        if BYE in (a, b):
            with_bye.append(a if b is BYE else b)
    assert sorted(with_bye, key=bracket.participants.index) == names(n)[: lines - n]
    # Nobody plays more matches than there are rounds; the champion lost none.
    losses = {p: 0 for p in names(n)}
    for match_id in played:
        _, loser = decided(bracket, results, match_id)  # type: ignore[misc]
        losses[str(loser)] += 1
    assert sorted(losses.values()) == [0] + [1] * (n - 1)
    places = placements(bracket, results)
    assert sum(len(who) for _, who in places) == n
    assert places[0][1] == [p for p, lost in losses.items() if lost == 0]


@pytest.mark.parametrize("n", [4, 5, 6, 7, 8, 13, 64, 100, 128])
def test_the_third_place_match_is_played_by_the_semifinal_losers(n: int) -> None:
    bracket, results, played = play_out(n, third_place=True, seed=n)
    assert len(played) == n  # n - 1, and the third-place match
    rounds = max(m.round for m in bracket.matches)
    semi_losers = {
        decided(bracket, results, m.id)[1]  # type: ignore[index]
        for m in bracket.matches
        if m.round == rounds - 1
    }
    assert set(sides(bracket, results, "3P")) == semi_losers
    places = placements(bracket, results)
    assert [place for place, _ in places[:4]] == [1, 2, 3, 4]


def test_three_players_the_best_seed_has_the_bye_and_the_third_place_is_a_walkover() -> None:
    bracket = single_elimination(["a", "b", "c"], third_place=True)
    assert sides(bracket, {}, "U1-1") == ("a", BYE)
    assert playable(bracket, {}) == ["U1-2"]
    results = report(bracket, {}, "U1-2", "c")
    assert sides(bracket, results, "U2-1") == ("a", "c")
    assert "3P" not in playable(bracket, results)  # b has nobody to play: third by walkover
    results = report(bracket, results, "U2-1", "a")
    assert placements(bracket, results) == [(1, ["a"]), (2, ["c"]), (3, ["b"])]


def test_favourites_winning_meet_as_seeded() -> None:
    bracket = single_elimination(names(8))
    results: dict[str, int] = {}
    while ready := playable(bracket, results):
        a, b = sides(bracket, results, ready[0])
        best = min((a, b), key=lambda p: bracket.participants.index(str(p)))
        results = report(bracket, results, ready[0], str(best))
    assert sorted(sides(bracket, results, bracket.final)) == ["s1", "s2"]
    semis = [sorted(sides(bracket, results, m.id)) for m in bracket.matches if m.round == 2]
    assert semis == [["s1", "s4"], ["s2", "s3"]]


def test_bad_reports_are_refused_and_change_nothing() -> None:
    bracket = single_elimination(names(4))
    results: dict[str, int] = {}
    with pytest.raises(BracketError):
        report(bracket, results, "U2-1", "s1")  # not ready: the semis are not played
    with pytest.raises(BracketError):
        report(bracket, results, "U1-1", "s2")  # s2 does not play U1-1
    with pytest.raises(BracketError):
        report(bracket, results, "nope", "s1")
    done = report(bracket, results, "U1-1", "s1")
    with pytest.raises(BracketError):
        report(bracket, done, "U1-1", "s4")  # reported already
    assert results == {} and done == {"U1-1": 0}
    with pytest.raises(ValueError):
        single_elimination(["solo"])
    with pytest.raises(ValueError):
        single_elimination(["a", "a"])


def test_a_correction_resets_exactly_the_matches_whose_players_changed() -> None:
    bracket = single_elimination(names(8), third_place=True)
    results: dict[str, int] = {}
    # Favourites win everything.
    while ready := playable(bracket, results):
        a, b = sides(bracket, results, ready[0])
        best = min((a, b), key=lambda p: bracket.participants.index(str(p)))
        results = report(bracket, results, ready[0], str(best))
    assert decided(bracket, results, bracket.final)[0] == "s1"  # type: ignore[index]
    # s8 actually beat s1 in the first round.
    fixed, reset = correct(bracket, results, "U1-1", "s8")
    assert fixed["U1-1"] == 1
    # s1's semi, the final and the third-place match had other players: all to replay; the
    # other side of the bracket keeps its results.
    assert sorted(reset) == ["3P", "U2-1", "U3-1"]
    assert {"U1-2", "U1-3", "U1-4", "U2-2"} <= fixed.keys()
    assert playable(bracket, fixed) == ["U2-1"]
    assert sides(bracket, fixed, "U2-1") == ("s8", "s4")
    with pytest.raises(BracketError):
        correct(bracket, fixed, "U2-1", "s8")  # no result to correct (it was reset)
    with pytest.raises(BracketError):
        correct(bracket, fixed, "U1-2", "s1")  # s1 did not play U1-2


@pytest.mark.parametrize("n", [5, 16, 37, 128])
def test_random_corrections_leave_a_bracket_that_plays_to_a_consistent_end(n: int) -> None:
    rng = random.Random(n)
    bracket, results, _ = play_out(n, third_place=True, seed=n)
    for _ in range(5):
        match_id = rng.choice(sorted(results))
        a, b = sides(bracket, results, match_id)
        results, reset = correct(bracket, results, match_id, str(rng.choice([a, b])))
        assert match_id not in reset
        while ready := playable(bracket, results):
            x, y = sides(bracket, results, ready[0])
            results = report(bracket, results, ready[0], str(rng.choice([x, y])))
        assert complete(bracket, results)
        # Every result stands for the sides it is now played by: nobody lost twice.
        losers = [decided(bracket, results, m)[1] for m in results if m != "3P"]  # type: ignore[index]
        assert len(losers) == len(set(losers)) == n - 1


@pytest.mark.parametrize("n", SIZES)
def test_a_round_robin_pairs_everyone_once_and_nobody_twice_a_round(n: int) -> None:
    rounds = round_robin(names(n))
    assert len(rounds) == (n - 1 if n % 2 == 0 else n)
    pairs = [frozenset(pair) for day in rounds for pair in day]
    assert len(pairs) == len(set(pairs)) == n * (n - 1) // 2
    for day in rounds:
        playing = [p for pair in day for p in pair]
        assert len(playing) == len(set(playing)) == n - n % 2
    first = {p: 0 for p in names(n)}  # home and away are shared out
    for day in rounds:
        for a, _ in day:
            first[a] += 1
    assert all(abs(2 * home - (n - 1)) <= 2 for home in first.values()), first


@pytest.mark.parametrize("n", SIZES)
def test_double_elimination_everyone_but_the_champion_loses_twice(n: int) -> None:
    bracket = double_elimination(names(n))
    results, played = play_randomly(bracket, random.Random(n))
    losses: dict[str, int] = {}
    for match_id in played:
        _, loser = decided(bracket, results, match_id)  # type: ignore[misc]
        losses[str(loser)] = losses.get(str(loser), 0) + 1
    champion = str(decided(bracket, results, "GF2")[0])  # type: ignore[index]
    assert losses.get(champion, 0) in (0, 1)
    assert all(count == 2 for who, count in losses.items() if who != champion)
    # 2n - 2 matches, or 2n - 1 when the grand final was reset.
    reset = "GF2" in played
    assert len(played) == 2 * n - 2 + reset
    gf_winner = decided(bracket, results, "GF")[0]  # type: ignore[index]
    assert reset == (gf_winner == sides(bracket, results, "GF")[1])  # the lower finalist won
    places = placements(bracket, results)
    assert [who for who in places[0][1]] == [champion]
    assert sum(len(who) for _, who in places) == n


def test_the_grand_final_reset_is_played_only_when_the_lower_finalist_wins() -> None:
    bracket = double_elimination(["a", "b"])
    results = report(bracket, {}, "U1-1", "a")  # b drops to the lower side
    assert sides(bracket, results, "GF") == ("a", "b")
    upper_wins = report(bracket, results, "GF", "a")
    assert complete(bracket, upper_wins) and playable(bracket, upper_wins) == []
    assert placements(bracket, upper_wins) == [(1, ["a"]), (2, ["b"])]
    lower_wins = report(bracket, results, "GF", "b")
    assert playable(bracket, lower_wins) == ["GF2"]
    done = report(bracket, lower_wins, "GF2", "b")
    assert placements(bracket, done) == [(1, ["b"]), (2, ["a"])]


@pytest.mark.parametrize("n", [3, 8, 21, 64])
def test_double_elimination_corrections_replay_to_a_consistent_end(n: int) -> None:
    rng = random.Random(n)
    bracket = double_elimination(names(n))
    results: dict[str, int] = {}
    for _ in range(6):
        while ready := playable(bracket, results):
            x, y = sides(bracket, results, ready[0])
            results = report(bracket, results, ready[0], str(rng.choice([x, y])))
        assert complete(bracket, results)
        played = [m for m in results if m in {m.id for m in bracket.matches}]
        losses: dict[str, int] = {}
        for match_id in played:
            _, loser = decided(bracket, results, match_id)  # type: ignore[misc]
            losses[str(loser)] = losses.get(str(loser), 0) + 1
        champion = str(decided(bracket, results, "GF2")[0])  # type: ignore[index]
        assert all(count == 2 for who, count in losses.items() if who != champion), losses
        match_id = rng.choice(sorted(results))
        a, b = sides(bracket, results, match_id)
        results, _ = correct(bracket, results, match_id, str(rng.choice([a, b])))


def test_correcting_the_grand_final_drops_a_reset_no_longer_needed() -> None:
    bracket = double_elimination(["a", "b"])
    results = report(bracket, {}, "U1-1", "a")
    results = report(bracket, results, "GF", "b")
    results = report(bracket, results, "GF2", "b")
    fixed, reset = correct(bracket, results, "GF", "a")  # a won the grand final after all
    assert reset == ["GF2"] and "GF2" not in fixed
    assert complete(bracket, fixed) and placements(bracket, fixed)[0] == (1, ["a"])


def play_with_double_forfeits(bracket: Bracket, rng: random.Random) -> dict[str, int]:
    """Played to the end with random winners and, now and then, neither side showing (never
    in a match that decides places: those are refused)."""
    results: dict[str, int] = {}
    while ready := playable(bracket, results):
        match_id = rng.choice(ready)
        if rng.random() < 0.2 and match_id not in (bracket.final, "GF", "3P"):
            results = forfeit_both(bracket, results, match_id)
            continue
        a, b = sides(bracket, results, match_id)
        results = report(bracket, results, match_id, str(rng.choice([a, b])))
    return results


@pytest.mark.parametrize("n", [3, 4, 7, 16, 37, 64])
@pytest.mark.parametrize("double", [False, True])
def test_double_forfeits_put_both_out_and_everyone_is_still_placed_once(
    n: int, double: bool
) -> None:
    for seed in range(4):
        bracket = double_elimination(names(n)) if double else single_elimination(names(n), True)
        results = play_with_double_forfeits(bracket, random.Random(seed))
        assert complete(bracket, results)
        places = placements(bracket, results)
        placed = [who for _, group in places for who in group]
        assert sorted(placed) == sorted(names(n))  # everyone exactly once, no bye
        assert [place for place, _ in places] == sorted({place for place, _ in places})
        for match_id, result in results.items():
            if result == BOTH_FORFEITED:  # neither of them won anything after it
                a, b = sides(bracket, results, match_id)
                assert decided(bracket, results, match_id) == (BYE, BYE)
                assert {a, b} & set(places[0][1]) == set()


def test_a_double_forfeit_is_refused_where_places_are_decided() -> None:
    bracket = single_elimination(names(4), third_place=True)
    results = report(bracket, {}, "U1-1", "s1")
    walkover = forfeit_both(bracket, results, "U1-2")  # s2, s3 both out: s1 reaches the final
    assert decided(bracket, walkover, "U2-1") == ("s1", BYE)
    assert decided(bracket, walkover, "3P") == ("s4", BYE)
    assert placements(bracket, walkover) == [(1, ["s1"]), (2, ["s4"]), (3, ["s2", "s3"])]
    results = report(bracket, results, "U1-2", "s2")
    for match_id in ("3P", "U2-1"):
        with pytest.raises(BracketError, match="decides places"):
            forfeit_both(bracket, results, match_id)
    de = double_elimination(names(2))
    results = report(de, {}, "U1-1", "s1")
    with pytest.raises(BracketError, match="decides places"):
        forfeit_both(de, results, "GF")
    with pytest.raises(BracketError, match="not ready"):
        forfeit_both(double_elimination(names(4)), {}, "L1-1")
