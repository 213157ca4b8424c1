"""The CS2 plugins' event log folded into a series: both flavors, their quirks, resends,
reordering, rewinds and a missing series_end."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from matchmaking.cs2 import (
    BadEvent,
    Flavor,
    Phase,
    Series,
    apply,
    from_document,
    new_series,
    parse,
    public_view,
    to_document,
)
from tests.cs2_plugin import Roster, reordered, rewound, rounds_to, series_events, with_resends

TEAMS = [
    Roster("Alpha", [(f"7656119800000000{i}", f"a{i}") for i in range(5)]),
    Roster("Bravo", [(f"7656119800000001{i}", f"b{i}") for i in range(5)]),
]
BO3 = [("de_nuke", (16, 14)), ("de_mirage", (11, 13)), ("de_dust2", (13, 7))]


def fold(flavor: Flavor, bodies: list[dict[str, Any]], num_maps: int = 3) -> tuple[Series, list]:
    series, effects = new_series(num_maps), []
    seen: set[str] = set()
    for body in bodies:
        digest = json.dumps(body, sort_keys=True)
        if digest in seen:  # the shell drops exact repeats before the fold
            continue
        seen.add(digest)
        series, changed = apply(series, parse(flavor, body))
        effects += changed
    return series, effects


def final_stats(bodies: list[dict[str, Any]], map_number: int) -> dict[str, dict[str, int]]:
    last = [b for b in bodies if b["event"] == "round_end" and b["map_number"] == map_number][-1]
    return {p["steamid"]: p["stats"] for team in ("team1", "team2") for p in last[team]["players"]}


def test_rounds_to_reaches_the_score_with_the_winner_taking_the_last_round() -> None:
    for score in ((13, 7), (16, 14), (11, 13), (19, 17), (13, 0)):
        order = rounds_to(score, random.Random(1))
        assert (order.count(1), order.count(2)) == score
        assert order[-1] == (1 if score[0] > score[1] else 2)


@pytest.mark.parametrize("flavor", list(Flavor))
def test_a_best_of_three_folds_to_its_result_with_scores_and_stats(flavor: Flavor) -> None:
    bodies = series_events(flavor, 41, TEAMS, BO3, seed=3)
    series, effects = fold(flavor, bodies)
    assert series.phase is Phase.FINISHED
    assert series.ranks == (0, 1) and series.maps_won == (2, 1)
    assert [m.result for m in series.maps] == [(16, 14), (11, 13), (13, 7)]
    assert [m.name for m in series.maps] == ["de_nuke", "de_mirage", "de_dust2"]
    assert [len(m.rounds) for m in series.maps] == [30, 24, 20]
    for m in series.maps:  # MatchZy's map_result has no players: the last round's figures stay
        expected = final_stats(bodies, m.number)
        assert {p: s["kills"] for p, s in m.stats.items()} == {
            p: s["kills"] for p, s in expected.items()
        }
        assert {p: s["k1"] + 2 * s["k2"] + 3 * s["k3"] for p, s in m.stats.items()} == {
            p: s["1k"] + 2 * s["2k"] + 3 * s["3k"] for p, s in expected.items()
        }
        assert all(s["kast"] <= s["rounds_played"] for s in m.stats.values())
    kinds = [e.kind for e in effects]
    assert kinds.count("cs2.series_result") == 1 and kinds[-1] == "cs2.series_result"
    assert kinds.count("cs2.map_result") == 3 and kinds.count("cs2.going_live") == 3
    rounds = [e for e in effects if e.kind == "cs2.round" and e.data["map"] == 0]
    # round winners from the scores, even where MatchZy names the leading team instead
    winners = [e.data["round_winner"] for e in rounds]
    assert winners.count(1) == 16 and winners.count(2) == 14


@pytest.mark.parametrize("flavor", list(Flavor))
@pytest.mark.parametrize("seed", range(8))
def test_resends_and_reordering_change_nothing(flavor: Flavor, seed: int) -> None:
    clean = series_events(flavor, 7, TEAMS, BO3, seed=seed)
    rng = random.Random(seed)
    messy = reordered(with_resends(clean, rng, 0.1), rng, 4)
    assert len(messy) > len(clean)
    expected, _ = fold(flavor, clean)
    got, effects = fold(flavor, messy)
    assert got.ranks == expected.ranks and got.conflicts == 0
    assert [m.result for m in got.maps] == [m.result for m in expected.maps]
    assert [sorted(m.rounds.items()) for m in got.maps] == [
        sorted(m.rounds.items()) for m in expected.maps
    ]
    assert [e.kind for e in effects].count("cs2.series_result") == 1


def test_an_exact_repeat_of_each_state_changing_event_changes_nothing() -> None:
    bodies = series_events("get5", 7, TEAMS, BO3, seed=1)
    series = new_series(3)
    for body in bodies:
        series, _ = apply(series, parse(Flavor.GET5, body))
        if body["event"] in {"round_end", "map_result", "series_start", "going_live", "series_end"}:
            again, effects = apply(series, parse(Flavor.GET5, body))
            assert again == series and effects == []


@pytest.mark.parametrize("flavor", list(Flavor))
def test_a_backup_restored_mid_map_discards_the_later_rounds(flavor: Flavor) -> None:
    bodies = rewound(series_events(flavor, 9, TEAMS, BO3, seed=2), 1, 10, 4)
    series = new_series(3)
    for body in bodies:
        series, effects = apply(series, parse(flavor, body))
        if body["event"] == "backup_loaded":
            kept = series.map(1).rounds
            assert len(kept) == 11
            assert next(e.kind for e in effects) == "cs2.rewound"
    assert series.ranks == (0, 1) and series.map(1).result == (11, 13)
    assert series.map(1).rewinds == 1 and len(series.map(1).rounds) == 24


def test_a_round_seen_again_with_another_score_rewinds_without_backup_loaded() -> None:
    bodies = series_events("get5", 9, TEAMS, BO3, seed=2)
    series = new_series(3)
    ends = [b for b in bodies if b["event"] == "round_end" and b["map_number"] == 0]
    for body in ends[:8]:
        series, _ = apply(series, parse(Flavor.GET5, body))
    replay = json.loads(json.dumps(ends[5]))
    one, _two = replay["team1"]["score"], replay["team2"]["score"]
    before = json.loads(json.dumps(ends[4]))
    b1, b2 = before["team1"]["score"], before["team2"]["score"]
    # round 5 played again with the other team winning it
    replay["team1"]["score"], replay["team2"]["score"] = (b1, b2 + 1) if one > b1 else (b1 + 1, b2)
    series, effects = apply(series, parse(Flavor.GET5, replay))
    assert max(series.map(0).rounds) == 5 and series.map(0).rewinds == 1
    assert effects[0].kind == "cs2.rewound"
    assert series.map(0).score == (replay["team1"]["score"], replay["team2"]["score"])


def test_a_series_without_series_end_is_derived_from_its_map_results() -> None:
    bodies = [b for b in series_events("get5", 5, TEAMS, [*BO3[:2], ("de_inferno", (13, 3))])]
    without = [b for b in bodies if b["event"] != "series_end"]
    series, _ = fold(Flavor.GET5, without)
    assert series.phase is Phase.FINISHED and series.ranks == (0, 1)
    # a 2-0 ends the series before a third map: no series_end needed either
    two_nil = series_events("get5", 5, TEAMS, [BO3[0], ("de_mirage", (13, 9))], num_maps=3)
    series, _ = fold(Flavor.GET5, [b for b in two_nil if b["event"] != "series_end"])
    assert series.phase is Phase.FINISHED and series.maps_won == (2, 0)


def test_matchzy_sends_no_series_end_after_a_drawn_series() -> None:
    bodies = series_events("matchzy", 5, TEAMS, BO3[:2], seed=4)
    assert not any(b["event"] == "series_end" for b in bodies)
    series, effects = fold(Flavor.MATCHZY, bodies, num_maps=2)
    assert series.phase is Phase.FINISHED and series.ranks == (0, 0)
    assert effects[-1].data == {"maps_won": [1, 1], "ranks": [0, 0]}


def test_series_end_before_the_last_map_result_finishes_and_a_contradiction_is_flagged() -> None:
    bodies = series_events("get5", 5, TEAMS, BO3, seed=5)
    end = next(b for b in bodies if b["event"] == "series_end")
    last_result = [b for b in bodies if b["event"] == "map_result"][-1]
    early = [b for b in bodies if b is not end and b is not last_result]
    series, _ = fold(Flavor.GET5, [*early[:-2], end])
    assert series.phase is Phase.FINISHED and series.ranks == (0, 1)
    series, _ = apply(series, parse(Flavor.GET5, last_result))
    assert series.conflicts == 0 and series.map(2).result == (13, 7)
    forged = json.loads(json.dumps(last_result))
    forged["team1"]["score"], forged["team2"]["score"] = 3, 13
    series, _ = apply(series, parse(Flavor.GET5, forged))
    assert series.conflicts == 1 and series.ranks == (0, 1)


def test_an_undecided_series_end_waits_unless_it_names_a_winner() -> None:
    bodies = series_events("get5", 5, TEAMS, BO3, seed=5)
    first_map = bodies[: bodies.index(next(b for b in bodies if b["event"] == "map_result")) + 1]
    ended = {"event": "series_end", "matchid": "5", "team1_series_score": 1}
    ended |= {"team2_series_score": 0, "winner": {"team": "none", "side": "ct"}}
    series, _ = fold(Flavor.GET5, [*first_map, ended])
    assert series.phase is Phase.LIVE and series.ranks is None
    forced = ended | {"winner": {"team": "team2", "side": "t"}}
    series, _ = fold(Flavor.GET5, [*first_map, forced])
    assert series.phase is Phase.FINISHED and series.ranks == (1, 0)


def test_documents_round_trip_and_the_public_view_has_no_names() -> None:
    series, _ = fold(Flavor.MATCHZY, series_events("matchzy", 3, TEAMS, BO3, seed=6))
    assert from_document(json.loads(json.dumps(to_document(series)))) == series
    view = public_view(series)
    assert view["maps_won"] == [2, 1]
    text = json.dumps(view)
    assert "Alpha" not in text and "a1" not in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({"event": "round_exploded", "matchid": "1"}, "unknown event"),
        ({"event": "round_end", "matchid": "1", "map_number": 0}, "needs"),
        ({"event": "going_live", "matchid": "1"}, "map_number"),
        ({"event": "going_live", "matchid": "1", "map_number": 9}, "map_number"),
        ({"event": "going_live", "map_number": 0}, "matchid"),
        ({"event": "series_start", "matchid": {"x": 1}}, "matchid"),
        (
            {
                "event": "round_end",
                "matchid": "1",
                "map_number": 0,
                "round_number": 0,
                "team1": {"score": 1, "players": "x"},
                "team2": {"score": 0},
            },
            "players",
        ),
        (
            {
                "event": "map_result",
                "matchid": "1",
                "map_number": 0,
                "team1": {"score": 1, "players": [{"steamid": "1", "stats": {"kills": -1}}]},
                "team2": {"score": 0},
            },
            "kills",
        ),
    ],
)
def test_bad_bodies_are_refused_with_what_is_wrong(body: Any, message: str) -> None:
    with pytest.raises(BadEvent, match=message):
        parse(Flavor.GET5, body)


def test_matchzy_numbers_sent_as_strings_are_read() -> None:
    event = parse(Flavor.MATCHZY, {"event": "going_live", "matchid": 12, "map_number": "1"})
    assert event.map_number == 1 and event.matchid == "12"
