"""Each benchmark runs in its --quick form and ends with its JSON line (figures are not judged
here: this machine is shared; the point is that the benchmark works)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ledger_benchmark_quick(postgres_server_url: str) -> None:
    env = dict(os.environ, LEETGAMING_BENCH_DATABASE_URL=postgres_server_url)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ledger.py"), "--quick", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "pg_transfers_per_s",
        "pg_p99_ms",
        "pg_hot_transfers_per_s",
        "sqlite_transfers_per_s",
        "pgbench_tps",
    ):
        assert figures[key] > 0, key
    assert set(figures["by_clients"]) >= {f"postgres_plain_{n}" for n in (1, 16, 64)}


def test_hub_benchmark_quick(redis_url: str) -> None:
    env = dict(os.environ, LEETGAMING_BENCH_REDIS_URL=redis_url)
    smallest = ["--idle", "300", "--rooms", "4", "--rate", "1000", "--seconds", "2"]
    smallest += ["--fanout", "20,50,100", "--events", "3", "--storm", "300"]
    smallest += ["--slow", "20", "--slow-rate", "40"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "hub.py"), "--quick", *smallest],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "idle_connections",
        "bytes_per_connection",
        "deliveries_per_s",
        "delivery_p99_ms",
        "fanout_100_p99_ms",
        "fanout_1000_p99_ms",
        "fanout_10000_p99_ms",
        "reference_fanout_1000_p99_ms",
        "reconnect_storm_s",
    ):
        assert figures[key] > 0, key
    assert figures["idle_connections"] == 300
    assert figures["lost_messages"] == 0
    assert figures["reference_lost_messages"] == 0
    assert isinstance(figures["slow_consumer_p99_change_pct"], float | int)
    assert isinstance(figures["slow_consumer_cut"], bool)  # cut or not depends on socket buffers


def test_matchmaker_benchmark_quick(postgres_server_url: str, redis_url: str) -> None:
    done = subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench" / "matchmaker.py"), "--quick"),
            *("--seconds", "120", "--sizes", "1000,10000", "--repeat", "1"),
            *("--e2e-seconds", "20", "--postgres-url", postgres_server_url),
            *("--redis-url", redis_url),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "wait_p95_s_1v1",
        "wait_max_s_1v1",
        "quality_mean_1v1",
        "wait_p95_s_5v5",
        "wait_max_s_5v5",
        "spread_mean_5v5",
        "favourite_win_prob_5v5",
        "tick_ms_10000",
        "naive_wait_p95_s_5v5",
    ):
        assert figures[key] > 0, key
    # End to end: bots over real websockets on two processes were matched, none failed.
    assert figures["e2e_bots"] > 0
    assert figures["e2e_failed_1v1"] == figures["e2e_failed_5v5"] == 0
    assert figures["e2e_wait_p95_s_5v5"] > 0 and figures["e2e_results_reported"] > 0


def test_tournament_benchmark_quick(postgres_server_url: str, redis_url: str) -> None:
    done = subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench" / "tournament.py"), "--quick"),
            *("--de-size", "8", "--swiss-size", "16", "--match-s", "0.05"),
            *("--postgres-url", postgres_server_url, "--redis-url", redis_url),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("de256_total_s", "swiss1024_total_s", "bracket_event_p99_ms", "payout_s"):
        assert figures[key] > 0, key
    assert figures["de256_size"] == 8 and figures["swiss1024_size"] == 16
    assert "errors 0" in done.stdout and done.stdout.count("errors 0") == 4


def test_rest_benchmark_quick(postgres_server_url: str, redis_url: str) -> None:
    done = subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench" / "rest.py"), "--quick"),
            *("--rates", "50", "--seconds", "2", "--players", "5"),
            *("--postgres-url", postgres_server_url, "--redis-url", redis_url),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "p95_ms_get_wallet",
        "p95_ms_post_deposits",
        "p95_ms_post_withdrawals",
        "p95_ms_get_transactions",
        "p95_ms_create_match",
        "reference_p95_ms",
    ):
        assert figures[key] > 0, key
    assert figures["errors"] == 0, done.stdout[-2000:]


def test_cs2_benchmark_quick(postgres_server_url: str, redis_url: str) -> None:
    smallest = ["--matches", "4", "--rate", "200"]
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "cs2.py"),
            "--quick",
            *smallest,
            "--postgres-url",
            postgres_server_url,
            "--redis-url",
            redis_url,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "events_per_s",
        "ingest_p99_ms",
        "bracket_update_p99_ms",
        "reference_ingest_p99_ms",
    ):
        assert figures[key] > 0, key
    # correctness is not noisy: every acknowledged body stored once, every series right
    assert figures["lost_events"] == figures["double_applied_events"] == 0
    assert figures["wrong_results"] == figures["refused_events"] == 0
