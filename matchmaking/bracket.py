"""Brackets (pure): which participants meet, and what a result changes.

A bracket is a fixed graph of matches built once from the seeded participants. Each side of a
match has a :class:`Source`: a seed, or the winner or loser of an earlier match. Who plays is
never stored: it is resolved from the sources and the results so far, so a corrected result
changes everything downstream by construction (the shell resets the matches whose players
changed).

Byes: a bracket of N participants has ``2**ceil(log2 N)`` seed lines; the lines past N are
byes, placed by standard seeding so they fall to the best seeds and never meet each other in
the first round. A match with a bye on one side is decided without being played: the other
side advances (and its "loser" is a bye, which propagates, for example to a third-place match).

This module: single elimination (with an optional third-place match), double elimination
(with the grand-final reset), and the round-robin schedule. Nothing here reads a clock or a store.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

BYE = None  # a side with no participant


class From(enum.Enum):
    SEED = "seed"
    WINNER = "winner"
    LOSER = "loser"


@dataclass(frozen=True, slots=True)
class Source:
    kind: From
    ref: int | str  # the seed (0-based) or the match id

    @staticmethod
    def seed(index: int) -> Source:
        return Source(From.SEED, index)

    @staticmethod
    def winner(match: str) -> Source:
        return Source(From.WINNER, match)

    @staticmethod
    def loser(match: str) -> Source:
        return Source(From.LOSER, match)


@dataclass(frozen=True, slots=True)
class BracketMatch:
    id: str  # "U<round>-<n>" upper, "L<round>-<n>" lower, "3P", "GF", "GF2" (the reset)
    round: int  # 1 = first
    sides: tuple[Source, Source]
    # The grand-final reset: played only when side 1 (the lower bracket's finalist) won the
    # first grand final; otherwise decided as that match was.
    reset_of: str | None = None


class BracketError(Exception):
    """A result that does not fit the bracket: the match is not ready, or the winner is not
    one of its two sides."""


@dataclass(frozen=True, slots=True)
class Bracket:
    participants: tuple[str, ...]  # in seed order: index 0 is the first seed
    matches: tuple[BracketMatch, ...]  # in playing order: a match comes after its sources
    final: str  # the id of the match that decides first place

    def match(self, match_id: str) -> BracketMatch:
        for match in self.matches:
            if match.id == match_id:
                return match
        raise BracketError(f"no match {match_id!r}")


Results = Mapping[str, int]  # match id -> the winning side (0 or 1), or BOTH_FORFEITED
BOTH_FORFEITED = 2  # neither side showed: both are out, and a bye goes on in their place


def seed_order(lines: int) -> list[int]:
    """The standard seeding of ``lines`` (a power of two) first-round lines: 0-based seeds in
    line order, such that seeds 1 and 2 can meet only in the final, 1-4 only in the semis..."""
    order = [0]
    while len(order) < lines:
        size = 2 * len(order)
        order = [s for seed in order for s in (seed, size - 1 - seed)]
    return order


def single_elimination(participants: Sequence[str], third_place: bool = False) -> Bracket:
    """The bracket of ``participants`` (best seed first), byes to the best seeds."""
    if len(participants) < 2:
        raise ValueError("a bracket needs at least two participants")
    if len(set(participants)) != len(participants):
        raise ValueError("a participant appears twice")
    rounds = math.ceil(math.log2(len(participants)))
    order = seed_order(2**rounds)
    matches: list[BracketMatch] = []
    firsts = [(Source.seed(order[i]), Source.seed(order[i + 1])) for i in range(0, len(order), 2)]
    previous = _round(matches, "U", 1, firsts)
    for round_ in range(2, rounds + 1):
        previous = _round(matches, "U", round_, _paired(previous, Source.winner))
    final = previous[0]
    if third_place and rounds >= 2:
        semis = [m.id for m in matches if m.round == rounds - 1]
        matches.append(BracketMatch("3P", rounds, (Source.loser(semis[0]), Source.loser(semis[1]))))
    return Bracket(tuple(participants), tuple(matches), final)


PENDING = "?"

Side = str | None  # a participant, BYE, or PENDING


@dataclass(frozen=True, slots=True)
class MatchState:
    sides: tuple[Side, Side]
    outcome: tuple[str | None, str | None] | None  # (winner, loser) once decided
    played: bool = False  # the outcome is the reported result (not a bye or a skipped reset)


def states(bracket: Bracket, results: Results) -> dict[str, MatchState]:
    """Every match's sides and outcome, in one pass in playing order."""
    found: dict[str, MatchState] = {}
    for match in bracket.matches:
        found[match.id] = _state(bracket, results, match, found.__getitem__)
    return found


def state_of(
    bracket: Bracket, results: Results, match_id: str, index: Mapping[str, BracketMatch]
) -> MatchState:
    """One match's sides and outcome, resolving only the matches it depends on (``index``:
    the bracket's matches by id), so a result in an early round costs a few lookups, not a
    pass over the bracket."""
    memo: dict[str, MatchState] = {}

    def get(mid: str) -> MatchState:
        if mid not in memo:
            memo[mid] = _state(bracket, results, index[mid], get)
        return memo[mid]

    return get(match_id)


def _state(
    bracket: Bracket, results: Results, match: BracketMatch, state: Callable[[str], MatchState]
) -> MatchState:
    """A match's state from the states of its sources (``state``)."""

    def resolve(source: Source) -> Side:
        if source.kind is From.SEED:
            index = int(source.ref)
            return bracket.participants[index] if index < len(bracket.participants) else BYE
        outcome = state(str(source.ref)).outcome
        if outcome is None:
            return PENDING
        return outcome[0] if source.kind is From.WINNER else outcome[1]

    a, b = resolve(match.sides[0]), resolve(match.sides[1])
    outcome: tuple[str | None, str | None] | None = None
    played = False
    first = state(match.reset_of) if match.reset_of is not None else None
    if first is not None and first.outcome is not None and first.outcome[0] == first.sides[0]:
        outcome = first.outcome  # the upper finalist won: no reset
    elif PENDING not in (a, b):
        if a is BYE or b is BYE:  # decided without being played
            outcome = (b, a) if a is BYE else (a, b)
        elif match.id in results:
            result = results[match.id]
            outcome = (a, b) if result == 0 else (b, a) if result == 1 else (BYE, BYE)
            played = True
    return MatchState((a, b), outcome, played)


def _round(
    matches: list[BracketMatch], prefix: str, round_: int, pairs: list[tuple[Source, Source]]
) -> list[str]:
    """Append one round of matches (ids ``<prefix><round>-<n>``); their ids."""
    ids = []
    for n, pair in enumerate(pairs, 1):
        ids.append(f"{prefix}{round_}-{n}")
        matches.append(BracketMatch(ids[-1], round_, pair))
    return ids


def _paired(ids: list[str], side: Callable[[str], Source]) -> list[tuple[Source, Source]]:
    """Neighbouring matches' winners (or losers) meeting: 1 with 2, 3 with 4..."""
    return [(side(ids[i]), side(ids[i + 1])) for i in range(0, len(ids), 2)]


def double_elimination(participants: Sequence[str]) -> Bracket:
    """Upper bracket as in single elimination; each upper loser drops into the lower bracket
    (in reverse order on alternate rounds, so early rematches are rare); the lower winner meets
    the upper winner in the grand final, and a reset is played only if the lower one wins it.
    Byes propagate through the lower bracket like any other side."""
    upper = single_elimination(participants)
    matches = list(upper.matches)
    rounds = max(m.round for m in matches)
    by_round = [[m.id for m in matches if m.round == r] for r in range(1, rounds + 1)]
    lower: list[str] = []  # the current lower round's match ids
    lr = 0
    if len(by_round[0]) >= 2:  # lower round 1: the first round's losers, paired
        lr = 1
        lower = _round(matches, "L", lr, _paired(by_round[0], Source.loser))
    for r in range(2, rounds + 1):
        drops = by_round[r - 1] if r % 2 else list(reversed(by_round[r - 1]))
        if lower:  # the lower survivors meet this upper round's losers
            lr += 1
            pairs = [
                (Source.winner(survivor), Source.loser(dropped))
                for survivor, dropped in zip(lower, drops, strict=True)
            ]
            lower = _round(matches, "L", lr, pairs)
        if len(lower) >= 2:  # then the survivors play each other
            lr += 1
            lower = _round(matches, "L", lr, _paired(lower, Source.winner))
    # With two participants there is no lower round: the upper final's loser is the finalist.
    lower_final = Source.winner(lower[0]) if lower else Source.loser(upper.final)
    gf_round = max(rounds, lr) + 1
    matches.append(BracketMatch("GF", gf_round, (Source.winner(upper.final), lower_final)))
    matches.append(
        BracketMatch("GF2", gf_round + 1, (Source.winner("GF"), Source.loser("GF")), reset_of="GF")
    )
    return Bracket(upper.participants, tuple(matches), "GF2")


def sides(bracket: Bracket, results: Results, match_id: str) -> tuple[Side, Side]:
    """Who plays ``match_id`` as far as the results say: a participant, ``BYE``, or, while an
    earlier match is undecided, ``PENDING``."""
    bracket.match(match_id)
    return states(bracket, results)[match_id].sides


def decided(
    bracket: Bracket, results: Results, match_id: str
) -> tuple[str | None, str | None] | None:
    """(winner, loser) of a match once it is decided (either may be ``BYE``), else None. A
    match with a bye on one side is decided without a result."""
    bracket.match(match_id)
    return states(bracket, results)[match_id].outcome


def playable(bracket: Bracket, results: Results) -> list[str]:
    """The matches to play now: both sides known participants, no result yet."""
    return [
        match_id
        for match_id, state in states(bracket, results).items()
        if state.outcome is None and all(side not in (BYE, PENDING) for side in state.sides)
    ]


def report(bracket: Bracket, results: Results, match_id: str, winner: str) -> dict[str, int]:
    """The results with ``winner`` winning ``match_id``, which must be playable."""
    if match_id not in playable(bracket, results):
        raise BracketError(f"match {match_id} is not ready to be reported")
    a, b = sides(bracket, results, match_id)
    if winner not in (a, b):
        raise BracketError(f"{winner!r} does not play match {match_id}")
    return {**results, match_id: 0 if winner == a else 1}


def forfeit_both(bracket: Bracket, results: Results, match_id: str) -> dict[str, int]:
    """The results with neither side of ``match_id`` (playable) having shown: both are out,
    and whoever they would have met advances with a bye. Refused for the matches that decide
    places (the final, the grand final and its reset, the third-place match): someone must
    win those, so an admin decides."""
    if match_id in (bracket.final, "GF", "3P"):
        raise BracketError(f"match {match_id} decides places: an admin names its winner")
    if match_id not in playable(bracket, results):
        raise BracketError(f"match {match_id} is not ready to be reported")
    return {**results, match_id: BOTH_FORFEITED}


def correct(
    bracket: Bracket, results: Results, match_id: str, winner: str
) -> tuple[dict[str, int], list[str]]:
    """An admin's correction: ``winner`` won ``match_id`` (already decided, perhaps long ago).
    Returns the new results and the matches reset: every later match whose sides are no longer
    the ones its result was reported for loses that result (to be played again), and so on
    downstream, and so does a result no longer needed (a reset the corrected grand final does
    not call for); matches whose sides did not change keep theirs."""
    before = states(bracket, results)
    if match_id not in results:
        raise BracketError(f"match {match_id} has no result to correct")
    a, b = before[match_id].sides
    if winner not in (a, b):
        raise BracketError(f"{winner!r} does not play match {match_id}")
    corrected = {**results, match_id: 0 if winner == a else 1}
    reset: list[str] = []
    while True:  # drop results whose sides changed, until none does
        after = states(bracket, corrected)
        stale = [
            m
            for m in corrected
            if m != match_id and (after[m].sides != before[m].sides or not after[m].played)
        ]
        if not stale:
            return corrected, reset
        for m in stale:
            del corrected[m]
            reset.append(m)


def complete(bracket: Bracket, results: Results) -> bool:
    """Every match decided (the ones with byes included)."""
    return all(state.outcome is not None for state in states(bracket, results).values())


def placements(bracket: Bracket, results: Results) -> list[tuple[int, list[str]]]:
    """Final places of a complete bracket, best first, as (place, participants sharing it):
    the winner and the finalist, then the third-place match if played, then everyone out in
    the same round (the same lower round in double elimination) shares a place range (its
    first place is given). A participant is out at its only loss (single elimination), at a
    loss in the lower bracket (double elimination), or at a double forfeit, which in the upper
    bracket places both with the lower round its loser would have dropped into."""
    by_match = states(bracket, results)
    if any(state.outcome is None for state in by_match.values()):
        raise BracketError("the bracket is not complete")
    groups: list[list[str | None]] = [[who] for who in by_match[bracket.final].outcome or ()]
    if "3P" in by_match:
        groups += [[who] for who in by_match["3P"].outcome or ()]
    lower = any(m.id.startswith("L") for m in bracket.matches)
    drops_into = {  # an upper match -> the lower round its loser plays next
        str(side.ref): m.round
        for m in bracket.matches
        if m.id.startswith("L")
        for side in m.sides
        if side.kind is From.LOSER
    }
    out_round: dict[str, int] = {}
    for match in bracket.matches:
        if match.id in ("GF", "GF2", "3P") or match.id == bracket.final:
            continue
        state = by_match[match.id]
        if results.get(match.id) == BOTH_FORFEITED:
            gone = [side for side in state.sides if side not in (BYE, PENDING)]
        elif not lower or match.id.startswith("L"):
            gone = [state.outcome[1]] if state.outcome and state.outcome[1] is not BYE else []
        else:
            continue  # an upper loser drops into the lower bracket
        round_ = match.round if not lower or match.id.startswith("L") else drops_into[match.id]
        for gone_one in gone:
            out_round[str(gone_one)] = round_
    for round_ in sorted(set(out_round.values()), reverse=True):
        groups.append([p for p in bracket.participants if out_round.get(p) == round_])
    places: list[tuple[int, list[str]]] = []
    placed: set[str] = set()
    for group in groups:
        sharing = [p for p in group if p is not None and p not in placed]
        if sharing:
            places.append((len(placed) + 1, sharing))
            placed.update(sharing)
    return places


def round_robin(participants: Sequence[str]) -> list[list[tuple[str, str]]]:
    """Every pair once, in rounds where nobody plays twice (the circle method): n - 1 rounds
    for an even n; for an odd n, n rounds in each of which one participant sits out. The first
    seed stays put and the others rotate; sides (home and away) differ by at most two for anyone."""
    if len(participants) < 2:
        raise ValueError("a round robin needs at least two participants")
    if len(set(participants)) != len(participants):
        raise ValueError("a participant appears twice")
    lines: list[str | None] = list(participants)
    if len(lines) % 2:
        lines.append(BYE)  # whoever meets it sits the round out
    n = len(lines)
    rounds = []
    for r in range(n - 1):
        pairs = []
        for i in range(n // 2):
            a, b = lines[i], lines[n - 1 - i]
            if a is BYE or b is BYE:
                continue
            # Berger tables: the fixed line alternates sides, the others keep their row's side
            pairs.append((b, a) if i == 0 and r % 2 else (a, b))
        rounds.append(pairs)
        lines = [lines[0], lines[-1], *lines[1:-1]]
    return rounds
