"""The simulation's pure rules: hidden true skills, outcomes drawn from them, and the summary's
figures. The randomness comes in as a seeded :class:`random.Random`, so one seed gives one run
of choices (what the server does with them, and when, still depends on timing).

A player's true skill is drawn from the rating model's prior, N(25, (25/3)^2). A match between
two teams is won by the first with the probability the rating model itself gives:
Phi((sum of skills 1 - sum of skills 2) / (sqrt(players) * beta)). A map is then played out
round by round to 13 (CS2's MR12), the winner's rounds placed at random among the loser's,
so the live score a spectator follows ends at the result that was drawn.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

SKILL_MEAN: float = 25.0
SKILL_SD: float = 25.0 / 3
BETA: float = 25.0 / 6
ROUNDS_TO_WIN: int = 13


def true_skill(rng: random.Random) -> float:
    return rng.gauss(SKILL_MEAN, SKILL_SD)


def win_probability(first: Sequence[float], second: Sequence[float], beta: float = BETA) -> float:
    """The chance that the team of skills ``first`` beats the team of skills ``second``."""
    players = len(first) + len(second)
    margin = (sum(first) - sum(second)) / (math.sqrt(players) * beta)
    return 0.5 * (1.0 + math.erf(margin / math.sqrt(2.0)))


def draw_ranks(rng: random.Random, teams: Sequence[Sequence[float]]) -> list[int]:
    """Ranks (0 the winner) for a match between two teams of these skills."""
    if len(teams) != 2:
        raise ValueError("a simulated match has two teams")
    first_wins = rng.random() < win_probability(teams[0], teams[1])
    return [0, 1] if first_wins else [1, 0]


def rounds(rng: random.Random, ranks: Sequence[int]) -> Iterator[tuple[int, int]]:
    """The score after each round of a map that ends with ``ranks`` (the winner on 13)."""
    winner = ranks.index(0)
    lost = rng.randrange(ROUNDS_TO_WIN - 1)  # the loser's rounds, 0..11
    order = [winner] * (ROUNDS_TO_WIN - 1) + [1 - winner] * lost
    rng.shuffle(order)
    order.append(winner)  # the last round is the winner's
    score = [0, 0]
    for side in order:
        score[side] += 1
        yield score[0], score[1]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by the nearest-rank method; None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class RatingError:
    """How far the ratings (mu) are from the hidden true skills."""

    players: int
    rmse: float  # of mu - skill, in rating points
    rmse_before: float  # the same with every player at the prior's mean (before any match)
    rank_correlation: float | None  # Spearman's rho between mu and skill; None below 3 players


def rating_error(skills: Mapping[str, float], mus: Mapping[str, float]) -> RatingError:
    names = sorted(skills)
    if not names:
        return RatingError(0, 0.0, 0.0, None)
    diffs = [mus.get(n, SKILL_MEAN) - skills[n] for n in names]
    rmse = math.sqrt(sum(d * d for d in diffs) / len(names))
    before = math.sqrt(sum((SKILL_MEAN - skills[n]) ** 2 for n in names) / len(names))
    rho = None
    if len(names) >= 3:
        rho = _spearman([skills[n] for n in names], [mus.get(n, SKILL_MEAN) for n in names])
    return RatingError(len(names), rmse, before, rho)


def _ranks_of(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    rx, ry = _ranks_of(xs), _ranks_of(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return cov / math.sqrt(vx * vy)
