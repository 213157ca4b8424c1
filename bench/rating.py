"""Rating benchmark: one TrueSkill update, matchmaking.rating next to the ``trueskill`` package.

Both rate the same seeded games (5v5 with a winner, the issue's figure; also 1v1 and an
8-player free-for-all). Calls are timed in batches of ``--batch`` games; a batch's time over
its size is one sample, and the figures are the medians of the samples, in microseconds per
update. Both run in the same process, one after the other, batch by batch interleaved, so a
noisy machine slows both alike. The issue asks for a 5v5 update well under 1 ms.

The last line printed is one JSON object with the headline figures.

    python bench/rating.py            # 400 batches of 50 games per figure
    python bench/rating.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import trueskill

from matchmaking.rating import Rating, RatingModel

Game = tuple[list[list[tuple[float, float]]], list[int]]


def _games(rng: random.Random, sizes: Sequence[int], count: int) -> list[Game]:
    games: list[Game] = []
    for _ in range(count):
        teams = [
            [(rng.uniform(10, 40), rng.uniform(1.0, 8.33)) for _ in range(size)] for size in sizes
        ]
        ranks = list(range(len(sizes)))
        rng.shuffle(ranks)
        games.append((teams, ranks))
    return games


def _sample_us(run: Callable[[int], None], offset: int, batch: int) -> float:
    start = time.perf_counter_ns()
    run(offset)
    return (time.perf_counter_ns() - start) / batch / 1000


def _measure(games: list[Game], batches: int, batch: int) -> tuple[float, float]:
    model = RatingModel()
    env = trueskill.TrueSkill()
    ours = [
        ([[Rating(mu, s) for mu, s in team] for team in teams], ranks) for teams, ranks in games
    ]
    theirs = [
        ([[trueskill.Rating(mu, s) for mu, s in team] for team in teams], ranks)
        for teams, ranks in games
    ]

    def run_ours(offset: int) -> None:
        for teams, ranks in ours[offset : offset + batch]:
            model.rate(teams, ranks)

    def run_theirs(offset: int) -> None:
        for teams, ranks in theirs[offset : offset + batch]:
            env.rate(teams, ranks)

    # Interleave: a burst of load on the machine hits both.
    own_samples: list[float] = []
    package_samples: list[float] = []
    for b in range(batches):
        offset = b * batch % len(games)
        own_samples.append(_sample_us(run_ours, offset, batch))
        package_samples.append(_sample_us(run_theirs, offset, batch))
    return statistics.median(own_samples), statistics.median(package_samples)


def _check_agreement(games: list[Game]) -> float:
    """The largest difference of any mu or sigma between the two, over the benchmark's games."""
    model = RatingModel()
    env = trueskill.TrueSkill()
    worst = 0.0
    for teams, ranks in games:
        ours = model.rate([[Rating(mu, s) for mu, s in team] for team in teams], ranks)
        theirs = env.rate([[trueskill.Rating(mu, s) for mu, s in team] for team in teams], ranks)
        for a, b in zip(ours, theirs, strict=True):
            for x, y in zip(a, b, strict=True):
                worst = max(worst, abs(x.mu - y.mu), abs(x.sigma - y.sigma))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches: a few seconds")
    parser.add_argument("--batches", type=int, default=None, help="batches per figure")
    parser.add_argument("--batch", type=int, default=50, help="games per batch")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    batches = args.batches or (40 if args.quick else 400)
    batch = args.batch
    rng = random.Random(args.seed)
    shapes = {"5v5": [5, 5], "1v1": [1, 1], "ffa8": [1] * 8}
    summary: dict[str, Any] = {}
    for name, sizes in shapes.items():
        games = _games(rng, sizes, batch * 20)
        own_us, package_us = _measure(games, batches, batch)
        worst = _check_agreement(games)
        print(
            f"{name:>5}: own {own_us:8.1f} us/update   trueskill {package_us:8.1f} us/update   "
            f"speedup {package_us / own_us:5.1f}x   max |difference| {worst:.1e}",
        )
        summary[f"own_{name}_update_us"] = round(own_us, 2)
        summary[f"trueskill_{name}_update_us"] = round(package_us, 2)
        summary[f"speedup_{name}"] = round(package_us / own_us, 1)
        summary[f"max_abs_difference_{name}"] = worst
    headline = {
        "own_5v5_update_us": summary.pop("own_5v5_update_us"),
        "trueskill_5v5_update_us": summary.pop("trueskill_5v5_update_us"),
        "speedup": summary.pop("speedup_5v5"),
    }
    headline.update(summary)
    headline["batches"] = batches
    headline["batch"] = batch
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
