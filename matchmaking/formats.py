"""Tournament formats behind one interface (pure): which matches are played, what a result
changes, and the final places.

A format's progress is a :class:`Progress`: the results so far (match id -> winning side 0 or
1, or ``BOTH_FORFEITED``) and what was decided once and kept: the Swiss rounds as they were
paired, and the playoff seeds of groups-then-playoffs once the groups are over. Everything
else (the elimination brackets, the round-robin schedules, the groups) is rebuilt from the
participants, so it is never stored twice.

Match ids, unique within a tournament:

- single and double elimination: the bracket's (``U1-1``, ``L2-3``, ``3P``, ``GF``, ``GF2``);
- round robin: ``R<round>-<n>``; Swiss: ``S<round>-<n>``;
- groups then playoffs: ``G<group>-R<round>-<n>`` in the groups, ``P-<bracket id>`` after.

Round-robin standings: a win is 1 point; ties are broken by the format's tiebreakers in order
(``head_to_head``: points in the matches among the tied; ``sonneborn_berger``: the points of
the opponents beaten; ``buchholz``: the points of all opponents; ``seed``), and participants
still equal share a place. A double forfeit is a loss for both.

Groups: ``groups`` groups filled by snake seeding (1, 2, ... then back), a round robin in each;
the best ``advance`` of each group go to a single-elimination playoff seeded group winners
first (by their record, then seed), then the runners-up, and so on. Final places: the playoff's,
then everyone else by their place in their group (all the thirds share a place range, ...).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from . import bracket as elim
from . import swiss
from .bracket import BOTH_FORFEITED, BYE, PENDING, Bracket, BracketError

TIEBREAKERS = ("head_to_head", "sonneborn_berger", "buchholz", "seed")


class Kind(enum.StrEnum):
    SINGLE_ELIMINATION = "single_elimination"
    DOUBLE_ELIMINATION = "double_elimination"
    ROUND_ROBIN = "round_robin"
    SWISS = "swiss"
    GROUPS_PLAYOFFS = "groups_playoffs"


class FormatError(Exception):
    """A result or a correction that does not fit the format (the match is not ready, the
    winner does not play it, the match decides places and cannot be double-forfeited)."""


@dataclass(frozen=True, slots=True)
class Format:
    kind: Kind
    third_place: bool = False  # single elimination, and the playoffs of groups
    swiss_rounds: int | None = None  # None: ceil(log2 n)
    groups: int = 2
    advance: int = 2  # per group
    tiebreakers: tuple[str, ...] = ("head_to_head", "sonneborn_berger", "seed")

    def check(self, participants_min: int, participants_max: int) -> list[str]:
        """What is wrong with this format for fields of ``participants_min..max`` (empty when
        nothing is)."""
        problems = []
        if unknown := [t for t in self.tiebreakers if t not in TIEBREAKERS]:
            problems.append(f"unknown tiebreakers {unknown}: choose from {list(TIEBREAKERS)}")
        if len(set(self.tiebreakers)) != len(self.tiebreakers):
            problems.append("a tiebreaker is named twice")
        if self.kind is Kind.SWISS and self.swiss_rounds is not None:
            most = swiss.rounds_max(participants_min)
            if not 1 <= self.swiss_rounds <= most:
                problems.append(f"swiss_rounds must be 1..{most} for {participants_min} players")
        if self.kind is Kind.GROUPS_PLAYOFFS:
            if self.groups < 2:
                problems.append("groups must be at least 2")
            elif participants_min < 2 * self.groups:
                problems.append(f"{self.groups} groups need at least {2 * self.groups} players")
            if self.advance < 1 or self.groups * self.advance < 2:
                problems.append("at least two must advance to the playoffs")
            elif participants_min // self.groups < self.advance:
                problems.append(
                    f"groups of {participants_min // self.groups} cannot advance {self.advance}"
                )
        return problems


@dataclass(frozen=True, slots=True)
class Progress:
    results: Mapping[str, int] = field(default_factory=dict)
    swiss: tuple[swiss.SwissRound, ...] = ()
    playoff_seeds: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class MatchView:
    """One match as spectators see it: sides are participants, ``None`` (a bye) or ``"?"``
    (not known yet)."""

    id: str
    round: int
    stage: str  # "upper", "lower", "final", "groups:<n>", "playoffs", "swiss", "league"
    sides: tuple[str | None, str | None]
    result: int | None  # the winning side, BOTH_FORFEITED, or None
    decided: bool  # played, or decided without play (a bye)


def start(fmt: Format, participants: Sequence[str]) -> Progress:
    """The progress of a format before any match: the first Swiss round is paired."""
    if len(participants) < 2:
        raise FormatError("a tournament needs at least two participants")
    if fmt.kind is Kind.SWISS:
        return Progress(swiss=(swiss.pair_round(participants, (), {}),))
    return Progress()


def matches(fmt: Format, participants: Sequence[str], progress: Progress) -> list[MatchView]:
    """Every match known so far, in playing order."""
    results = progress.results
    if fmt.kind in (Kind.SINGLE_ELIMINATION, Kind.DOUBLE_ELIMINATION):
        return _bracket_views(_bracket(fmt, participants), results, "")
    if fmt.kind is Kind.ROUND_ROBIN:
        return _league_views(_schedule(participants, "R"), results, "league")
    if fmt.kind is Kind.SWISS:
        return [
            MatchView(p.id, p.round, "swiss", p.sides, results.get(p.id), p.id in results)
            for r in progress.swiss
            for p in r.pairings
        ]
    views = []
    for g, group in enumerate(_groups(fmt, participants), 1):
        views += _league_views(_schedule(group, f"G{g}-R"), results, f"groups:{g}")
    if progress.playoff_seeds is not None:
        views += _bracket_views(_playoffs(fmt, progress.playoff_seeds), results, "P-")
    return views


def finals(fmt: Format, participants: Sequence[str], progress: Progress) -> frozenset[str]:
    """The matches that decide first place (none in leagues and Swiss)."""
    if fmt.kind is Kind.DOUBLE_ELIMINATION:
        return frozenset({"GF", "GF2"})
    if fmt.kind is Kind.SINGLE_ELIMINATION:
        return frozenset({_bracket(fmt, participants).final})
    if fmt.kind is Kind.GROUPS_PLAYOFFS and progress.playoff_seeds is not None:
        return frozenset({"P-" + _playoffs(fmt, progress.playoff_seeds).final})
    return frozenset()


def playable(fmt: Format, participants: Sequence[str], progress: Progress) -> list[MatchView]:
    """The matches to play now: both sides known, no result yet."""
    if fmt.kind is Kind.SWISS:  # only the last round can be open: skip the others
        rounds = progress.swiss[-1:]
        results = progress.results
        return [
            MatchView(p.id, p.round, "swiss", p.sides, None, False)
            for r in rounds
            for p in r.pairings
            if p.id not in results
        ]
    return [
        m
        for m in matches(fmt, participants, progress)
        if not m.decided and all(side not in (BYE, PENDING) for side in m.sides)
    ]


def report(
    fmt: Format, participants: Sequence[str], progress: Progress, match_id: str, winner: str | None
) -> Progress:
    """The progress after ``winner`` won ``match_id`` (None: both sides forfeited), which must
    be playable; a complete Swiss round pairs the next, complete groups seed the playoffs."""
    match = playable_match(fmt, participants, progress, match_id)
    if winner is None:
        found = _elimination(fmt, participants, progress, match_id)
        if found is not None:  # refused where places are decided
            try:
                elim.forfeit_both(*found)
            except BracketError as error:
                raise FormatError(str(error)) from None
        side = BOTH_FORFEITED
    elif winner in match.sides:
        side = match.sides.index(winner)
    else:
        raise FormatError(f"{winner!r} does not play {match_id}")
    results = {**progress.results, match_id: side}
    return _advanced(fmt, participants, replace(progress, results=results))


def correct(
    fmt: Format, participants: Sequence[str], progress: Progress, match_id: str, winner: str
) -> tuple[Progress, list[str]]:
    """An admin's correction of a decided match: the new progress and the matches whose
    results were dropped to be played again (elimination: every later match whose sides
    changed; Swiss and leagues: none, only standings change; groups: a group result changes
    the playoffs only before they are seeded)."""
    views = {m.id: m for m in matches(fmt, participants, progress)}
    view = views.get(match_id)
    if view is None or match_id not in progress.results:
        raise FormatError(f"match {match_id} has no result to correct")
    if winner not in view.sides:
        raise FormatError(f"{winner!r} does not play {match_id}")
    found = _elimination(fmt, participants, progress, match_id)
    if found is None:
        results = {**progress.results, match_id: view.sides.index(winner)}
        return _advanced(fmt, participants, replace(progress, results=results)), []
    bracket, own, local = found
    fixed, reset = elim.correct(bracket, own, local, winner)
    prefix = match_id[: len(match_id) - len(local)]  # "" or "P-"
    results = {k: v for k, v in progress.results.items() if prefix and not k.startswith(prefix)}
    results |= {prefix + k: v for k, v in fixed.items()}
    return replace(progress, results=results), [prefix + m for m in reset]


def _elimination(
    fmt: Format, participants: Sequence[str], progress: Progress, match_id: str
) -> tuple[Bracket, dict[str, int], str] | None:
    """The bracket ``match_id`` is in, its results and the id in it; None for a league's."""
    if fmt.kind in (Kind.SINGLE_ELIMINATION, Kind.DOUBLE_ELIMINATION):
        return _bracket(fmt, participants), dict(progress.results), match_id
    if match_id.startswith("P-") and progress.playoff_seeds is not None:
        return _playoffs(fmt, progress.playoff_seeds), _playoff_results(progress), match_id[2:]
    return None


def complete(fmt: Format, participants: Sequence[str], progress: Progress) -> bool:
    if fmt.kind in (Kind.SINGLE_ELIMINATION, Kind.DOUBLE_ELIMINATION):
        return elim.complete(_bracket(fmt, participants), progress.results)
    if fmt.kind is Kind.SWISS:
        rounds = fmt.swiss_rounds or swiss.default_rounds(len(participants))
        last = progress.swiss[-1]
        return last.number == rounds and all(p.id in progress.results for p in last.pairings)
    if fmt.kind is Kind.ROUND_ROBIN:
        return all(m.decided for m in matches(fmt, participants, progress))
    return progress.playoff_seeds is not None and elim.complete(
        _playoffs(fmt, progress.playoff_seeds), _playoff_results(progress)
    )


def placements(
    fmt: Format, participants: Sequence[str], progress: Progress
) -> list[tuple[int, list[str]]]:
    """Final places, best first, as (first place of the range, participants sharing it)."""
    if not complete(fmt, participants, progress):
        raise FormatError("the tournament is not complete")
    if fmt.kind in (Kind.SINGLE_ELIMINATION, Kind.DOUBLE_ELIMINATION):
        return elim.placements(_bracket(fmt, participants), progress.results)
    if fmt.kind is Kind.SWISS:
        table = swiss.standings(participants, progress.swiss, progress.results)
        return _places([[s.participant] for s in table])  # seed breaks every tie
    if fmt.kind is Kind.ROUND_ROBIN:
        schedule = _schedule(participants, "R")
        return _places(league_standings(participants, schedule, progress.results, fmt.tiebreakers))
    assert progress.playoff_seeds is not None
    playoff = elim.placements(_playoffs(fmt, progress.playoff_seeds), _playoff_results(progress))
    groups: list[list[str]] = [who for _, who in playoff]
    by_rank: dict[int, list[str]] = {}
    for g, group in enumerate(_groups(fmt, participants), 1):
        league = league_standings(
            group, _schedule(group, f"G{g}-R"), progress.results, fmt.tiebreakers
        )
        rank = 0
        for tied in league:
            for who in tied:
                if who not in progress.playoff_seeds:
                    by_rank.setdefault(rank, []).append(who)
            rank += len(tied)
    seed = {p: i for i, p in enumerate(participants)}
    groups += [sorted(by_rank[r], key=seed.__getitem__) for r in sorted(by_rank)]
    return _places(groups)


def league_standings(
    participants: Sequence[str],
    schedule: Sequence[tuple[str, int, str, str]],
    results: Mapping[str, int],
    tiebreakers: Sequence[str],
) -> list[list[str]]:
    """A league table: groups of participants sharing a place, best first."""
    points = dict.fromkeys(participants, 0)
    beaten: dict[str, list[str]] = {p: [] for p in participants}
    met: dict[str, list[str]] = {p: [] for p in participants}
    wins: dict[tuple[str, str], int] = {}
    for match_id, _, a, b in schedule:
        result = results.get(match_id)
        if result is None:
            continue
        met[a].append(b)
        met[b].append(a)
        if result in (0, 1):
            winner, loser = (a, b) if result == 0 else (b, a)
            points[winner] += 1
            beaten[winner].append(loser)
            wins[(winner, loser)] = wins.get((winner, loser), 0) + 1
    seed = {p: i for i, p in enumerate(participants)}

    def key(p: str) -> tuple[int, ...]:
        tied = [q for q in participants if points[q] == points[p]]
        parts = [-points[p]]
        for tiebreaker in tiebreakers:
            if tiebreaker == "head_to_head":
                parts.append(-sum(wins.get((p, q), 0) for q in tied))
            elif tiebreaker == "sonneborn_berger":
                parts.append(-sum(points[q] for q in beaten[p]))
            elif tiebreaker == "buchholz":
                parts.append(-sum(points[q] for q in met[p]))
            elif tiebreaker == "seed":
                parts.append(seed[p])
        return tuple(parts)

    keys = {p: key(p) for p in participants}
    ordered = sorted(participants, key=lambda p: (keys[p], seed[p]))
    table: list[list[str]] = []
    for p in ordered:
        if table and keys[table[-1][0]] == keys[p]:
            table[-1].append(p)
        else:
            table.append([p])
    return table


# The formats' parts -------------------------------------------------------------------------


def _bracket(fmt: Format, participants: Sequence[str]) -> Bracket:
    return _built(*_bracket_key(fmt, participants, Progress(), playoffs=False))


def _playoffs(fmt: Format, seeds: Sequence[str]) -> Bracket:
    return _built(False, fmt.third_place, tuple(seeds))


@functools.lru_cache(maxsize=256)
def _built(double: bool, third_place: bool, participants: tuple[str, ...]) -> Bracket:
    """A bracket, built once per field (it is immutable, and every result reads it)."""
    if double:
        return elim.double_elimination(participants)
    return elim.single_elimination(participants, third_place)


def _playoff_results(progress: Progress) -> dict[str, int]:
    return {k[2:]: v for k, v in progress.results.items() if k.startswith("P-")}


def league_schedule(participants: Sequence[str]) -> tuple[tuple[str, int, str, str], ...]:
    """A round robin's matches as (id, round, home, away)."""
    return _schedule(participants, "R")


def _schedule(participants: Sequence[str], prefix: str) -> tuple[tuple[str, int, str, str], ...]:
    """A round robin's matches as (id, round, home, away)."""
    return _league(tuple(participants), prefix)[0]


@functools.lru_cache(maxsize=256)
def _league(
    participants: tuple[str, ...], prefix: str
) -> tuple[tuple[tuple[str, int, str, str], ...], dict[str, tuple[str, int, str, str]]]:
    """A round robin's schedule and its matches by id, made once per field (a 128-player
    league has 8,128 matches; a result should not rebuild them)."""
    schedule = tuple(
        (f"{prefix}{r}-{n}", r, a, b)
        for r, pairs in enumerate(elim.round_robin(participants), 1)
        for n, (a, b) in enumerate(pairs, 1)
    )
    return schedule, {m[0]: m for m in schedule}


def _groups(fmt: Format, participants: Sequence[str]) -> list[list[str]]:
    """Snake seeding: seeds 1..G into groups 1..G, then G+1..2G into G..1, and so on."""
    groups: list[list[str]] = [[] for _ in range(fmt.groups)]
    for i, participant in enumerate(participants):
        lap, at = divmod(i, fmt.groups)
        groups[at if lap % 2 == 0 else fmt.groups - 1 - at].append(participant)
    return groups


def _league_views(
    schedule: Sequence[tuple[str, int, str, str]], results: Mapping[str, int], stage: str
) -> list[MatchView]:
    return [
        MatchView(match_id, r, stage, (a, b), results.get(match_id), match_id in results)
        for match_id, r, a, b in schedule
    ]


def _bracket_views(bracket: Bracket, results: Mapping[str, int], prefix: str) -> list[MatchView]:
    own = {k[len(prefix) :]: v for k, v in results.items() if k.startswith(prefix)}
    states = elim.states(bracket, own)
    views = []
    for match in bracket.matches:
        state = states[match.id]
        stage = _stage(match.id, prefix)
        views.append(
            MatchView(
                prefix + match.id,
                match.round,
                stage,
                state.sides,
                own.get(match.id),
                state.outcome is not None,
            )
        )
    return views


def playable_match(
    fmt: Format, participants: Sequence[str], progress: Progress, match_id: str
) -> MatchView:
    """``match_id`` if it is playable, found without listing every match of a league."""
    if fmt.kind is Kind.SWISS:
        try:
            pairing = swiss.find(progress.swiss, match_id)
        except swiss.SwissError:
            pairing = None
        if pairing is not None and pairing.id not in progress.results:
            return MatchView(pairing.id, pairing.round, "swiss", pairing.sides, None, False)
        raise FormatError(f"match {match_id} is not ready to be reported")
    league = _league_match(fmt, participants, match_id)
    if league is not None:
        _, round_, a, b = league
        if match_id not in progress.results:
            stage = (
                "league" if fmt.kind is Kind.ROUND_ROBIN else f"groups:{match_id[1:].split('-')[0]}"
            )
            return MatchView(match_id, round_, stage, (a, b), None, False)
    else:
        found = _elimination(fmt, participants, progress, match_id)
        index = (
            None
            if found is None
            else _index(*_bracket_key(fmt, participants, progress, found[2] != match_id))
        )
        if found is not None and index is not None and found[2] in index:
            bracket, own, local = found
            state = elim.state_of(bracket, own, local, index)
            if state.outcome is None and all(side not in (BYE, PENDING) for side in state.sides):
                prefix = match_id[: len(match_id) - len(local)]
                stage = _stage(index[local].id, prefix)
                return MatchView(match_id, index[local].round, stage, state.sides, None, False)
    raise FormatError(f"match {match_id} is not ready to be reported")


@functools.lru_cache(maxsize=256)
def _index(
    double: bool, third_place: bool, participants: tuple[str, ...]
) -> dict[str, elim.BracketMatch]:
    """The matches by id of the bracket :func:`_built` makes from the same arguments."""
    return {m.id: m for m in _built(double, third_place, participants).matches}


def _bracket_key(
    fmt: Format, participants: Sequence[str], progress: Progress, playoffs: bool
) -> tuple[bool, bool, tuple[str, ...]]:
    """:func:`_built`'s arguments for the tournament's bracket, or its playoff's."""
    if playoffs:
        assert progress.playoff_seeds is not None
        return False, fmt.third_place, tuple(progress.playoff_seeds)
    return fmt.kind is Kind.DOUBLE_ELIMINATION, fmt.third_place, tuple(participants)


def _stage(match_id: str, prefix: str) -> str:
    if prefix:
        return "playoffs"
    if match_id.startswith("L"):
        return "lower"
    if match_id in ("GF", "GF2", "3P"):
        return "final"
    return "upper"


def _league_match(
    fmt: Format, participants: Sequence[str], match_id: str
) -> tuple[str, int, str, str] | None:
    """The round-robin match ``match_id`` (of the league, or of a group), if it is one."""
    if fmt.kind is Kind.ROUND_ROBIN:
        return _league(tuple(participants), "R")[1].get(match_id)
    if fmt.kind is Kind.GROUPS_PLAYOFFS and match_id.startswith("G"):
        number = match_id[1:].split("-")[0]
        groups = _groups(fmt, participants)
        if number.isdigit() and 1 <= int(number) <= len(groups):
            return _league(tuple(groups[int(number) - 1]), f"G{number}-R")[1].get(match_id)
    return None


def _advanced(fmt: Format, participants: Sequence[str], progress: Progress) -> Progress:
    """A complete Swiss round pairs the next; complete groups seed the playoffs."""
    if fmt.kind is Kind.SWISS:
        rounds = fmt.swiss_rounds or swiss.default_rounds(len(participants))
        last = progress.swiss[-1]
        if last.number < rounds and all(p.id in progress.results for p in last.pairings):
            paired = swiss.pair_round(participants, progress.swiss, progress.results)
            return replace(progress, swiss=(*progress.swiss, paired))
    if fmt.kind is Kind.GROUPS_PLAYOFFS and progress.playoff_seeds is None:
        groups = _groups(fmt, participants)
        schedules = [_schedule(group, f"G{g}-R") for g, group in enumerate(groups, 1)]
        if all(m[0] in progress.results for schedule in schedules for m in schedule):
            return replace(
                progress, playoff_seeds=_seed_playoffs(fmt, participants, groups, progress)
            )
    return progress


def _seed_playoffs(
    fmt: Format, participants: Sequence[str], groups: list[list[str]], progress: Progress
) -> tuple[str, ...]:
    seed = {p: i for i, p in enumerate(participants)}
    by_rank: list[list[tuple[int, int, str]]] = [[] for _ in range(fmt.advance)]
    for g, group in enumerate(groups, 1):
        schedule = _schedule(group, f"G{g}-R")
        table = [
            p
            for tied in league_standings(group, schedule, progress.results, fmt.tiebreakers)
            for p in tied
        ]
        points = {p: 0 for p in group}
        for match_id, _, a, b in schedule:
            result = progress.results.get(match_id)
            if result in (0, 1):
                points[(a, b)[result]] += 1
        for rank, who in enumerate(table[: fmt.advance]):
            by_rank[rank].append((-points[who], seed[who], who))
    return tuple(who for rank in by_rank for _, _, who in sorted(rank))


def _places(groups: Sequence[Sequence[str]]) -> list[tuple[int, list[str]]]:
    places: list[tuple[int, list[str]]] = []
    count = 0
    for group in groups:
        if group:
            places.append((count + 1, list(group)))
            count += len(group)
    return places
