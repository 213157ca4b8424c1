"""Matchmaker benchmark: a seeded simulation through the real matchmaker core, next to a naive
first-come-first-served matcher on the same arrivals.

Players arrive as a Poisson process (``--rate-1v1``, ``--rate-5v5`` per second) with ratings
mu ~ N(25, 6) and sigma ~ U(1.5, 4). Every second (the default tick) the matcher sees the
waiting tickets and the time; matched players leave the pool. For each queue it prints, for
ours and for the naive matcher: wait p50 / p95 / max (players still waiting at the end count
with their wait so far), mean and p10 TrueSkill match quality, the favourite's mean predicted
win probability and the mean lobby spread (highest minus lowest mu). Then the time of one tick
over pools of 1,000, 10,000 and 100,000 tickets (5v5 rules; waits spread over a minute;
median of ``--repeat`` runs), next to the naive matcher's tick on the same pools.

The naive matcher takes the oldest tickets in arrival order, as many as a lobby holds, and
splits them alternately. It never waits, so its waits are the floor and its fairness the
ceiling of what ignoring skill costs.

    python bench/matchmaker.py            # an hour of simulated arrivals per queue
    python bench/matchmaker.py --quick    # ten minutes, smaller pools; under a minute

The last line printed is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matchmaking.matcher import Member, Proposal, QueueRules, Ticket, tick
from matchmaking.queues import parse_queues
from matchmaking.rating import Rating, RatingModel

MODEL = RatingModel()
ROOT = Path(__file__).resolve().parent.parent
QUEUES = parse_queues((ROOT / "leetgaming" / "queues.toml").read_text())
RULES = {"1v1": QUEUES["cs2:1v1:eu"].rules, "5v5": QUEUES["cs2:5v5:eu"].rules}  # the defaults
TICK_S = 1.0

Matcher = Callable[[Sequence[Ticket], float, QueueRules], list[Proposal]]


def ours(tickets: Sequence[Ticket], now_s: float, rules: QueueRules) -> list[Proposal]:
    return tick(tickets, now_s, rules, MODEL)


def naive(tickets: Sequence[Ticket], now_s: float, rules: QueueRules) -> list[Proposal]:
    """First come, first served: the oldest ``lobby`` tickets, split alternately."""
    queue = sorted(tickets, key=lambda t: t.waiting_since_s)
    lobby = rules.lobby_size
    proposals = []
    for start in range(0, len(queue) - lobby + 1, lobby):
        group = queue[start : start + lobby]
        teams = (tuple(group[0::2]), tuple(group[1::2]))
        a = [m.rating for t in teams[0] for m in t.members]
        b = [m.rating for t in teams[1] for m in t.members]
        p = MODEL.win_probability(a, b)
        mus = [r.mu for r in a + b]
        proposals.append(
            Proposal(
                teams,
                MODEL.quality([a, b]),
                max(p, 1 - p),
                max(mus) - min(mus),
                frozenset(t.id for t in group),
            )
        )
    return proposals


def player(rng: random.Random, name: str, since: float) -> Ticket:
    rating = Rating(rng.gauss(25.0, 6.0), rng.uniform(1.5, 4.0))
    return Ticket(name, (Member(name, rating),), since)


@dataclass
class SimResult:
    waits: list[float] = field(default_factory=list)
    qualities: list[float] = field(default_factory=list)
    favourites: list[float] = field(default_factory=list)
    spreads: list[float] = field(default_factory=list)
    still_waiting: int = 0
    tick_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        waits = sorted(self.waits)
        q = sorted(self.qualities)
        return {
            "wait_p50_s": percentile(waits, 50),
            "wait_p95_s": percentile(waits, 95),
            "wait_max_s": waits[-1] if waits else math.nan,
            "quality_mean": statistics.fmean(q) if q else math.nan,
            "quality_p10": percentile(q, 10),
            "favourite_win_prob": statistics.fmean(self.favourites)
            if self.favourites
            else math.nan,
            "spread_mean": statistics.fmean(self.spreads) if self.spreads else math.nan,
            "matches": len(self.qualities),
            "still_waiting": self.still_waiting,
            "tick_ms_p99": percentile(sorted(self.tick_ms), 99),
        }


def percentile(ordered: Sequence[float], pct: float) -> float:
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def arrivals(rate_per_s: float, seconds: float, seed: int) -> list[Ticket]:
    """Poisson arrivals over ``seconds`` (each ticket's ``waiting_since_s`` is its arrival),
    with ratings mu ~ N(25, 6), sigma ~ U(1.5, 4); the same for the same seed."""
    rng = random.Random(seed)
    tickets: list[Ticket] = []
    at = rng.expovariate(rate_per_s)
    while at <= math.ceil(seconds / TICK_S) * TICK_S:
        tickets.append(player(rng, f"p{len(tickets) + 1}", at))
        at += rng.expovariate(rate_per_s)
    return tickets


def simulate(
    matcher: Matcher, rules: QueueRules, rate_per_s: float, seconds: float, seed: int
) -> SimResult:
    return simulate_arrivals(matcher, rules, arrivals(rate_per_s, seconds, seed), seconds)


def simulate_arrivals(
    matcher: Matcher, rules: QueueRules, coming: Sequence[Ticket], seconds: float
) -> SimResult:
    """Tick every ``TICK_S`` over the waiting pool, the way the matchmaker's loop does."""
    result = SimResult()
    pool: dict[str, Ticket] = {}
    upcoming = list(coming)
    upcoming.reverse()
    now = 0.0
    while now < seconds:
        now += TICK_S
        while upcoming and upcoming[-1].waiting_since_s <= now:
            ticket = upcoming.pop()
            pool[ticket.id] = ticket
        started = time.perf_counter()
        proposals = matcher(list(pool.values()), now, rules)
        result.tick_ms.append((time.perf_counter() - started) * 1000)
        for proposal in proposals:
            for ticket_id in proposal.tickets:
                ticket = pool.pop(ticket_id)
                result.waits.extend([now - ticket.waiting_since_s] * ticket.size)
            result.qualities.append(proposal.quality)
            result.favourites.append(proposal.favourite_win_probability)
            result.spreads.append(proposal.spread)
    # Honest tails: whoever is still waiting counts with the wait so far.
    result.still_waiting = len(pool)
    result.waits.extend(now - t.waiting_since_s for t in pool.values())
    return result


def tick_time(matcher: Matcher, size: int, repeat: int, seed: int) -> float:
    rng = random.Random(seed)
    pool = [player(rng, f"p{i}", rng.uniform(0, 60)) for i in range(size)]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        matcher(pool, 60.0, RULES["5v5"])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    parser.add_argument("--seconds", type=float, help="simulated seconds per queue")
    parser.add_argument("--rate-1v1", type=float, default=0.5, help="arrivals/s (0.5)")
    parser.add_argument("--rate-5v5", type=float, default=2.0, help="arrivals/s (2)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, help="tick timings per pool size (median)")
    parser.add_argument(
        "--sizes", default="1000,10000,100000", help="pool sizes to time a tick over"
    )
    parser.add_argument(
        "--e2e-seconds", type=float, help="end to end run with bots (240; quick 30; 0: none)"
    )
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    seconds = args.seconds or (600.0 if args.quick else 3600.0)
    repeat = args.repeat or (3 if args.quick else 5)
    sizes = [int(size) for size in args.sizes.split(",")]

    figures: dict[str, object] = {}
    print(f"simulation: {seconds:.0f} s of arrivals per queue, tick {TICK_S} s, seed {args.seed}")
    for mode, rate in (("1v1", args.rate_1v1), ("5v5", args.rate_5v5)):
        rules = RULES[mode]
        for name, matcher in (("ours", ours), ("naive", naive)):
            s = simulate(matcher, rules, rate, seconds, args.seed).summary()
            print(
                f"  {mode} {rate}/s {name:>5}: wait p50 {s['wait_p50_s']:.1f} s, "
                f"p95 {s['wait_p95_s']:.1f} s, max {s['wait_max_s']:.1f} s; "
                f"quality mean {s['quality_mean']:.3f}, p10 {s['quality_p10']:.3f}; "
                f"favourite {s['favourite_win_prob']:.3f}; spread {s['spread_mean']:.2f}; "
                f"{s['matches']} matches, {s['still_waiting']} still waiting; "
                f"tick p99 {s['tick_ms_p99']:.2f} ms"
            )
            prefix = "" if name == "ours" else "naive_"
            figures[f"{prefix}wait_p50_s_{mode}"] = round(s["wait_p50_s"], 2)
            figures[f"{prefix}wait_p95_s_{mode}"] = round(s["wait_p95_s"], 2)
            figures[f"{prefix}wait_max_s_{mode}"] = round(s["wait_max_s"], 2)
            figures[f"{prefix}quality_mean_{mode}"] = round(s["quality_mean"], 4)
            figures[f"{prefix}quality_p10_{mode}"] = round(s["quality_p10"], 4)
            figures[f"{prefix}favourite_win_prob_{mode}"] = round(s["favourite_win_prob"], 4)
            figures[f"{prefix}spread_mean_{mode}"] = round(s["spread_mean"], 3)
    print(f"one tick over a pool (5v5 rules, median of {repeat}):")
    for size in sizes:
        size_repeat = 1 if args.quick and size >= 100_000 else repeat
        ours_ms = tick_time(ours, size, size_repeat, args.seed)
        naive_ms = tick_time(naive, size, size_repeat, args.seed)
        print(
            f"  {size:>7} tickets: ours {ours_ms:.1f} ms, naive {naive_ms:.1f} ms "
            f"(x{ours_ms / naive_ms:.1f})"
        )
        figures[f"tick_ms_{size}"] = round(ours_ms, 2)
        figures[f"naive_tick_ms_{size}"] = round(naive_ms, 2)
    figures["simulated_s"] = seconds
    e2e_seconds = (
        args.e2e_seconds if args.e2e_seconds is not None else (30.0 if args.quick else 240.0)
    )
    if e2e_seconds > 0:
        figures |= end_to_end(args, e2e_seconds)
    print(json.dumps(figures, sort_keys=True))


def end_to_end(args: argparse.Namespace, seconds: float) -> dict[str, object]:
    """Bots over real websockets (two processes, PostgreSQL, Redis) next to the core
    simulation of the same arrivals."""
    from matchmaker_bots import run_bots

    run = f"{time.time_ns() % 10**8:x}"
    schedules = {}
    for mode, rate in (("1v1", args.rate_1v1), ("5v5", args.rate_5v5)):
        tickets = [
            Ticket(
                f"{run}-{mode}-{t.id}",
                (Member(f"bot-{run}-{mode}-{t.id}", t.members[0].rating),),
                t.waiting_since_s,
            )
            for t in arrivals(rate, seconds, args.seed)
            if t.waiting_since_s < seconds
        ]
        schedules[mode] = (f"cs2:{mode}:eu", tickets)
    bots = sum(len(t) for _, t in schedules.values())
    print(
        f"end to end: {bots} bot players over {seconds:.0f} s, 2 serve processes, PostgreSQL, "
        f"Redis, one bot game server; next to the core simulation of the same arrivals"
    )
    results, server = asyncio.run(run_bots(args.postgres_url, args.redis_url, schedules, seconds))
    figures: dict[str, object] = {"e2e_bots": bots, "e2e_seconds": seconds}
    for mode, result in results.items():
        waits = sorted(result.waits)
        sim = simulate_arrivals(ours, RULES[mode], schedules[mode][1], seconds).summary()
        p50, p95 = percentile(waits, 50), percentile(waits, 95)
        top = waits[-1] if waits else math.nan
        print(
            f"  {mode}: {len(schedules[mode][1])} bots, wait p50 {p50:.1f} s, p95 {p95:.1f} s, "
            f"max {top:.1f} s; {result.matched} matched, {result.still_waiting} still waiting, "
            f"{len(result.failures)} failed | core alone: p50 {sim['wait_p50_s']:.1f} s, "
            f"p95 {sim['wait_p95_s']:.1f} s, max {sim['wait_max_s']:.1f} s"
        )
        print(f"    events heard: {dict(sorted(result.events.items()))}")
        for failure in result.failures[:5]:
            print(f"    failed: {failure}")
        figures[f"e2e_wait_p50_s_{mode}"] = round(p50, 2)
        figures[f"e2e_wait_p95_s_{mode}"] = round(p95, 2)
        figures[f"e2e_wait_max_s_{mode}"] = round(top, 2)
        figures[f"e2e_failed_{mode}"] = len(result.failures)
        figures[f"e2e_core_wait_p95_s_{mode}"] = round(sim["wait_p95_s"], 2)
    print(f"  game server: {server['results']} results reported")
    figures["e2e_results_reported"] = server["results"]
    return figures


if __name__ == "__main__":
    main()
