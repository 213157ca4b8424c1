"""A crash at any point of the prize distribution resumes on restart and pays each winner
exactly once: a worker process is SIGKILLed after each outbox step in turn, then a fresh
process (the app's start-up sweep) finishes the work; the ledger is checked each time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import reconcile
from matchmaking import tournament as tm
from matchmaking.formats import placements

from .tournament_crash_worker import FUNDS, PLAYERS
from .tournament_flow import flow_on

ROOT = Path(__file__).resolve().parents[2]
# 5 players, 1000 each, 10 % rake: 4500 in prizes; places 1 (60 %), 2 (30 %), 3-4 share 10 %
PRIZES = {1: 2_700, 2: 1_350, 3: 225}


# The final result's drain carries out: the payout (money first), the result's and the
# completion's events; a kill after each (and before the first).
@pytest.mark.parametrize("kill_after", [0, 1, 2, 3])
def test_a_kill_anywhere_in_the_distribution_pays_each_winner_once(
    tmp_path: Path, kill_after: int
) -> None:
    url = f"sqlite:///{tmp_path}/app.sqlite3"
    worker = subprocess.run(
        [sys.executable, "-m", "tests.leetgaming.tournament_crash_worker", url, str(kill_after)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.stdout.startswith("tournament "), worker.stderr
    tid = worker.stdout.split()[1]
    assert worker.returncode == -9, (worker.stdout, worker.stderr)
    carried = [line.split()[1] for line in worker.stdout.splitlines() if line.startswith("carried")]
    assert len(carried) == kill_after
    assert ("payout" in carried) == (kill_after >= 1)  # killed before, or after, paying

    async def resume() -> None:
        async with flow_on(url) as flow:
            await flow.tournaments.sweep()  # what the app does on start
            await flow.tournaments.sweep()  # and again, every second: nothing more happens
            t = await flow.tournaments.get(tid)
            assert t.phase is tm.Phase.COMPLETE
            places = {
                who: place
                for place, group in placements(t.config.format, t.participants, t.progress)
                for who in group
            }
            for player in PLAYERS:
                expected = FUNDS - 1_000 + PRIZES.get(places[player], 0)
                assert await flow.balance(player) == (expected, expected), (player, places)
            assert await flow.pool(tid) == (0, 0)
            report = await reconcile(flow.store)
            assert report.ok, report.problems

    asyncio.run(resume())


def test_the_final_drain_has_the_steps_the_kills_cover(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/app.sqlite3"
    worker = subprocess.run(
        [sys.executable, "-m", "tests.leetgaming.tournament_crash_worker", url, "1000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    carried = [line.split()[1] for line in worker.stdout.splitlines() if line.startswith("carried")]
    assert carried == ["payout", "event", "event"], worker
    assert "survived" in worker.stdout
