"""The matchmaker's core: one tick over a queue's waiting tickets proposes matches (pure).

Invariants:

- Tickets are served oldest first: each unmatched ticket, in order of ``waiting_since_s``, is
  the *anchor* of a search; a ticket put back after a failed ready check keeps its original
  time, so it is at the front again.
- The anchor's skill window (in TrueSkill mu) starts at ``window_start`` and widens with the
  time it has waited (``window_growth_per_s``, plus ``window_growth_per_s2`` times the wait
  squared, so rare players far from everyone are not left waiting), up to ``window_max``. Every player of
  a proposed lobby is within the window of the anchor, and the lobby's spread (highest minus
  lowest mu) is at most ``spread_max``, whatever the wait: TrueSkill quality alone would accept a
  wide lobby whose sigmas are large.
- With two players (1v1) the opponent is the candidate of best TrueSkill quality; ties break by
  age. With teams, among solo players the lobby is the run of players adjacent in mu that
  contains the anchor and has the smallest spread (with parties: the candidates closest in mu
  to the anchor), then the split whose favourite's predicted win probability is lowest. A party (a ticket of several players)
  is never split and never spans teams.
- A ticket appears in at most one proposal per tick. Nothing here reads a clock, draws a random
  number or touches a store: the shell passes the tickets and the time, and claims the
  proposals atomically (a ticket claimed elsewhere meanwhile makes its proposal fail there).

Complexity: tickets are kept sorted by mu; each anchor looks only at its window, so a tick over
n tickets costs about n log n plus the lobbies it forms.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .rating import Rating, RatingModel


@dataclass(frozen=True, slots=True)
class Member:
    player: str
    rating: Rating


@dataclass(frozen=True, slots=True)
class Ticket:
    """One player, or a party that plays together on one team."""

    id: str
    members: tuple[Member, ...]
    waiting_since_s: float

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a ticket has at least one player")

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def mu(self) -> float:
        return sum(m.rating.mu for m in self.members) / len(self.members)


@dataclass(frozen=True, slots=True)
class QueueRules:
    """How one queue matches; configured per queue (``cs2:5v5:eu``)."""

    team_size: int = 1
    teams: int = 2
    window_start: float = 2.0  # mu
    window_growth_per_s: float = 0.1
    window_growth_per_s2: float = 0.0  # widening faster the longer a ticket waits
    window_max: float = 12.0
    spread_max: float = 12.0  # the lobby's highest minus lowest mu, never exceeded
    quality_min: float = 0.0  # 1v1: refuse opponents below this TrueSkill quality

    def __post_init__(self) -> None:
        if self.team_size < 1 or self.teams != 2:
            raise ValueError("queues have two teams of at least one player")
        if not 0 < self.window_start <= self.window_max:
            raise ValueError("0 < window_start <= window_max")

    @property
    def lobby_size(self) -> int:
        return self.team_size * self.teams

    def window(self, waited_s: float) -> float:
        w = max(0.0, waited_s)
        grown = self.window_start + self.window_growth_per_s * w + self.window_growth_per_s2 * w * w
        return min(self.window_max, grown)


@dataclass(frozen=True, slots=True)
class Proposal:
    """A match to claim: the teams (tickets per team) and how fair it is."""

    teams: tuple[tuple[Ticket, ...], ...]
    quality: float
    favourite_win_probability: float
    spread: float
    tickets: frozenset[str] = field(default=frozenset())

    def players(self) -> list[list[str]]:
        return [[m.player for t in team for m in t.members] for team in self.teams]


def _ratings(tickets: Sequence[Ticket]) -> list[Rating]:
    return [m.rating for t in tickets for m in t.members]


def _spread(tickets: Sequence[Ticket]) -> float:
    mus = [m.rating.mu for t in tickets for m in t.members]
    return max(mus) - min(mus)


@functools.cache
def _combinations(n: int, k: int) -> list[tuple[int, ...]]:
    """Every k of the positions 1..n-1, in ``itertools.combinations`` order."""
    return list(itertools.combinations(range(1, n), k))


def best_split(
    tickets: Sequence[Ticket], team_size: int
) -> tuple[tuple[Ticket, ...], tuple[Ticket, ...]] | None:
    """The two teams of ``team_size`` players closest to an even game, parties kept whole.

    Every split has the same total variance, so the fairest is the one whose mu sums are
    closest; the first ticket stays on team A (each split once, not twice)."""
    sizes = [t.size for t in tickets]
    return _split(tickets, [t.mu * t.size for t in tickets], sizes, team_size)


def _split(
    tickets: Sequence[Ticket], weights: list[float], sizes: list[int], team_size: int
) -> tuple[tuple[Ticket, ...], tuple[Ticket, ...]] | None:
    total = sum(weights)
    rest = range(1, len(tickets))
    best: tuple[float, tuple[int, ...]] | None = None
    if all(size == 1 for size in sizes):  # the usual case: one team size, all in C loops
        k = team_size - 1
        sums = list(map(sum, itertools.combinations(weights[1:], k)))
        target = total / 2 - weights[0]
        gaps = list(map(abs, map(target.__sub__, sums)))  # C loops, no bytecode per split
        j = gaps.index(min(gaps))
        best = (2 * gaps[j], _combinations(len(tickets), k)[j])
    else:
        for count in range(0, team_size - sizes[0] + 1):
            for combo in itertools.combinations(rest, count):
                if sizes[0] + sum(sizes[i] for i in combo) != team_size:
                    continue
                diff = abs(2 * (weights[0] + sum(weights[i] for i in combo)) - total)
                if best is None or diff < best[0]:
                    best = (diff, combo)
    if best is None:
        return None
    in_a = (0, *best[1])  # ascending: combinations come in order
    chosen = set(in_a)
    return (
        tuple(tickets[i] for i in in_a),
        tuple(t for i, t in enumerate(tickets) if i not in chosen),
    )


def _propose(
    teams: tuple[tuple[Ticket, ...], ...], model: RatingModel, spread: float | None = None
) -> Proposal:
    a, b = (_ratings(team) for team in teams)
    p = model.win_probability(a, b)
    everyone = [t for team in teams for t in team]
    return Proposal(
        teams,
        model.quality([a, b]),
        max(p, 1 - p),
        _spread(everyone) if spread is None else spread,
        frozenset(t.id for t in everyone),
    )


class _Free:
    """Which positions of the mu-sorted tickets are still free, with the nearest free one on
    either side found in near-constant time (skip pointers with path compression)."""

    def __init__(self, n: int) -> None:
        self._right = list(range(n + 1))  # position n: past the end, always "free"
        self._left = list(range(n))  # a taken position points left; -1: nothing left of it

    def take(self, i: int) -> None:
        self._right[i] = i + 1
        self._left[i] = i - 1

    def free(self, i: int) -> bool:
        return self._right[i] == i

    def right_of(self, i: int) -> int:
        """The first free position >= i (``n`` when none)."""
        root = i
        while self._right[root] != root:
            root = self._right[root]
        while i < root:
            self._right[i], i = root, self._right[i]
        return root

    def left_of(self, i: int) -> int:
        """The last free position <= i (-1 when none)."""
        root = i
        while root >= 0 and self._left[root] != root:
            root = self._left[root]
        while i > root:
            self._left[i], i = root, self._left[i]
        return root


NEIGHBOURS_1V1 = 8  # free tickets looked at on each side of a 1v1 anchor


@dataclass(slots=True)
class _Pool:
    """The usable tickets sorted by mu, with what the search reads per position."""

    tickets: list[Ticket]
    mus: list[float]
    lows: list[float]  # lowest member mu
    highs: list[float]
    sizes: list[int]
    free: _Free

    @classmethod
    def of(cls, tickets: Sequence[Ticket]) -> _Pool:
        keyed = sorted(((t.mu, t.waiting_since_s, t.id), t) for t in tickets)
        ordered = [t for _, t in keyed]
        member_mus = [[m.rating.mu for m in t.members] for t in ordered]
        return cls(
            ordered,
            [key[0] for key, _ in keyed],
            [min(m) for m in member_mus],
            [max(m) for m in member_mus],
            [t.size for t in ordered],
            _Free(len(ordered)),
        )

    def nearest(self, here: int, window: float) -> Iterator[int]:
        """Free positions within ``window`` of position ``here``'s mu, nearest first."""
        mus, free = self.mus, self.free
        centre, n = mus[here], len(mus)
        left = free.left_of(here - 1)
        right = free.right_of(here + 1)
        while True:
            left_gap = centre - mus[left] if left >= 0 else math.inf
            right_gap = mus[right] - centre if right < n else math.inf
            if left_gap <= right_gap:
                if left_gap > window:
                    return
                yield left
                left = free.left_of(left - 1)
            else:
                if right_gap > window:
                    return
                yield right
                right = free.right_of(right + 1)


def tick(
    tickets: Sequence[Ticket], now_s: float, rules: QueueRules, model: RatingModel
) -> list[Proposal]:
    """The matches to propose from ``tickets`` at ``now_s`` (see the module docstring)."""
    pool = _Pool.of([t for t in tickets if t.size <= rules.team_size])
    position = {t.id: i for i, t in enumerate(pool.tickets)}
    proposals: list[Proposal] = []
    for anchor in sorted(pool.tickets, key=lambda t: (t.waiting_since_s, t.id)):
        here = position[anchor.id]
        if not pool.free.free(here):
            continue
        window = min(rules.window(now_s - anchor.waiting_since_s), rules.spread_max)
        if rules.team_size == 1:
            found = _duel(pool, here, window, rules, model)
        else:
            found = _lobby(pool, here, window, rules, model)
        if found is None:
            continue
        picked, proposal = found
        for i in picked:
            pool.free.take(i)
        proposals.append(proposal)
    return proposals


def _duel(
    pool: _Pool, here: int, window: float, rules: QueueRules, model: RatingModel
) -> tuple[list[int], Proposal] | None:
    """1v1: of the nearest free players, the one giving the best TrueSkill quality."""
    anchor = pool.tickets[here]
    mine = [anchor.members[0].rating]
    best: tuple[float, float, str, int] | None = None
    for i in itertools.islice(pool.nearest(here, window), 2 * NEIGHBOURS_1V1):
        other = pool.tickets[i]
        quality = model.quality([mine, [other.members[0].rating]])
        if quality < rules.quality_min:
            continue
        key = (-quality, other.waiting_since_s, other.id, i)
        if best is None or key[:3] < best[:3]:
            best = key
    if best is None:
        return None
    return [here, best[3]], _propose(((anchor,), (pool.tickets[best[3]],)), model)


LOOKS_MAX_PER_LOBBY = 4  # candidates looked at per lobby seat before giving up on an anchor


def _lobby(
    pool: _Pool, here: int, window: float, rules: QueueRules, model: RatingModel
) -> tuple[list[int], Proposal] | None:
    """The anchor plus the free tickets nearest to it in mu, filling the lobby exactly, with
    the lobby's spread within the window (and so within ``spread_max``)."""
    lobby = rules.lobby_size
    lows, highs, sizes = pool.lows, pool.highs, pool.sizes
    if sizes[here] == 1:
        block = _tightest_block(pool, here, window, lobby)
        proposal = None if block is None else _propose_lobby(pool, block, rules, model)
        if block is not None and proposal is not None:
            return block, proposal
    picked = [here]
    players = sizes[here]
    low, high = lows[here], highs[here]
    if high - low > window:
        return None
    for i in itertools.islice(pool.nearest(here, window), LOOKS_MAX_PER_LOBBY * lobby):
        if players + sizes[i] > lobby:
            continue
        new_low = lows[i] if lows[i] < low else low
        new_high = highs[i] if highs[i] > high else high
        if new_high - new_low > window:
            continue
        picked.append(i)
        players += sizes[i]
        low, high = new_low, new_high
        if players == lobby:
            break
    if players != lobby:
        return None
    proposal = _propose_lobby(pool, picked, rules, model)
    return None if proposal is None else (picked, proposal)


def _tightest_block(pool: _Pool, here: int, window: float, lobby: int) -> list[int] | None:
    """Of the runs of ``lobby`` free solo tickets adjacent in mu that contain ``here``, the one
    with the smallest spread within ``window``; None when the solos around cannot fill one
    (parties nearby: the caller falls back to the nearest-first search)."""
    free, sizes, mus = pool.free, pool.sizes, pool.mus
    left: list[int] = []
    i = free.left_of(here - 1)
    while len(left) < lobby - 1 and i >= 0 and mus[here] - mus[i] <= window and sizes[i] == 1:
        left.append(i)
        i = free.left_of(i - 1)
    right: list[int] = []
    i = free.right_of(here + 1)
    n = len(mus)
    while len(right) < lobby - 1 and i < n and mus[i] - mus[here] <= window and sizes[i] == 1:
        right.append(i)
        i = free.right_of(i + 1)
    best: tuple[float, int] | None = None
    for on_left in range(max(0, lobby - 1 - len(right)), min(len(left), lobby - 1) + 1):
        on_right = lobby - 1 - on_left
        low = mus[left[on_left - 1]] if on_left else mus[here]
        high = mus[right[on_right - 1]] if on_right else mus[here]
        if high - low <= window and (best is None or high - low < best[0]):
            best = (high - low, on_left)
    if best is None:
        return None
    on_left = best[1]
    return [here, *left[:on_left], *right[: lobby - 1 - on_left]]


def _propose_lobby(
    pool: _Pool, picked: list[int], rules: QueueRules, model: RatingModel
) -> Proposal | None:
    sizes = pool.sizes
    split = _split(
        [pool.tickets[i] for i in picked],
        [pool.mus[i] * sizes[i] for i in picked],
        [sizes[i] for i in picked],
        rules.team_size,
    )
    if split is None:  # the parties cannot make two equal teams
        return None
    spread = max(pool.highs[i] for i in picked) - min(pool.lows[i] for i in picked)
    return _propose(split, model, spread)
