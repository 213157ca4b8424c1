"""A crash at every step of settling a match, ladder or tournament, is finished on recovery:
a worker process (:mod:`.settlement_crash_worker`) is SIGKILLed at each step in turn while
settling a game server's signed ``match.result``; a fresh process then does what a restarted
app does (its start-up sweep carries out the tournaments' outboxes) and the game server sends
its result again, as it does until it hears back (then once more). The match is settled once,
its players rated once (one history row each, computed from their ratings before it), the
bracket advanced once (one final started; the tournament then plays to its end and pays each
winner once: one ledger transfer per effect, by its derived id, and a ledger that
reconciles), and the second repeat changes nothing.

What settling writes, in order (:meth:`leetgaming.play.Play._settle_results`):

1. one transaction: the match row (``settled``, by compare-and-set on its version), the
   players' ratings and their history, and (a tournament's match) the bracket and its outbox
   (:meth:`leetgaming.tournaments.Tournaments._settled`): a kill anywhere in it leaves none
   of it;
2. after the commit: the tournament's delta published; its outbox drained in the background,
   row by row (a semifinal: the final started, the players' events; a final: the prizes
   paid, the events), then the rows deleted; the match's own events published and its server
   freed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger import derive_id, reconcile
from leetgaming.play import result_message
from matchmaking import tournament as tm
from matchmaking.formats import placements
from matchmaking.match import State
from matchmaking.rating import Rating
from realtime.channel import Principal, Role
from wallet import accounts
from wallet.accounts import Code

from ..conftest import _pg_execute, _with_database
from .settlement_crash_worker import FUNDS, PLAYERS
from .tournament_flow import SERVER, SERVER_KEY, Flow, flow_on

ROOT = Path(__file__).resolve().parents[2]
# 4 players, 1000 each, 10 % rake: 3600 in prizes; places 1 (60 %), 2 (30 %), 3-4 share 10 %
PRIZES = {1: 2_160, 2: 1_080, 3: 180}
IN_THE_TRANSACTION = ("rated", "told")
POINTS = {
    "ladder": ["rated", "told", "committed", "done"],
    "semi": [
        "rated",
        "told",
        "committed",
        "delta",
        "effect:1",  # the final started
        "effect:2",  # the players' events published (all at once: effect:3 is the same)
        "drained",
        "done",
    ],
    # the final's outbox (the prizes, the events) is swept by test_tournament_crash.py; here
    # the transaction, the commit, and the result sent again after the prizes were paid
    "final": ["rated", "told", "committed", "effect:1", "done"],
}
ON_POSTGRES = [("semi", "told"), ("semi", "effect:1")]  # the drain holds a transaction there
# the outbox rows a result sets off, in the order they are carried out
EFFECTS = {"semi": ["start_match", "event", "event"], "final": ["payout", "event", "event"]}


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path, postgres_server_url: str) -> Iterator[str]:
    """The app's database (and the ledger's): a SQLite file, or a PostgreSQL database of the
    test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/app.sqlite3"
        return
    name = f"lgtest_crash_{secrets.token_hex(4)}"
    asyncio.run(_pg_execute(postgres_server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(postgres_server_url, name)
    finally:
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        asyncio.run(_pg_execute(postgres_server_url, drop))


@dataclass
class Killed:
    survived: bool
    tournament: str | None
    played: list[str]  # the matches played whole before, in order
    match: str  # the one the process died settling
    ranks: list[int]
    carried: list[str]  # the outbox rows carried out before the kill


def run_worker(url: str, which: str, point: str) -> Killed:
    worker = subprocess.run(
        [sys.executable, "-m", "tests.leetgaming.settlement_crash_worker", url, which, point],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = worker.stdout
    assert "Traceback" not in worker.stderr, worker.stderr
    survived = "survived" in out
    if survived:
        assert worker.returncode == 0, (out, worker.stderr)
    else:
        assert worker.returncode == -9, (worker.returncode, out, worker.stderr)
        assert out.splitlines()[-1] == f"kill {point}", out
    lines = [(*line.split(" ", 1), "")[:2] for line in out.splitlines()]
    [(match, ranks)] = [rest.split(" ", 1) for word, rest in lines if word == "match"]
    return Killed(
        survived,
        next((rest for word, rest in lines if word == "tournament"), None),
        [rest for word, rest in lines if word == "played"],
        match,
        json.loads(ranks),
        [rest for word, rest in lines if word == "carried"],
    )


async def send_result(flow: Flow, match_id: str, ranks: list[int]) -> Any:
    """The game server's signed result (again)."""
    signature = hmac.new(
        SERVER_KEY.encode(), result_message(match_id, ranks), hashlib.sha256
    ).hexdigest()
    return await flow.play.call(
        Principal(Role.GAME_SERVER, SERVER),
        "match.result",
        {"match": match_id, "ranks": ranks, "signature": signature},
    )


async def rated_once(flow: Flow, killed: Killed) -> None:
    """The match's players have one history row each for it, rated from what they had after
    their previous match (or a new rating), and their rating and games count say so."""
    loaded = await flow.play.load(killed.match)
    assert loaded is not None
    match = loaded[0]
    assert match.state is State.SETTLED
    model = flow.play.queues[match.queue].model

    async def history(match_id: str) -> dict[str, tuple[float, float, float, float]]:
        rows = await flow.db.fetch(
            "SELECT player, mu_before, sigma_before, mu, sigma FROM rating_history WHERE match = ?",
            match_id,
        )
        found = {str(r[0]): (float(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in rows}
        assert len(found) == len(rows)
        return found

    mine = await history(killed.match)
    assert sorted(mine) == sorted(match.players)
    earlier = [await history(m) for m in killed.played]
    before: dict[str, Rating] = {}
    for player in match.players:
        previous = [rows[player] for rows in earlier if player in rows]
        before[player] = Rating(*previous[-1][2:]) if previous else model.new()
        assert mine[player][:2] == (before[player].mu, before[player].sigma), player
    after = model.rate([[before[p] for p in team] for team in match.teams], killed.ranks)
    for team, news in zip(match.teams, after, strict=True):
        for player, new in zip(team, news, strict=True):
            assert mine[player][2:] == pytest.approx((new.mu, new.sigma), rel=1e-12), player
            [(mu, sigma, games)] = await flow.db.fetch(
                "SELECT mu, sigma, games FROM ratings WHERE player = ?", player
            )
            [(rows,)] = await flow.db.fetch(
                "SELECT COUNT(*) FROM rating_history WHERE player = ?", player
            )
            assert (float(mu), float(sigma), int(games)) == (*mine[player][2:], int(rows))
            assert int(games) == 1 + sum(player in rows for rows in earlier)


async def paid_once(flow: Flow, tournament_id: str) -> None:
    """The tournament is complete; each winner was paid once; every effect is one transfer."""
    t = await flow.tournaments.get(tournament_id)
    assert t.phase is tm.Phase.COMPLETE
    places = {
        who: place
        for place, group in placements(t.config.format, t.participants, t.progress)
        for who in group
    }
    for player in PLAYERS:
        expected = FUNDS - 1_000 + PRIZES.get(places[player], 0)
        assert await flow.balance(player) == (expected, expected), (player, places)
    assert await flow.pool(tournament_id) == (0, 0)
    transfers = [x async for x in flow.store.scan_transfers()]
    # a fund each; a hold and its post each; the rake; a prize per place paid (3-4 share)
    assert Counter(x.code for x in transfers) == {
        Code.DEPOSIT: 4,
        Code.ENTRY_FEE: 8,
        Code.RAKE: 1,
        Code.PRIZE: 4,
    }
    split = tm.payout_split(t)
    prizes = {x.id: (x.credit_account_id, x.amount) for x in transfers if x.code == Code.PRIZE}
    assert prizes == {
        derive_id("tournament.prize", tournament_id, p.place, p.player): (
            accounts.user(p.player, "USD").id,
            p.amount,
        )
        for p in split.payouts
    }
    assert (
        await flow.db.fetch("SELECT seq FROM tournament_outbox WHERE tournament = ?", tournament_id)
        == []
    )
    report = await reconcile(flow.store)
    assert report.ok, report.problems


def check_recovery(url: str, which: str, point: str, killed: Killed) -> None:
    async def recover() -> None:
        async with flow_on(url) as flow:
            await flow.tournaments.sweep()  # what the app does on start
            first = await send_result(flow, killed.match, killed.ranks)
            committed = point not in IN_THE_TRANSACTION
            assert first["repeat"] is committed, first
            await flow.tournaments.quiet()
            await flow.tournaments.sweep()  # and every second after
            again = await send_result(flow, killed.match, killed.ranks)
            assert again == {"match": killed.match, "state": "settled", "repeat": True}
            await flow.tournaments.quiet()
            await flow.play.stop()
            await rated_once(flow, killed)
            if killed.tournament is None:  # a ladder match moves no money
                assert [x async for x in flow.store.scan_transfers()] == []
                assert (await reconcile(flow.store)).ok
                return
            tid = killed.tournament
            open_matches = await flow.open_matches(tid)
            if which == "semi":
                # one final started, once, whoever started it
                finals = await flow.db.fetch(
                    "SELECT id FROM matches WHERE id LIKE ?", f"t.{tid}.U2-1.%"
                )
                assert [r[0] for r in finals] == [f"t.{tid}.U2-1.1"]
                [(final, _, teams)] = open_matches
                await flow.play_match(final, teams, 0)
            else:
                assert open_matches == []
            await flow.tournaments.sweep()
            await paid_once(flow, tid)

    asyncio.run(recover())


def cases() -> list[Any]:
    sqlite = [("sqlite", which, point) for which, points in POINTS.items() for point in points]
    return sqlite + [("postgresql", which, point) for which, point in ON_POSTGRES]


@pytest.mark.parametrize(("url", "which", "point"), cases(), indirect=["url"])
def test_a_kill_anywhere_in_settling_a_match_settles_and_rates_it_once(
    url: str, which: str, point: str
) -> None:
    killed = run_worker(url, which, point)
    assert not killed.survived
    if point.startswith("effect:"):
        assert killed.carried == EFFECTS[which][: int(point.split(":")[1])]
    check_recovery(url, which, point, killed)


@pytest.mark.parametrize("which", ["semi", "final"])
def test_the_drains_have_the_steps_the_kills_cover(tmp_path: Path, which: str) -> None:
    """Unkilled, a semifinal's result starts the final and tells its two players; a final's
    pays the prizes and tells the players: the rows the ``effect:N`` points stand between."""
    url = f"sqlite:///{tmp_path}/app.sqlite3"
    killed = run_worker(url, which, "effect:99")  # never reached: it survives
    assert killed.survived
    assert killed.carried == EFFECTS[which]
