"""Ledger benchmark: durable transfers/s and latency on PostgreSQL and SQLite, next to pgbench.

For each store and each client count (1, 16, 64), ``clients`` tasks each submit one request at
a time to one :class:`ledger.Ledger` (the batching writer) and wait for its answer, for
``--seconds``; the figures are transfers answered ``ok`` per second and the latency of each
request (submit to answer, which comes only after COMMIT). PostgreSQL runs with
``synchronous_commit = on``; SQLite with WAL and ``synchronous = FULL``.

Two workloads:
- ``plain``: one transfer between two random funded player accounts (with the balance limit);
- ``hot``: a payment between two random players *and* a fee to one shared fee account, as a
  linked pair: every request touches the hot fee account. Its figure counts payments (each
  with its fee transfer), so the ledger writes twice as many rows as the figure says.

The reference is pgbench's TPC-B (``-c 8 -j 2 -M prepared``) on the same PostgreSQL, run in the
same invocation. ``--repeat N`` runs every configuration N times and reports medians.
The last line printed is one JSON object with the headline figures.

    python bench/ledger.py            # full run: 20 s per configuration
    python bench/ledger.py --quick    # under a minute
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger import Account, AccountFlags, Ledger, Transfer, TransferFlags, open_store
from ledger.ids import time_ordered_id
from ledger.store import LedgerStore

PLATFORM = 1
FEE = 2
FIRST_PLAYER = 1000
FUNDING = 10**15


@dataclass
class RunResult:
    store: str
    workload: str
    clients: int
    seconds: float
    transfers: int
    rows: int
    p50_ms: float
    p99_ms: float
    batches: int

    @property
    def per_s(self) -> float:
        return self.transfers / self.seconds


async def prepare(store: LedgerStore, players: int) -> None:
    await store.migrate()
    accounts = [
        Account(PLATFORM, "USD", "platform", "settlement"),
        Account(FEE, "USD", "platform", "fee"),
    ] + [
        Account(
            FIRST_PLAYER + i,
            "USD",
            f"player-{i}",
            "user",
            AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        )
        for i in range(players)
    ]
    ledger = Ledger(store, expire_on_timer=False)
    ledger.start()
    for i in range(0, len(accounts), 5000):
        await ledger.create_accounts(accounts[i : i + 5000])
    funding = [
        Transfer(uuid.uuid4().int, PLATFORM, FIRST_PLAYER + i, FUNDING, "USD")
        for i in range(players)
    ]
    for i in range(0, len(funding), 5000):
        outcomes = await ledger.create_transfers(funding[i : i + 5000])
        assert all(o.result.succeeded for o in outcomes), outcomes[0]
    await ledger.close()


async def run_clients(
    store: LedgerStore, name: str, workload: str, clients: int, seconds: float, players: int
) -> RunResult:
    ledger = Ledger(store, expire_on_timer=False)
    ledger.start()
    latencies: list[float] = []
    done = 0
    rows = 0
    failed = 0
    deadline = time.perf_counter() + seconds
    rng = random.Random(clients)  # which accounts: the same every run
    ids = random.Random()  # transfer ids: new every run (seeded from the OS)

    def new_id() -> int:
        # Time-ordered, as a client should choose them (see ledger.ids.time_ordered_id).
        return time_ordered_id(time.time_ns() // 1_000_000, ids.getrandbits(80))

    async def client() -> None:
        nonlocal done, rows, failed
        while time.perf_counter() < deadline:
            a = FIRST_PLAYER + rng.randrange(players)
            b = FIRST_PLAYER + rng.randrange(players - 1)
            if b >= a:
                b += 1
            if workload == "plain":
                request = [Transfer(new_id(), a, b, 1, "USD", code=1)]
            else:
                request = [
                    Transfer(
                        new_id(),
                        a,
                        b,
                        100,
                        "USD",
                        code=1,
                        flags=TransferFlags.LINKED,
                    ),
                    Transfer(new_id(), a, FEE, 1, "USD", code=2),
                ]
            started = time.perf_counter()
            outcomes = await ledger.create_transfers(request)
            latencies.append(time.perf_counter() - started)
            if all(o.result.succeeded for o in outcomes):
                done += 1
                rows += len(request)
            else:
                failed += 1

    started = time.perf_counter()
    batches_before = ledger.batches_written
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    batches = ledger.batches_written - batches_before
    await ledger.close()
    if failed:
        raise AssertionError(f"{failed} requests failed in the benchmark")
    latencies.sort()
    return RunResult(
        store=name,
        workload=workload,
        clients=clients,
        seconds=elapsed,
        transfers=done,
        rows=rows,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        batches=batches,
    )


def run_pgbench(server_url: str, seconds: int, scale: int) -> float:
    if shutil.which("pgbench") is None:
        raise SystemExit(
            "pgbench is not installed (Debian: postgresql-contrib or postgresql-client)"
        )
    database = f"lgbench_pgbench_{uuid.uuid4().hex[:8]}"
    admin = ["psql", server_url, "-q", "-v", "ON_ERROR_STOP=1", "-c"]
    subprocess.run([*admin, f"CREATE DATABASE {database}"], check=True, capture_output=True)
    url = re.sub(r"/[^/?]*(\?|$)", f"/{database}\\1", server_url.split("://", 1)[1], count=1)
    url = server_url.split("://", 1)[0] + "://" + url
    try:
        subprocess.run(
            ["pgbench", "-i", "-q", "-s", str(scale), url], check=True, capture_output=True
        )
        out = subprocess.run(
            ["pgbench", "-c", "8", "-j", "2", "-M", "prepared", "-T", str(seconds), url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        subprocess.run(
            [*admin, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], capture_output=True
        )
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if match is None:
        raise SystemExit(f"could not read pgbench's tps from:\n{out}")
    return float(match.group(1))


async def bench_store(
    name: str,
    url: str,
    workloads: list[str],
    client_counts: list[int],
    seconds: float,
    players: int,
    repeat: int,
    schema: str | None,
) -> list[RunResult]:
    results: list[RunResult] = []
    store = await (open_store(url, schema=schema) if schema else open_store(url))
    try:
        await prepare(store, players)
        for workload in workloads:
            for clients in client_counts:
                runs = [
                    await run_clients(store, name, workload, clients, seconds, players)
                    for _ in range(repeat)
                ]
                runs.sort(key=lambda r: r.per_s)
                median = runs[len(runs) // 2]
                results.append(median)
                spread = ", ".join(f"{r.per_s:,.0f}" for r in runs)
                print(
                    f"{name:8} {workload:5} clients={clients:3}  {median.per_s:10,.0f} transfers/s"
                    f"  p50 {median.p50_ms:6.2f} ms  p99 {median.p99_ms:6.2f} ms"
                    f"  ({median.transfers / max(median.batches, 1):.0f} transfers/batch; runs: {spread})",
                    flush=True,
                )
    finally:
        await store.close()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    parser.add_argument(
        "--seconds", type=float, default=None, help="per configuration (default 20)"
    )
    parser.add_argument("--repeat", type=int, default=None, help="runs per configuration (median)")
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument(
        "--clients",
        default=None,
        help="comma-separated client counts (default 1,16,64, plus 256 outside --quick)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "LEETGAMING_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server; the benchmark creates and drops its own database",
    )
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 20.0)
    repeat = args.repeat or (1 if args.quick else 3)
    players = 2000 if args.quick else args.players
    pgbench_seconds = 5 if args.quick else 20
    issue_counts = [1, 16, 64]  # the counts the ledger issue names; the headline uses these
    client_counts = (
        [int(c) for c in args.clients.split(",")]
        if args.clients
        else issue_counts + ([] if args.quick else [256])
    )

    print(
        f"ledger benchmark: {seconds:g} s per configuration, median of {repeat}, {players} players, "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    database = f"lgbench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f"CREATE DATABASE {database}")
    sync = await admin.fetchval("SHOW synchronous_commit")
    fsync = await admin.fetchval("SHOW fsync")
    await admin.close()
    pg_url = re.sub(
        r"/([^/?]*)(\?|$)", f"/{database}\\2", args.database_url.rsplit("@", 1)[-1], count=1
    )
    pg_url = (
        args.database_url.rsplit("@", 1)[0] + "@" + pg_url if "@" in args.database_url else pg_url
    )
    print(
        f"PostgreSQL: server synchronous_commit={sync} fsync={fsync}; the ledger's connections force synchronous_commit=on"
    )
    results: list[RunResult] = []
    tmp = tempfile.mkdtemp(prefix="lgbench-")
    try:
        results += await bench_store(
            "postgres", pg_url, ["plain", "hot"], client_counts, seconds, players, repeat, "ledger"
        )
        results += await bench_store(
            "sqlite",
            f"sqlite:///{tmp}/ledger.sqlite3",
            ["plain", "hot"],
            client_counts,
            seconds,
            players,
            repeat,
            None,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        admin = await asyncpg.connect(args.database_url)
        await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        await admin.close()

    pgbench_runs = sorted(
        run_pgbench(args.database_url, pgbench_seconds, 10) for _ in range(repeat)
    )
    pgbench_tps = pgbench_runs[len(pgbench_runs) // 2]
    print(
        f"pgbench TPC-B -c 8 -j 2 -M prepared -s 10: {pgbench_tps:,.0f} tps (runs: {', '.join(f'{t:,.0f}' for t in pgbench_runs)})"
    )

    def best(store: str, workload: str, counts: list[int] | None = None) -> RunResult:
        counts = counts or issue_counts
        chosen = [
            r
            for r in results
            if r.store == store and r.workload == workload and r.clients in counts
        ]
        return max(chosen, key=lambda r: r.per_s)

    pg, pg_hot, lite = best("postgres", "plain"), best("postgres", "hot"), best("sqlite", "plain")
    lite_hot = best("sqlite", "hot")
    summary = {
        "pg_transfers_per_s": round(pg.per_s),
        "pg_clients": pg.clients,
        "pg_p50_ms": round(pg.p50_ms, 2),
        "pg_p99_ms": round(pg.p99_ms, 2),
        "pg_hot_transfers_per_s": round(pg_hot.per_s),
        "pg_hot_ledger_rows_per_s": round(pg_hot.rows / pg_hot.seconds),
        "pg_hot_p99_ms": round(pg_hot.p99_ms, 2),
        "sqlite_transfers_per_s": round(lite.per_s),
        "sqlite_p99_ms": round(lite.p99_ms, 2),
        "sqlite_hot_transfers_per_s": round(lite_hot.per_s),
        "pgbench_tps": round(pgbench_tps),
        "pg_vs_pgbench": round(pg.per_s / pgbench_tps, 2),
        "pg_hot_vs_pgbench": round(pg_hot.per_s / pgbench_tps, 2),
        "pg_best_any_clients_per_s": round(best("postgres", "plain", client_counts).per_s),
        "pg_hot_best_any_clients_per_s": round(best("postgres", "hot", client_counts).per_s),
        "by_clients": {
            f"{r.store}_{r.workload}_{r.clients}": {
                "per_s": round(r.per_s),
                "p50_ms": round(r.p50_ms, 2),
                "p99_ms": round(r.p99_ms, 2),
            }
            for r in results
        },
        "seconds_per_run": seconds,
        "repeat": repeat,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
