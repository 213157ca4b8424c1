"""The bank nemesis: a one-minute run of ``leetgaming nemesis`` (real serve processes on
PostgreSQL and a Redis of its own, SIGKILLed, SIGSTOPped and cut off) must lose nothing,
apply nothing twice and leave a ledger that reconciles; its matchmaking must put no player in
two matches, lose no acknowledged result, rate each match once, and every client must find
its way back to a match after the faults."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from leetgaming.nemesis import FAULT_KINDS, fault_schedule

SEED = 6  # its first minute has every kind of fault
NEMESIS_TIMEOUT_S = 420


def test_the_fault_schedule_is_a_function_of_its_seed() -> None:
    first = fault_schedule(SEED, 60.0, 3.0, 2)
    assert first == fault_schedule(SEED, 60.0, 3.0, 2)
    assert first != fault_schedule(SEED + 1, 60.0, 3.0, 2)
    assert {f.kind for f in first} == set(FAULT_KINDS)
    assert all(0 < f.at_s < 60 and f.target in (0, 1) for f in first)
    assert [f.at_s for f in first] == sorted(f.at_s for f in first)
    assert fault_schedule(SEED, 60.0, 0.0, 2) == []  # the reference run


@pytest.mark.slow
def test_a_minute_of_faults_loses_nothing_and_doubles_nothing(postgres_server_url: str) -> None:
    redis_server = shutil.which("redis-server")
    assert redis_server is not None, "the nemesis runs a redis-server of its own: install it"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEETGAMING_")}
    env["LEETGAMING_DATABASE_URL"] = postgres_server_url
    done = subprocess.run(
        [sys.executable, "-m", "leetgaming", "nemesis", "--minutes", "1", "--seed", str(SEED)],
        env=env,
        capture_output=True,
        text=True,
        timeout=NEMESIS_TIMEOUT_S,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["problems"] == [], figures
    assert figures["operations_lost"] == 0
    assert figures["operations_applied_twice"] == 0
    assert figures["reconciliation_clean"] is True
    assert set(figures["faults_by_kind"]) == set(FAULT_KINDS), figures["faults_by_kind"]
    assert figures["faults_injected"] >= 10
    assert figures["operations_acknowledged"] >= 200, figures
    assert figures["operations_retried"] > 0, "no answer was lost to a fault: not a test"
    matches = figures["matchmaking"]
    assert matches["problems"] == [], matches
    assert matches["matches_finished"] >= 10 and matches["results_acknowledged"] >= 10, matches
    for broken in ("results_lost", "tickets_in_two_matches", "players_in_two_matches"):
        assert matches[broken] == 0, matches
    assert matches["ratings_applied_twice"] == 0, matches
    assert matches["players_resynced"] == matches["players"] > 0, matches
    assert done.returncode == 0, done.stderr[-3000:]
