"""CS2 servers running get5 or MatchZy: their event log folded into a series' state (pure).

The plugins post one JSON body per event (get5's published event schema; MatchZy sends a
subset, with quirks). :func:`parse` turns a body into an :class:`Event` whatever the flavor,
and :func:`apply` folds it into the :class:`Series`, returning what changed
(:class:`Effect`). Both are pure: no clock, no I/O.

What the fold relies on, and why:

- **Scores, not stated winners.** MatchZy's ``round_end`` names the team leading the map, not
  the round's winner, and its sides are "2"/"3"; so a round's winner is whoever's map score went
  up, and a map's winner is whoever has more rounds (the stated winner only breaks a tie, as in
  a forfeit, and only from get5).
- **Duplicates and late events are normal.** Plugins re-send events that failed, later and out
  of order. The shell drops exact repeats before the fold (it keeps every body's digest);
  what reaches the fold is applied by its key (map, round, event): a round seen with the same
  score changes nothing, a round missing between two known ones is filled in.
- **Rewinds.** ``backup_loaded`` (a restored round), or a round seen again with a different
  score, rewinds the map: the later rounds are discarded and the map is open again.
- **A series can end without ``series_end``.** MatchZy sends none after a drawn decider, and
  a lost request is never re-sent by some versions; so the series result is derived from the
  map results as soon as they decide it (a majority of ``num_maps``, or every map played).
  A ``series_end`` that arrives before the map results it sums finishes the series from its
  scores; map results that later disagree are counted as conflicts, never applied.
- **Stats.** Per player per map, the cumulative figures of the latest round (or of a
  ``map_result`` that carries players: MatchZy's are empty).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final


class Flavor(enum.StrEnum):
    GET5 = "get5"
    MATCHZY = "matchzy"


class Phase(enum.StrEnum):
    WAITING = "waiting"  # config handed out, nothing heard yet
    VETO = "veto"  # series_start seen; maps being picked
    LIVE = "live"  # a map is being played
    FINISHED = "finished"  # the series result is known
    CANCELLED = "cancelled"  # reserved: the match was called off (the shell aborts it)


MAPS_MAX: Final = 7
ROUNDS_MAX: Final = 200  # a map with more rounds (overtime without end) is refused
PLAYERS_PER_TEAM_MAX: Final = 16
NAME_CHARS_MAX: Final = 128
# the per-player figures kept per map, under our names (the plugins' keys in STAT_KEYS)
STATS: Final = (
    "kills",
    "deaths",
    "assists",
    "damage",
    "headshot_kills",
    "kast",
    "k1",
    "k2",
    "k3",
    "k4",
    "k5",
    "rounds_played",
)
STAT_KEYS: Final = {
    "kills": "kills",
    "deaths": "deaths",
    "assists": "assists",
    "damage": "damage",
    "headshot_kills": "headshot_kills",
    "kast": "kast",
    "k1": "1k",
    "k2": "2k",
    "k3": "3k",
    "k4": "4k",
    "k5": "5k",
    "rounds_played": "rounds_played",
}
STAT_VALUE_MAX: Final = 10_000_000

# events the fold reads; every other known name is stored and acknowledged, and changes nothing
_FOLDED: Final = frozenset(
    {
        "series_start",
        "series_end",
        "map_picked",
        "map_vetoed",
        "side_picked",
        "going_live",
        "round_end",
        "map_result",
        "backup_loaded",
    }
)
KNOWN: Final = _FOLDED | frozenset(
    {
        "round_start",
        "round_stats_updated",
        "player_death",
        "player_connected",
        "player_disconnect",
        "player_say",
        "bomb_planted",
        "bomb_defused",
        "bomb_exploded",
        "grenade_thrown",
        "hegrenade_detonated",
        "flashbang_detonated",
        "smokegrenade_detonated",
        "molotov_detonated",
        "decoygrenade_detonated",
        "round_mvp",
        "team_ready_status_changed",
        "pause_began",
        "paused",
        "unpaused",
        "game_paused",
        "game_unpaused",
        "demo_finished",
        "demo_upload_ended",
        "knife_start",
        "knife_won",
        "backup_saved",
    }
)


class BadEvent(Exception):
    """A body that is not an event of the flavor (the message says what is wrong)."""


@dataclass(frozen=True, slots=True)
class PlayerLine:
    steamid: str
    name: str
    stats: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class TeamLine:
    score: int | None
    players: tuple[PlayerLine, ...]


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    matchid: str  # as the body says (compared with the match's, never used to find it)
    map_number: int | None = None
    round_number: int | None = None
    map_name: str | None = None
    num_maps: int | None = None
    team1: TeamLine | None = None
    team2: TeamLine | None = None
    stated_winner: int | None = None  # 1, 2, 0 for none, None when absent
    series_score: tuple[int, int] | None = None

    @property
    def key(self) -> str:
        """The idempotency key within a match: event, map and round."""
        return f"{self.name}:{self.map_number}:{self.round_number}"


def _int(body: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)  # MatchZy sends some numbers as strings
    if type(value) is not int or not low <= value <= high:
        raise BadEvent(f"{name} must be an integer in {low}..{high}")
    return value


def _optional_int(body: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    return None if body.get(name) is None else _int(body, name, low, high)


def _text(body: Mapping[str, Any], name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise BadEvent(f"{name} must be a string")
    text = str(value)
    if len(text) > NAME_CHARS_MAX:
        raise BadEvent(f"{name} is longer than {NAME_CHARS_MAX} characters")
    return text


def _winner(body: Mapping[str, Any]) -> int | None:
    winner = body.get("winner")
    if winner is None:
        return None
    if not isinstance(winner, Mapping):
        raise BadEvent("winner must be an object")
    team = winner.get("team")
    return {"team1": 1, "team2": 2}.get(team, 0) if isinstance(team, str) else 0


def _player(raw: object) -> PlayerLine:
    if not isinstance(raw, Mapping):
        raise BadEvent("a player must be an object")
    steamid = _text(raw, "steamid", required=True)
    assert steamid is not None
    stats_raw = raw.get("stats") or {}
    if not isinstance(stats_raw, Mapping):
        raise BadEvent("a player's stats must be an object")
    stats = {
        ours: _int(stats_raw, theirs, 0, STAT_VALUE_MAX)
        for ours, theirs in STAT_KEYS.items()
        if stats_raw.get(theirs) is not None
    }
    return PlayerLine(steamid, _text(raw, "name") or "", stats)


def _team(body: Mapping[str, Any], name: str) -> TeamLine | None:
    raw = body.get(name)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise BadEvent(f"{name} must be an object")
    players = raw.get("players") or []
    if not isinstance(players, list) or len(players) > PLAYERS_PER_TEAM_MAX:
        raise BadEvent(f"{name}.players must be a list of at most {PLAYERS_PER_TEAM_MAX}")
    return TeamLine(_optional_int(raw, "score", 0, ROUNDS_MAX), tuple(map(_player, players)))


def parse(flavor: Flavor, body: object) -> Event:
    """One plugin body as an :class:`Event`; :class:`BadEvent` when it is not one."""
    if not isinstance(body, Mapping):
        raise BadEvent("an event is a JSON object")
    name = body.get("event")
    if not isinstance(name, str) or name not in KNOWN:
        raise BadEvent(f"unknown event {str(name)[:40]!r}")
    matchid = _text(body, "matchid", required=True)
    assert matchid is not None
    score = None
    if name == "series_end" and body.get("team1_series_score") is not None:
        score = (
            _int(body, "team1_series_score", 0, MAPS_MAX),
            _int(body, "team2_series_score", 0, MAPS_MAX),
        )
    event = Event(
        name=name,
        matchid=matchid,
        map_number=_optional_int(body, "map_number", 0, MAPS_MAX - 1),
        round_number=_optional_int(body, "round_number", 0, ROUNDS_MAX),
        map_name=_text(body, "map_name"),
        num_maps=_optional_int(body, "num_maps", 1, MAPS_MAX),
        team1=_team(body, "team1"),
        team2=_team(body, "team2"),
        stated_winner=_winner(body),
        series_score=score,
    )
    if name in {"round_end", "map_result"}:
        if event.map_number is None or event.team1 is None or event.team2 is None:
            raise BadEvent(f"{name} needs map_number, team1 and team2")
        if event.team1.score is None or event.team2.score is None:
            raise BadEvent(f"{name} needs each team's score")
    if name in {"round_end", "backup_loaded"} and event.round_number is None:
        raise BadEvent(f"{name} needs round_number")
    if name in {"going_live", "map_picked", "backup_loaded"} and event.map_number is None:
        raise BadEvent(f"{name} needs map_number")
    return event


# The fold ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MapState:
    number: int
    name: str | None = None
    live: bool = False
    rounds: Mapping[int, tuple[int, int]] = field(default_factory=dict)  # round -> score after
    stats: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # steamid -> figures
    stats_round: int = -1  # the round the stats are from (a map_result's: ROUNDS_MAX + 1)
    result: tuple[int, int] | None = None  # the final score, once the map is over
    rewinds: int = 0

    @property
    def score(self) -> tuple[int, int]:
        if self.result is not None:
            return self.result
        return self.rounds[max(self.rounds)] if self.rounds else (0, 0)

    @property
    def winner(self) -> int | None:
        """1 or 2, 0 for a draw, None while the map is not over."""
        if self.result is None:
            return None
        one, two = self.result
        return 1 if one > two else 2 if two > one else 0


@dataclass(frozen=True, slots=True)
class Series:
    num_maps: int
    phase: Phase = Phase.WAITING
    maps: tuple[MapState, ...] = ()
    ranks: tuple[int, int] | None = None  # per team, lower is better, equal is a draw
    series_end: tuple[int, int] | None = None  # the scores series_end stated
    series_end_winner: int | None = None  # and the winner it named (1, 2; 0 none)
    conflicts: int = 0  # events contradicting what was settled (flagged, not applied)

    def map(self, number: int) -> MapState:
        for state in self.maps:
            if state.number == number:
                return state
        return MapState(number)

    @property
    def maps_won(self) -> tuple[int, int]:
        winners = [m.winner for m in self.maps]
        return winners.count(1), winners.count(2)


@dataclass(frozen=True, slots=True)
class Effect:
    """What changed, for the match's channel (``kind``) and the shell (``finished`` carries
    the ranks to settle; ``cancelled`` aborts the match)."""

    kind: str
    data: Mapping[str, object]


def new_series(num_maps: int) -> Series:
    if not 1 <= num_maps <= MAPS_MAX:
        raise ValueError(f"num_maps must be in 1..{MAPS_MAX}")
    return Series(num_maps)


def _with_map(series: Series, state: MapState) -> Series:
    others = tuple(m for m in series.maps if m.number != state.number)
    return replace(series, maps=tuple(sorted((*others, state), key=lambda m: m.number)))


def _scores(event: Event) -> tuple[int, int]:
    assert event.team1 is not None and event.team2 is not None
    assert event.team1.score is not None and event.team2.score is not None
    return event.team1.score, event.team2.score


def _stats_of(event: Event) -> dict[str, dict[str, int]]:
    lines = [
        *(event.team1.players if event.team1 else ()),
        *(event.team2.players if event.team2 else ()),
    ]
    return {p.steamid: dict(p.stats) for p in lines}


def _round_winner(state: MapState, number: int, score: tuple[int, int]) -> int:
    earlier = [r for r in state.rounds if r < number]
    before = state.rounds[max(earlier)] if earlier else (0, 0)
    return 1 if score[0] > before[0] else 2 if score[1] > before[1] else 0


def _live(state: MapState, round_number: int | None = None, won_by: int | None = None) -> Effect:
    data: dict[str, object] = {"map": state.number, "score": list(state.score)}
    if won_by is not None:
        data["round_winner"] = won_by
    if state.name is not None:
        data["map_name"] = state.name
    if round_number is not None:
        data["round"] = round_number
    return Effect("cs2.round", data)


def _round_end(series: Series, event: Event) -> tuple[Series, list[Effect]]:
    assert event.map_number is not None and event.round_number is not None
    state = series.map(event.map_number)
    number, score = event.round_number, _scores(event)
    if state.result is not None:
        # a late round of a finished map: its score must fit under the result
        if score[0] > state.result[0] or score[1] > state.result[1]:
            return replace(series, conflicts=series.conflicts + 1), []
        if number in state.rounds:
            return series, []
        return _with_map(series, replace(state, rounds={**state.rounds, number: score})), []
    rounds = dict(state.rounds)
    rewound = False
    if rounds.get(number) == score:
        return series, []  # seen: a repeat under another body (a resend with other stats)
    if number in rounds or any(r > number and sum(rounds[r]) < sum(score) for r in rounds):
        rounds = {r: s for r, s in rounds.items() if r < number}  # a rewind: later rounds go
        rewound = True
    rounds[number] = score
    newest = number >= max(rounds)
    stats, stats_round = state.stats, state.stats_round
    fresh = _stats_of(event)
    if fresh and (newest or rewound):
        stats, stats_round = fresh, number
    moved = replace(
        state,
        live=True,
        rounds=rounds,
        stats=stats,
        stats_round=stats_round,
        rewinds=state.rewinds + rewound,
    )
    effects = [_live(moved, max(rounds), _round_winner(moved, number, score))]
    if rewound:
        effects.insert(0, Effect("cs2.rewound", {"map": state.number, "round": number}))
    return _with_map(replace(series, phase=Phase.LIVE), moved), effects


def _backup_loaded(series: Series, event: Event) -> tuple[Series, list[Effect]]:
    assert event.map_number is not None and event.round_number is not None
    state = series.map(event.map_number)
    number = event.round_number
    later = [r for r in state.rounds if r > number]
    if not later and state.result is None:
        return series, []  # nothing to discard
    kept = {r: s for r, s in state.rounds.items() if r <= number}
    moved = replace(
        state,
        live=True,
        rounds=kept,
        result=None,
        stats_round=min(state.stats_round, number),
        rewinds=state.rewinds + 1,
    )
    if series.phase is Phase.FINISHED:
        # a finished series is settled: a rewind of it is flagged, never applied
        return replace(series, conflicts=series.conflicts + 1), []
    return _with_map(series, moved), [
        Effect("cs2.rewound", {"map": state.number, "round": number}),
        _live(moved),
    ]


def _map_result(series: Series, event: Event) -> tuple[Series, list[Effect]]:
    assert event.map_number is not None
    state = series.map(event.map_number)
    score = _scores(event)
    if score[0] == score[1] and event.stated_winner in (1, 2):  # a forfeit (get5 says who won)
        score = (1, 0) if event.stated_winner == 1 else (0, 1)
    if state.result is not None:
        if state.result != score:
            return replace(series, conflicts=series.conflicts + 1), []
        return series, []
    fresh = _stats_of(event)
    moved = replace(
        state,
        live=False,
        result=score,
        stats=fresh if any(fresh.values()) else state.stats,
        stats_round=ROUNDS_MAX + 1 if any(fresh.values()) else state.stats_round,
    )
    updated = _with_map(series, moved)
    effects = [
        Effect(
            "cs2.map_result",
            {
                "map": moved.number,
                "score": list(score),
                "winner": moved.winner,
                "map_name": moved.name,
            },
        )
    ]
    if series.phase is Phase.FINISHED:
        won = updated.maps_won
        expected = _ranks(*won) if _decided(updated) else None
        if expected is not None and expected != series.ranks:
            return replace(updated, conflicts=updated.conflicts + 1), effects
        return updated, effects
    return _maybe_finished(updated, effects)


def _ranks(one: int, two: int) -> tuple[int, int]:
    return (0, 1) if one > two else (1, 0) if two > one else (0, 0)


def _decided(series: Series) -> bool:
    one, two = series.maps_won
    needed = series.num_maps // 2 + 1
    played = sum(1 for m in series.maps if m.result is not None)
    return one >= needed or two >= needed or played >= series.num_maps


def _series_end_ranks(series: Series) -> tuple[int, int] | None:
    """The ranks ``series_end`` decides: its scores when they decide the series, else the
    winner it names (an admin ending the series for a team), else none (they wait for the
    map results, or for the server's silence to abort the match)."""
    if series.series_end is None:
        return None
    one, two = series.series_end
    needed = series.num_maps // 2 + 1
    if one >= needed or two >= needed or one + two >= series.num_maps:
        return _ranks(one, two)
    if series.series_end_winner in (1, 2):
        return (0, 1) if series.series_end_winner == 1 else (1, 0)
    return None


def _maybe_finished(series: Series, effects: list[Effect]) -> tuple[Series, list[Effect]]:
    if series.phase in (Phase.FINISHED, Phase.CANCELLED):
        return series, effects
    if _decided(series):
        ranks = _ranks(*series.maps_won)
    else:
        stated = _series_end_ranks(series)
        if stated is None:
            return series, effects
        ranks = stated
    finished = replace(series, phase=Phase.FINISHED, ranks=ranks)
    done = Effect("cs2.series_result", {"maps_won": list(finished.maps_won), "ranks": list(ranks)})
    return finished, [*effects, done]


def apply(series: Series, event: Event) -> tuple[Series, list[Effect]]:
    """Fold one event into the series: the new series and what changed (nothing for a repeat
    or an event the fold does not read)."""
    if series.phase is Phase.CANCELLED or event.name not in _FOLDED:
        return series, []
    name = event.name
    if name == "round_end":
        if series.phase is Phase.FINISHED:
            return _late_round(series, event)
        return _round_end(series, event)
    if name == "map_result":
        return _map_result(series, event)
    if name == "backup_loaded":
        return _backup_loaded(series, event)
    if series.phase is Phase.FINISHED:
        return series, []  # veto or live news of a settled series: nothing to change
    if name == "series_start":
        if series.phase is not Phase.WAITING:
            return series, []
        num_maps = event.num_maps or series.num_maps
        return replace(series, phase=Phase.VETO, num_maps=num_maps), [
            Effect("cs2.series_start", {"num_maps": num_maps})
        ]
    if name in ("map_picked", "map_vetoed", "side_picked"):
        effect = Effect(f"cs2.{name}", {"map": event.map_number, "map_name": event.map_name})
        if name == "map_picked" and event.map_number is not None:
            state = series.map(event.map_number)
            if state.name == event.map_name:
                return series, []
            series = _with_map(series, replace(state, name=event.map_name))
        phase = Phase.VETO if series.phase is Phase.WAITING else series.phase
        return replace(series, phase=phase), [effect]
    if name == "going_live":
        assert event.map_number is not None
        state = series.map(event.map_number)
        if state.live or state.result is not None:
            return series, []
        moved = replace(state, live=True, name=state.name or event.map_name)
        return _with_map(replace(series, phase=Phase.LIVE), moved), [
            Effect("cs2.going_live", {"map": moved.number, "map_name": moved.name})
        ]
    assert name == "series_end"
    if series.series_end is not None or event.series_score is None:
        return series, []
    ended = replace(series, series_end=event.series_score, series_end_winner=event.stated_winner)
    return _maybe_finished(ended, [])


def _late_round(series: Series, event: Event) -> tuple[Series, list[Effect]]:
    """A round of a series already settled: kept if it fits, else flagged."""
    assert event.map_number is not None and event.round_number is not None
    state = series.map(event.map_number)
    score = _scores(event)
    if state.result is None or score[0] > state.result[0] or score[1] > state.result[1]:
        if state.rounds.get(event.round_number) == score:
            return series, []
        return replace(series, conflicts=series.conflicts + 1), []
    if event.round_number in state.rounds:
        return series, []
    rounds = {**state.rounds, event.round_number: score}
    return _with_map(series, replace(state, rounds=rounds)), []


# Storage ----------------------------------------------------------------------------------


def to_document(series: Series) -> dict[str, object]:
    return {
        "num_maps": series.num_maps,
        "phase": str(series.phase),
        "ranks": None if series.ranks is None else list(series.ranks),
        "series_end": None if series.series_end is None else list(series.series_end),
        "series_end_winner": series.series_end_winner,
        "conflicts": series.conflicts,
        "maps": [
            {
                "number": m.number,
                "name": m.name,
                "live": m.live,
                "rounds": [[r, *s] for r, s in sorted(m.rounds.items())],
                "stats": {p: dict(s) for p, s in m.stats.items()},
                "stats_round": m.stats_round,
                "result": None if m.result is None else list(m.result),
                "rewinds": m.rewinds,
            }
            for m in series.maps
        ],
    }


def _pair(value: Any) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


def from_document(doc: Mapping[str, Any]) -> Series:
    return Series(
        num_maps=int(doc["num_maps"]),
        phase=Phase(doc["phase"]),
        ranks=_pair(doc.get("ranks")),
        series_end=_pair(doc.get("series_end")),
        series_end_winner=doc.get("series_end_winner"),
        conflicts=int(doc.get("conflicts", 0)),
        maps=tuple(
            MapState(
                number=int(m["number"]),
                name=m.get("name"),
                live=bool(m.get("live")),
                rounds={int(r): (int(a), int(b)) for r, a, b in m["rounds"]},
                stats={p: {k: int(v) for k, v in s.items()} for p, s in m["stats"].items()},
                stats_round=int(m.get("stats_round", -1)),
                result=_pair(m.get("result")),
                rewinds=int(m.get("rewinds", 0)),
            )
            for m in doc["maps"]
        ),
    )


def public_view(series: Series) -> dict[str, object]:
    """What anyone may see of the series: scores, rounds won, kills; no names, no IPs."""
    return {
        "phase": str(series.phase),
        "num_maps": series.num_maps,
        "maps_won": list(series.maps_won),
        "maps": [
            {
                "map": m.number,
                "map_name": m.name,
                "score": list(m.score),
                "finished": m.result is not None,
                "kills": {p: s.get("kills", 0) for p, s in m.stats.items()},
            }
            for m in series.maps
        ],
    }
