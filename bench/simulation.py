"""The simulation as a measurement: ``leetgaming simulate`` against ``leetgaming serve`` with
two workers on PostgreSQL (a fresh database) and Redis (a fresh key prefix), card payments
through localstripe, all on 127.0.0.1.

Each run: ``--players`` bot players with hidden true skills deposit by card, queue for
``cs2:1v1:eu`` (a mean pause of 3 s between matches), accept their ready checks (2 % decline)
and enter the 8-player tournaments an admin bot opens every 30 s; ``--servers`` bot game
servers host the matches (rounds of 0.1 s) and report signed results drawn from the true
skills. The figures of each run are the simulation's summary; the printed ones are medians of
``--runs`` runs.

Reference, in the same runs: ``rating_rmse_before``, the error of rating everyone at the
prior's mean (what a server that learnt nothing would say), next to ``rating_rmse``; and the
queue's own wait window (1 s at the start, growing) for the waits.

The last line is one JSON object: ``matches_per_min``, ``wait_p50_s``, ``wait_p95_s``,
``rating_rmse``, ``rating_rmse_before``, ``rating_rank_correlation``,
``tournaments_completed``, ``prizes_paid_usd_cents``, ``deposits``, ``reconciliation_ok``
(every run) and ``runs``.

    .venv/bin/python bench/simulation.py            # 100 players, 4 servers, 120 s, 3 runs
    .venv/bin/python bench/simulation.py --quick    # 20 players, 2 servers, 25 s, 1 run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from common import (
    ROOT,
    Process,
    clean_environment,
    delete_prefix,
    free_port,
    spawn,
    start_process,
)


async def spawn_localstripe(work: Path) -> tuple[Process, str]:
    port = free_port()
    argv = [sys.executable, str(ROOT / "scripts" / "localstripe_server.py"), "--port", str(port)]
    process = await spawn("localstripe", argv, clean_environment(), work, port)
    return process, f"http://127.0.0.1:{port}"


async def one_run(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="lgbench-sim-"))
    tag = secrets.token_hex(4)
    db_name, prefix = f"lgbench_sim_{tag}", f"lgbench:sim:{tag}:"
    admin = await asyncpg.connect(args.postgres_url)
    await admin.execute(f'CREATE DATABASE "{db_name}"')
    processes: list[Process] = []
    try:
        stripe, stripe_base = await spawn_localstripe(work)
        processes.append(stripe)
        port = free_port()
        env = clean_environment() | {
            "LEETGAMING_PORT": str(port),
            "LEETGAMING_DATABASE_URL": args.postgres_url.rsplit("/", 1)[0] + f"/{db_name}",
            "LEETGAMING_REDIS_URL": args.redis_url,
            "LEETGAMING_REDIS_PREFIX": prefix,
            "LEETGAMING_SECRET_KEY": secrets.token_hex(32),
            "LEETGAMING_WORKERS": "2",
            "LEETGAMING_LOG_LEVEL": "warning",
            "LEETGAMING_MAIL_DIR": str(work / "mail"),
            "LEETGAMING_REST_REQUESTS_PER_MIN": "10000000",
            "LEETGAMING_STRIPE_SECRET_KEY": "sk_test_bench",
            "LEETGAMING_STRIPE_WEBHOOK_SECRET": "whsec_bench",
            "LEETGAMING_STRIPE_API_BASE": stripe_base,
        }
        server = await start_process(
            "serve",
            [sys.executable, "-m", "leetgaming", "serve"],
            env,
            work,
            "LeetGaming is running at",
        )
        processes.append(server)
        async with httpx.AsyncClient() as http:
            hook = await http.post(
                f"{stripe_base}/_config/webhooks/bench",
                data={
                    "url": f"http://127.0.0.1:{port}/v1/webhooks/stripe",
                    "secret": "whsec_bench",
                },
            )
            hook.raise_for_status()
        # fmt: off
        options = [
            "--seed", str(seed), "--players", str(args.players), "--servers", str(args.servers),
            "--duration-s", str(args.seconds), "--round-s", "0.1", "--rest-s", "3",
            "--tournament-every-s", "30", "--tournament-size", "8", "--progress-s", "0",
        ]
        # fmt: on
        run = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "leetgaming",
            "simulate",
            *options,
            env=env,
            cwd=work,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(run.communicate(), args.seconds + 300)
        text = out.decode().splitlines()
        if run.returncode not in (0, 1) or not text or not text[-1].startswith("{"):
            raise RuntimeError(f"simulate failed ({run.returncode}): {err.decode()[-3000:]}")
        print("\n".join(f"  {line}" for line in text[:-1]), flush=True)
        summary: dict[str, Any] = json.loads(text[-1])
        return summary
    finally:
        for process in reversed(processes):
            await process.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        await admin.close()
        await delete_prefix(args.redis_url, prefix)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for n in range(args.runs):
        print(f"run {n + 1} of {args.runs}", flush=True)
        runs.append(await one_run(args, args.seed + n))

    def median(name: str) -> float | None:
        values = [r[name] for r in runs if r[name] is not None]
        return None if not values else round(statistics.median(values), 3)

    per_min = [r["matches_finished"] / (r["duration_s"] / 60) for r in runs]
    return {
        "matches_per_min": round(statistics.median(per_min), 1),
        "wait_p50_s": median("wait_p50_s"),
        "wait_p95_s": median("wait_p95_s"),
        "rating_rmse": median("rating_rmse"),
        "rating_rmse_before": median("rating_rmse_before"),
        "rating_rank_correlation": median("rating_rank_correlation"),
        "tournaments_completed": median("tournaments_completed"),
        "prizes_paid_usd_cents": median("prizes_paid_usd_cents"),
        "deposits": median("deposits"),
        "reconciliation_ok": all(r["reconciliation_ok"] for r in runs),
        "runs": len(runs),
        "players": args.players,
        "seconds": args.seconds,
    }


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    parser.add_argument("--players", type=int, help="bot players (100; quick 20)")
    parser.add_argument("--servers", type=int, help="bot game servers (4; quick 2)")
    parser.add_argument("--seconds", type=float, help="seconds a run plays (120; quick 25)")
    parser.add_argument("--runs", type=int, help="runs (3; quick 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "LEETGAMING_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("LEETGAMING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    args = parser.parse_args()
    args.players = args.players or (20 if args.quick else 100)
    args.servers = args.servers or (2 if args.quick else 4)
    args.seconds = args.seconds or (25.0 if args.quick else 120.0)
    args.runs = args.runs or (1 if args.quick else 3)
    return args


if __name__ == "__main__":
    arguments = parse()
    print(
        f"simulation benchmark: {arguments.players} players, {arguments.servers} servers, "
        f"{arguments.seconds:g} s x {arguments.runs} runs; serve with 2 workers on PostgreSQL "
        "+ Redis, localstripe",
        flush=True,
    )
    print(json.dumps(asyncio.run(main(arguments))))
