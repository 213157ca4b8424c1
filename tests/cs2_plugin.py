"""A CS2 series as get5 or MatchZy would report it: the event bodies their HTTP log posts.

Written from the plugins' documented event fields (get5's event schema; MatchZy's subset), not
from their files. ``series_events`` plays a scripted series (map scores), seeded, and returns
the bodies in the order the plugin sends them; the helpers below mix in what real servers do
to that stream: resends (duplicates), reordering, a backup restored mid-map.

MatchZy's quirks, as MatchZy sends them: an integer ``matchid``; sides "2" (T) and "3" (CT);
``round_end.winner`` names the team leading the map, not the round's winner; ``map_result``
with empty player lists; no ``series_end`` after a drawn series.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

STATS = (
    "kills",
    "deaths",
    "assists",
    "flash_assists",
    "team_kills",
    "suicides",
    "damage",
    "utility_damage",
    "headshot_kills",
    "rounds_played",
    "1k",
    "2k",
    "3k",
    "4k",
    "5k",
    "kast",
    "mvp",
    "score",
)


@dataclass
class Roster:
    name: str
    players: list[tuple[str, str]]  # (steamid64, name)


@dataclass
class _Map:
    number: int
    name: str
    stats: dict[str, dict[str, int]] = field(default_factory=dict)


def rounds_to(score: tuple[int, int], rng: random.Random) -> list[int]:
    """An order of round winners (1, 2) ending at ``score`` as MR12 plays it: the first to 13,
    or overtime in sixes from 12-12, the winner taking the last round."""
    one, two = score
    winner = 1 if one > two else 2
    total = one + two
    if max(one, two) <= 13 and min(one, two) < 12:
        regulation = [1] * one + [2] * two
        last = regulation.pop(regulation.index(winner))
        rng.shuffle(regulation)
        return [*regulation, last]
    order = [1] * 12 + [2] * 12
    rng.shuffle(order)
    left = (one - 12, two - 12)
    while sum(left) > 0:
        block_total = min(6, sum(left))
        block_one = min(left[0], 3 if sum(left) > 6 else left[0])
        block = [1] * block_one + [2] * (block_total - block_one)
        if sum(left) <= 6:
            block.remove(winner)
            rng.shuffle(block)
            block.append(winner)
        else:
            rng.shuffle(block)
        order += block
        left = (left[0] - block.count(1), left[1] - block.count(2))
    assert len(order) == total
    return order


def _side(flavor: str, team: int, round_index: int) -> str:
    ct_first = team == 1
    first_half = round_index < 12 or (round_index >= 24 and ((round_index - 24) // 3) % 2 == 0)
    ct = ct_first == first_half
    if flavor == "matchzy":
        return "3" if ct else "2"
    return "ct" if ct else "t"


def series_events(
    flavor: str,
    matchid: str | int,
    teams: Sequence[Roster],
    maps: Sequence[tuple[str, tuple[int, int]]],
    seed: int = 0,
    num_maps: int | None = None,
    deaths_per_round: int = 3,
) -> list[dict[str, Any]]:
    """The bodies of a series where map ``i`` is played on ``maps[i][0]`` and ends at
    ``maps[i][1]`` (team1's rounds, team2's rounds)."""
    rng = random.Random(seed)
    mid: str | int = int(matchid) if flavor == "matchzy" else str(matchid)
    num_maps = num_maps or len(maps)
    events: list[dict[str, Any]] = []

    def emit(name: str, **fields: Any) -> None:
        events.append({"event": name, "matchid": mid, **fields})

    emit(
        "series_start",
        num_maps=num_maps,
        team1={"id": "team1", "name": teams[0].name},
        team2={"id": "team2", "name": teams[1].name},
    )
    pool = [m for m, _ in maps]
    for vetoed in ("de_vertigo", "de_train"):
        emit("map_vetoed", team="team1", map_name=vetoed)
    for number, name in enumerate(pool):
        emit("map_picked", team=f"team{number % 2 + 1}", map_name=name, map_number=number)
        emit(
            "side_picked",
            team=f"team{(number + 1) % 2 + 1}",
            map_name=name,
            map_number=number,
            side=_side(flavor, 1, 0),
        )
    series = [0, 0]
    for number, (name, score) in enumerate(maps):
        state = _Map(number, name)
        for roster in teams:
            for steamid, _ in roster.players:
                state.stats[steamid] = dict.fromkeys(STATS, 0)
        emit("going_live", map_number=number)
        scores = [0, 0]
        for index, winner in enumerate(rounds_to(score, rng)):
            emit("round_start", map_number=number, round_number=index)
            _play_round(flavor, emit, state, teams, index, winner, deaths_per_round, rng)
            scores[winner - 1] += 1
            leading = 1 if scores[0] > scores[1] else 2  # MatchZy's "winner"; a tie: team2
            matchzy = flavor == "matchzy"
            emit(
                "round_end",
                map_number=number,
                # MatchZy: the rounds played so far (from 1), and no round time
                round_number=sum(scores) if matchzy else index,
                round_time=0 if matchzy else 60_000 + rng.randrange(50_000),
                reason=rng.choice((7, 8, 1, 9)),
                winner={
                    "team": f"team{leading if flavor == 'matchzy' else winner}",
                    "side": _side(flavor, leading if flavor == "matchzy" else winner, index),
                },
                team1=_team(flavor, 1, teams[0], state, scores[0], series[0], index),
                team2=_team(flavor, 2, teams[1], state, scores[1], series[1], index),
            )
        map_winner = 1 if score[0] > score[1] else 2 if score[1] > score[0] else 0
        if map_winner:
            series[map_winner - 1] += 1
        emit(
            "map_result",
            map_number=number,
            team1=_team(flavor, 1, teams[0], state, score[0], series[0], -1, flavor == "matchzy"),
            team2=_team(flavor, 2, teams[1], state, score[1], series[1], -1, flavor == "matchzy"),
            winner={"team": f"team{map_winner}" if map_winner else "none", "side": "ct"},
        )
        emit("demo_finished", map_number=number, filename=f"{matchid}_map_{number}_{name}.dem")
    drawn = series[0] == series[1]
    if not (flavor == "matchzy" and drawn):
        emit(
            "series_end",
            team1_series_score=series[0],
            team2_series_score=series[1],
            winner={"team": "none" if drawn else f"team{1 if series[0] > series[1] else 2}"},
            time_until_restore=10,
        )
    return events


def _play_round(
    flavor: str,
    emit: Any,
    state: _Map,
    teams: Sequence[Roster],
    index: int,
    winner: int,
    deaths: int,
    rng: random.Random,
) -> None:
    kills_this_round: dict[str, int] = {}
    survived = {p for roster in teams for p, _ in roster.players}
    for _ in range(deaths):
        killer_team = winner if rng.random() < 0.7 else 3 - winner
        killer = rng.choice(teams[killer_team - 1].players)[0]
        victims = [p for p, _ in teams[2 - killer_team].players if p in survived]
        if not victims:
            continue
        victim = rng.choice(victims)
        survived.discard(victim)
        kills_this_round[killer] = kills_this_round.get(killer, 0) + 1
        headshot = rng.random() < 0.4
        figures = state.stats[killer]
        figures["kills"] += 1
        figures["damage"] += 100
        figures["headshot_kills"] += headshot
        state.stats[victim]["deaths"] += 1
        emit(
            "player_death",
            map_number=state.number,
            round_number=index,
            round_time=rng.randrange(100_000),
            player={"steamid": victim, "name": "", "side": "t", "is_bot": False, "user_id": 1},
            attacker={"steamid": killer, "name": "", "side": "ct", "is_bot": False, "user_id": 2},
            weapon={"name": "ak47", "id": 7},
            headshot=headshot,
            bomb=False,
            thru_smoke=False,
            penetrated=False,
            attacker_blind=False,
            no_scope=False,
            suicide=False,
            friendly_fire=False,
            assist=None,
        )
    for roster in teams:
        for steamid, _ in roster.players:
            figures = state.stats[steamid]
            figures["rounds_played"] += 1
            count = kills_this_round.get(steamid, 0)
            if count:
                figures[f"{min(count, 5)}k"] += 1
            if count or steamid in survived:
                figures["kast"] += 1


def _team(
    flavor: str,
    team: int,
    roster: Roster,
    state: _Map,
    score: int,
    series_score: int,
    index: int,
    no_players: bool = False,
) -> dict[str, Any]:
    players = [
        {"steamid": steamid, "name": name, "stats": dict(state.stats[steamid])}
        for steamid, name in roster.players
    ]
    return {
        "id": f"team{team}",
        "name": roster.name,
        "series_score": series_score,
        "score": score,
        "score_ct": score // 2,
        "score_t": score - score // 2,
        "side": _side(flavor, team, max(index, 0)),
        "starting_side": _side(flavor, team, 0),
        "players": [] if no_players else players,
    }


# What real servers do to the stream ---------------------------------------------------------


def with_resends(events: list[dict[str, Any]], rng: random.Random, share: float) -> list[Any]:
    """Some events sent again later (a failed request retried): duplicates, late."""
    out = list(events)
    for event in events:
        if rng.random() < share:
            out.insert(min(len(out), out.index(event) + rng.randrange(1, 30)), event)
    return out


def reordered(events: list[dict[str, Any]], rng: random.Random, window: int) -> list[Any]:
    """Neighbours within ``window`` swapped now and then (requests racing each other)."""
    out = list(events)
    for i in range(0, len(out) - window, window):
        j = i + rng.randrange(1, window)
        out[i], out[j] = out[j], out[i]
    return out


def rewound(
    events: list[dict[str, Any]], map_number: int, to_round: int, replayed: int
) -> list[Any]:
    """A backup restored on ``map_number`` after round ``to_round + replayed``: the rounds after
    ``to_round`` are played again (the same outcomes here, with their events sent again)."""
    ends = [
        i
        for i, e in enumerate(events)
        if e["event"] == "round_end" and e["map_number"] == map_number
    ]
    cut = ends[to_round + replayed] + 1
    start = ends[to_round] + 1
    mid = events[0]["matchid"]
    backup = {
        "event": "backup_loaded",
        "matchid": mid,
        "map_number": map_number,
        "round_number": events[ends[to_round]]["round_number"],
        "filename": f"backup_{mid}_{map_number}_{to_round}.json",
    }
    again = [
        dict(e, round_time=e["round_time"] + 1) if "round_time" in e else e
        for e in events[start:cut]
    ]
    return [*events[:cut], backup, *again, *events[cut:]]
