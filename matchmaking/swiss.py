"""Swiss rounds (pure): pair players of equal score, never twice, and rank them by Buchholz.

A Swiss tournament plays a fixed number of rounds (by default ``ceil(log2 n)``, enough for one
unbeaten player to remain); each round pairs participants of the same score where it can,
top of the table first, and nobody meets the same opponent twice. With an odd number, one
participant sits the round out with a bye, worth a win: the lowest-ranked one who has not had
a bye yet (so nobody gets two while someone has none).

The pairings of a round are made once, when the previous round is complete, and kept: a
result corrected later changes the standings, never a round already paired (the practice of
chess arbiters: published pairings stand).

Invariants (tested for every size from 2 to 128):

- no pair of participants meets twice;
- in every round each participant plays exactly once or has the bye, and at most one has it;
- nobody has a second bye while another participant has had none;
- up to :func:`rounds_max` rounds are always paired. For ``floor(n / 2)`` rounds this is a
  theorem: before round ``k`` each of the ``m`` participants to pair (``m`` is ``n`` or
  ``n - 1``, even) has met at most ``k - 1`` of the others, so still has ``m - k >= m / 2``
  possible opponents; by Dirac's theorem the graph of allowed pairs then has a Hamiltonian
  cycle, hence a perfect matching, and the swaps of :func:`_pair` always complete one (two
  unpaired who may not meet have at least ``m`` allowed pairs into the ``m / 2 - 1`` pairs made,
  so some pair ``x``-``y`` has ``u``-``x`` and ``v``-``y`` allowed). Beyond it
  (the default ``ceil(log2 n)`` rounds of fields under 8) the tests show it for every size.

Standings: a win is 1 point, a bye 1 point, a loss 0; ties broken by Buchholz (the sum of the
opponents' points; a bye counts as an opponent with 0), then by the opponents' wins against
others (Sonneborn-Berger: the points of the opponents beaten), then by seed.

No clock, no store, no randomness: the same results always give the same pairings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

PAIRING_STEPS_MAX = 20_000  # the rank-order search's budget, then the matching is completed
EXHAUSTIVE_SEARCH_PARTICIPANTS_MAX = 12  # beyond the Dirac bound, only small fields


class SwissError(Exception):
    """A round cannot be paired (more rounds than the participants allow), or a result does
    not fit the round's pairings."""


@dataclass(frozen=True, slots=True)
class Pairing:
    id: str  # "S<round>-<n>"
    round: int
    sides: tuple[str, str]


@dataclass(frozen=True, slots=True)
class SwissRound:
    number: int
    pairings: tuple[Pairing, ...]
    bye: str | None = None


def default_rounds(participants: int) -> int:
    """``ceil(log2 n)``: after that many rounds at most one participant is unbeaten."""
    return max(1, math.ceil(math.log2(participants)))


def rounds_max(participants: int) -> int:
    """The most rounds a Swiss of ``participants`` may have (see the module's invariants)."""
    return max(default_rounds(participants), participants // 2)


@dataclass(frozen=True, slots=True)
class Standing:
    participant: str
    points: int
    buchholz: int
    sonneborn_berger: int
    wins: int
    byes: int


Results = Mapping[str, int]  # pairing id -> the winning side (0 or 1), or 2: both forfeited


def standings(
    participants: Sequence[str], rounds: Sequence[SwissRound], results: Results
) -> list[Standing]:
    """Everyone's record after the reported results, best first (points, Buchholz,
    Sonneborn-Berger, then seed: ``participants`` is in seed order)."""
    points = dict.fromkeys(participants, 0)
    wins = dict.fromkeys(participants, 0)
    byes = dict.fromkeys(participants, 0)
    met: dict[str, list[str]] = {p: [] for p in participants}
    beaten: dict[str, list[str]] = {p: [] for p in participants}
    for round_ in rounds:
        if round_.bye is not None:
            points[round_.bye] += 1
            byes[round_.bye] += 1
        for pairing in round_.pairings:
            a, b = pairing.sides
            met[a].append(b)
            met[b].append(a)
            result = results.get(pairing.id)
            if result in (0, 1):  # else not played yet, or both forfeited: no points
                winner, loser = (a, b) if result == 0 else (b, a)
                points[winner] += 1
                wins[winner] += 1
                beaten[winner].append(loser)
    table = [
        Standing(
            p,
            points[p],
            sum(points[o] for o in met[p]),
            sum(points[o] for o in beaten[p]),
            wins[p],
            byes[p],
        )
        for p in participants
    ]
    seed = {p: i for i, p in enumerate(participants)}
    table.sort(key=lambda s: (-s.points, -s.buchholz, -s.sonneborn_berger, seed[s.participant]))
    return table


def pair_round(
    participants: Sequence[str], rounds: Sequence[SwissRound], results: Results
) -> SwissRound:
    """The next round's pairings: by the current standings, top first, each with the nearest
    participant below who is not a past opponent (backtracking when that leaves someone
    without one), and the bye to the lowest-ranked participant with the fewest byes."""
    number = len(rounds) + 1
    for round_ in rounds:
        for pairing in round_.pairings:
            if pairing.id not in results:
                raise SwissError(f"round {round_.number} is not complete: {pairing.id}")
    now = standings(participants, rounds, results)
    table = [s.participant for s in now]
    played = {frozenset(p.sides) for round_ in rounds for p in round_.pairings}
    byes = {s.participant: s.byes for s in now}
    candidates: list[str | None] = [None]
    if len(table) % 2:
        fewest = min(byes.values())
        candidates = [p for p in reversed(table) if byes[p] == fewest]
    for bye in candidates:
        rest = [p for p in table if p != bye]
        pairs = _pair(rest, played)
        if pairs is not None:
            pairings = tuple(
                Pairing(f"S{number}-{n}", number, pair) for n, pair in enumerate(pairs, 1)
            )
            return SwissRound(number, pairings, bye)
    raise SwissError(f"round {number} cannot be paired without a rematch")


def _pair(ranked: list[str], played: set[frozenset[str]]) -> list[tuple[str, str]] | None:
    """Pairs of ``ranked`` (best first) with no pair in ``played``, or None when none exists.

    First the search of :func:`_search` (each takes the nearest allowed one below it). When its
    step budget runs out, a greedy matching in rank order is completed by swaps: two unpaired
    ``u``, ``v`` that may not meet take a pair ``x``-``y`` with ``u``-``x`` and ``v``-``y``
    allowed. Under the Dirac condition such a pair always exists (the proof of the module's
    invariant), so the matching grows by one per swap; without it, small fields are searched
    exhaustively."""

    def may_meet(i: int, j: int) -> bool:
        return frozenset((ranked[i], ranked[j])) not in played

    pairs = _search(len(ranked), may_meet, PAIRING_STEPS_MAX)
    if pairs is None:
        allowed = _allowed(ranked, played)
        pairs = _swapped(allowed)
        if pairs is None and len(ranked) <= EXHAUSTIVE_SEARCH_PARTICIPANTS_MAX:
            pairs = _search(len(ranked), lambda i, j: allowed[i][j], None)
    if pairs is None:
        return None
    return [(ranked[i], ranked[j]) for i, j in sorted((min(p), max(p)) for p in pairs)]


def _allowed(ranked: list[str], played: set[frozenset[str]]) -> list[list[bool]]:
    n = len(ranked)
    return [
        [i != j and frozenset((ranked[i], ranked[j])) not in played for j in range(n)]
        for i in range(n)
    ]


def _search(
    n: int, may_meet: Callable[[int, int], bool], steps_max: int | None
) -> list[tuple[int, int]] | None:
    """Pairs of the ranks ``0..n-1``, depth first: the first unpaired takes the nearest one
    below it it may meet; on a dead end, the last choice moves on. None when no pairing
    exists or ``steps_max`` runs out."""
    paired = [False] * n
    stack: list[tuple[int, int]] = []  # (top, partner) choices made
    steps = 0
    top, start = 0, 0  # start: the first partner to try (0: the one right below top)
    while True:
        while top < n and paired[top]:
            top += 1
        if top == n:
            return stack
        partner = next(
            (j for j in range(max(start, top + 1), n) if not paired[j] and may_meet(top, j)),
            None,
        )
        steps += 1
        if steps_max is not None and steps > steps_max:
            return None
        if partner is not None:
            paired[top] = paired[partner] = True
            stack.append((top, partner))
            top, start = top + 1, 0
            continue
        if not stack:
            return None
        top, last = stack.pop()  # undo the last choice and try its next partner
        paired[top] = paired[last] = False
        start = last + 1


def _swapped(allowed: list[list[bool]]) -> list[tuple[int, int]] | None:
    n = len(allowed)
    mate: list[int | None] = [None] * n
    for i in range(n):  # greedy, in rank order
        if mate[i] is None:
            j = next((j for j in range(i + 1, n) if mate[j] is None and allowed[i][j]), None)
            if j is not None:
                mate[i], mate[j] = j, i
    while True:
        free = [i for i in range(n) if mate[i] is None]
        if not free:
            return [(i, m) for i, m in enumerate(mate) if m is not None and i < m]
        if not _grow(free, mate, allowed):
            return None


def _grow(free: list[int], mate: list[int | None], allowed: list[list[bool]]) -> bool:
    """Pair two of the ``free`` directly or by one swap; False when no two of them can be."""
    for a in range(len(free)):
        for b in range(a + 1, len(free)):
            u, v = free[a], free[b]
            if allowed[u][v]:
                mate[u], mate[v] = v, u
                return True
            for x, y in enumerate(mate):
                if y is None or x > y:
                    continue
                for p, q in ((x, y), (y, x)):
                    if allowed[u][p] and allowed[v][q]:
                        mate[u], mate[p], mate[v], mate[q] = p, u, q, v
                        return True
    return False


def report(
    rounds: Sequence[SwissRound], results: Results, pairing_id: str, winner: str
) -> dict[str, int]:
    """The results with ``winner`` winning ``pairing_id`` (a pairing without a result)."""
    pairing = find(rounds, pairing_id)
    if pairing_id in results:
        raise SwissError(f"{pairing_id} has a result already")
    if winner not in pairing.sides:
        raise SwissError(f"{winner!r} does not play {pairing_id}")
    return {**results, pairing_id: pairing.sides.index(winner)}


def correct(
    rounds: Sequence[SwissRound], results: Results, pairing_id: str, winner: str
) -> dict[str, int]:
    """An admin's correction of a reported result: only the standings change (later rounds
    stay as they were paired)."""
    pairing = find(rounds, pairing_id)
    if pairing_id not in results:
        raise SwissError(f"{pairing_id} has no result to correct")
    if winner not in pairing.sides:
        raise SwissError(f"{winner!r} does not play {pairing_id}")
    return {**results, pairing_id: pairing.sides.index(winner)}


def find(rounds: Sequence[SwissRound], pairing_id: str) -> Pairing:
    """The pairing ``S<round>-<n>``, found by its numbers."""
    round_text, _, n_text = pairing_id.removeprefix("S").partition("-")
    if round_text.isdigit() and n_text.isdigit():
        number, n = int(round_text), int(n_text)
        if 1 <= number <= len(rounds) and 1 <= n <= len(rounds[number - 1].pairings):
            pairing = rounds[number - 1].pairings[n - 1]
            if pairing.id == pairing_id:
                return pairing
    raise SwissError(f"no pairing {pairing_id!r}")
