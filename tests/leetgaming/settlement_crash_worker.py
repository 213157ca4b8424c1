"""A process that plays up to one match, receives that match's signed ``match.result`` from its
game server, and is SIGKILLed at ``point`` of settling it:

    python -m tests.leetgaming.settlement_crash_worker DATABASE_URL MATCH POINT

``MATCH`` is ``ladder`` (a rated match of its own, after one played before it, so that the
ratings it starts from are not new ones), ``semi`` (the second semifinal of a paid
four-player single elimination, whose result starts the final) or ``final`` (that
tournament's final, whose result pays the prizes). ``POINT``, in the order settling goes
(:meth:`leetgaming.play.Play._settle_results`, then what it sets off):

- ``rated``: in the settling transaction, the match row settled and the ratings written, the
  tournament not yet told;
- ``told``: in it still, the tournament's bracket and outbox written too, not committed;
- ``committed``: just after the commit, before anything runs after it;
- ``delta``: the tournament's delta published, its outbox not yet drained;
- ``effect:N``: after the N-th outbox row is carried out (``carried <type>`` is printed for
  each), before the rows are deleted;
- ``drained``: the outbox carried out and deleted;
- ``done``: all of it done and announced: the game server never heard the answer;
- ``none``: not killed (prints ``survived``).

Prints ``tournament <id>`` (a tournament's), ``played <match>`` for each match played whole,
``match <match> <ranks>`` for the one the kill is in, and ``kill <point>`` just before it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from leetgaming.db import Conn
from leetgaming.play import AfterCommit
from matchmaking import tournament as tm
from matchmaking.match import Match

from .tournament_flow import Flow, config, flow_on

LADDER_QUEUE = "cs2:1v1:eu"
LADDER = ["l0", "l1"]
PLAYERS = [f"p{i}" for i in range(4)]
FUNDS = 10_000


def kill(point: str) -> None:
    print(f"kill {point}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def kill_at(flow: Flow, point: str) -> None:
    """Wrap what settling calls so that the process dies at ``point``."""
    play, tournaments = flow.play, flow.tournaments
    real_rate = play._rate_many

    async def rate_many(tx: Conn, matches: Sequence[Any]) -> None:
        await real_rate(tx, matches)
        if point == "rated":
            kill(point)

    play._rate_many = rate_many  # type: ignore[method-assign]
    [real_listener] = play.on_settled  # the tournaments'

    async def listener(tx: Conn, matches: Sequence[Match]) -> AfterCommit | None:
        after = await real_listener(tx, matches)
        if point == "told":
            kill(point)

        async def then() -> None:  # the first thing after the commit
            if point == "committed":
                kill(point)
            if after is not None:
                await after()

        return then

    play.on_settled[:] = [listener]
    real_drain_soon = tournaments._drain_soon

    def drain_soon(tournament_id: str) -> None:
        if point == "delta":
            kill(point)
        real_drain_soon(tournament_id)

    tournaments._drain_soon = drain_soon  # type: ignore[method-assign]
    carried = 0

    def after_effect(tournament_id: str, effect: dict[str, Any]) -> None:
        nonlocal carried
        carried += 1
        print(f"carried {effect['type']}", flush=True)
        if point == f"effect:{carried}":
            kill(point)

    tournaments.after_effect = after_effect
    real_drain = tournaments.drain

    async def drain(tournament_id: str) -> int:
        done = await real_drain(tournament_id)
        if point == "drained" and done:
            kill(point)
        return done

    tournaments.drain = drain  # type: ignore[method-assign]


async def ladder(flow: Flow, n: int) -> tuple[str, list[list[str]]]:
    match_id = f"ladder-{n}"
    teams = (tuple(LADDER[:1]), tuple(LADDER[1:]))
    assert await flow.play.start_match(match_id, LADDER_QUEUE, teams)
    return match_id, [list(t) for t in teams]


async def main(url: str, which: str, point: str) -> None:
    async with flow_on(url) as flow:
        if which == "ladder":
            match_id, teams = await ladder(flow, 0)
            await flow.play_match(match_id, teams, 0)
            print(f"played {match_id}", flush=True)
            match_id, teams = await ladder(flow, 1)
            winner = 1
        else:
            for p in PLAYERS:
                await flow.fund(p, FUNDS)
            t = await flow.tournaments.create("admin", config(participants_min=4))
            tid = t.id
            now = flow.clock()
            await flow.tournaments.command(tid, lambda x: tm.open_registration(x, now))
            for p in PLAYERS:
                await flow.tournaments.register(tid, p, None, None)
            await flow.tournaments.command(tid, lambda x: tm.seed(x, None, {}, now))
            await flow.tournaments.command(tid, lambda x: tm.start(x, now))
            print(f"tournament {tid}", flush=True)
            semis = 1 if which == "semi" else 2
            for _ in range(semis):
                match_id, _, teams = (await flow.open_matches(tid))[0]
                await flow.play_match(match_id, teams, 0)
                print(f"played {match_id}", flush=True)
            [(match_id, _, teams)] = await flow.open_matches(tid)
            winner = 0
        ranks = [0 if side == winner else 1 for side in range(len(teams))]
        print(f"match {match_id} {json.dumps(ranks)}", flush=True)
        if point != "none":
            kill_at(flow, point)
        await flow.play_match(match_id, teams, winner)
        await flow.play.stop()  # the match's events announced, its server freed
        if point == "done":
            kill(point)
        print("survived", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
