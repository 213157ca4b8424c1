"""Bank nemesis benchmark: money moved through the REST API of two serve processes on
PostgreSQL and a Redis of its own, and matches queued, accepted, played and rated over their
websockets, while a seeded fault schedule SIGKILLs and SIGSTOPs the processes, kills Redis and
terminates PostgreSQL backends (:mod:`leetgaming.nemesis`, :mod:`leetgaming.nemesis_matches`);
then the ledger and the matches are checked against what every player and server was told.

The reference, measured in the same invocation, is the same workload with no faults: its
acknowledged operations per second show what the faults cost (retries, a 60 s wait for the
idempotency claim a killed process held, restarts).

    python bench/nemesis.py                # 10 minutes of faults (and a 1-minute reference)
    python bench/nemesis.py --quick        # a 1-minute run (and a 15 s reference)

It uses the PostgreSQL server at ``LEETGAMING_TEST_DATABASE_URL`` (default 127.0.0.1:5432),
creating and dropping a database of its own there, and runs its own ``redis-server``. The last
line printed is one JSON object: ``faults_injected``, ``operations_acknowledged``,
``operations_lost``, ``operations_applied_twice``, ``reconciliation_clean``, the matches'
``matches_finished``, ``results_lost``, ``players_in_two_matches``, ``tickets_in_two_matches``,
``ratings_applied_twice``, ``players_resynced`` (of ``queuers``) and the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from leetgaming import nemesis

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 1-minute run")
    parser.add_argument("--minutes", type=float, help="the faulted run's length")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--players", type=int, default=12)
    args = parser.parse_args()
    minutes = args.minutes or (1.0 if args.quick else 10.0)
    postgres = os.environ.get("LEETGAMING_TEST_DATABASE_URL", DEFAULT_POSTGRES)

    def options(minutes: float, every_s: float) -> nemesis.Options:
        return nemesis.Options(
            minutes=minutes,
            seed=args.seed,
            postgres_url=postgres,
            players=args.players,
            fault_every_s=every_s,
        )

    def say(line: str) -> None:
        print(f"  {line}", file=sys.stderr, flush=True)

    reference_minutes = 0.25 if args.quick else 1.0
    print(f"reference: {reference_minutes} min, no faults", flush=True)
    reference = asyncio.run(nemesis.run(options(reference_minutes, 0.0), say))
    print(f"faulted: {minutes} min, seed {args.seed}, a fault every 3 s on average", flush=True)
    faulted = asyncio.run(nemesis.run(options(minutes, 3.0), say))

    def rate(o: nemesis.Outcome, minutes: float) -> float:
        return o.operations_acknowledged / (minutes * 60)

    matches = faulted.matches.to_json()
    figures = faulted.to_json() | {
        "matches_finished": matches["matches_finished"],
        "results_acknowledged": matches["results_acknowledged"],
        "results_lost": matches["results_lost"],
        "players_in_two_matches": matches["players_in_two_matches"],
        "tickets_in_two_matches": matches["tickets_in_two_matches"],
        "ratings_applied_twice": matches["ratings_applied_twice"],
        "players_resynced": matches["players_resynced"],
        "queuers": matches["players"],
        "matches_per_min": round(matches["matches_finished"] / minutes, 1),
        "reference_matches_per_min": round(
            reference.matches.matches_finished / reference_minutes, 1
        ),
        "minutes": minutes,
        "seed": args.seed,
        "operations_per_s": round(rate(faulted, minutes), 1),
        "reference_operations_per_s": round(rate(reference, reference_minutes), 1),
        "reference_clean": reference.ok,
    }
    figures["throughput_ratio"] = round(
        figures["operations_per_s"] / max(figures["reference_operations_per_s"], 1e-9), 3
    )
    for name in (
        "faults_injected",
        "faults_by_kind",
        "operations_acknowledged",
        "operations_refused",
        "operations_retried",
        "operations_lost",
        "operations_applied_twice",
        "reconciliation_clean",
        "operations_per_s",
        "reference_operations_per_s",
        "throughput_ratio",
        "restarts_failed",
        "matches_finished",
        "matches_per_min",
        "reference_matches_per_min",
        "results_lost",
        "players_in_two_matches",
        "tickets_in_two_matches",
        "ratings_applied_twice",
        "players_resynced",
    ):
        print(f"{name:28} {figures[name]}")
    if faulted.problems or faulted.matches.problems:
        print("problems:", *faulted.problems[:20], *faulted.matches.problems[:20], sep="\n  ")
    print(json.dumps(figures, sort_keys=True))
    if not (faulted.ok and reference.ok):
        sys.exit(1)


if __name__ == "__main__":
    main()
