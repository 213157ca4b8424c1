"""A process that plays a paid tournament to its last match and is SIGKILLed while carrying
out what the final result set off: after the ``kill_after``-th outbox row of that drain (0:
right after the final result's transaction committed, before any row is carried out).

    python -m tests.leetgaming.tournament_crash_worker DATABASE_URL KILL_AFTER

Prints ``tournament <id>`` before the final match and ``carried <type>`` after each row, then
dies (or prints ``survived`` when the drain had fewer rows than ``kill_after``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from matchmaking import tournament as tm

from .tournament_flow import config, flow_on

PLAYERS = [f"p{i}" for i in range(5)]
FUNDS = 10_000


async def main(url: str, kill_after: int) -> None:
    async with flow_on(url) as flow:
        for p in PLAYERS:
            await flow.fund(p, FUNDS)
        t = await flow.tournaments.create("admin", config(participants_min=3))
        tid = t.id
        now = flow.clock()
        await flow.tournaments.command(tid, lambda x: tm.open_registration(x, now))
        for p in PLAYERS:
            await flow.tournaments.register(tid, p, None, None)
        await flow.tournaments.command(tid, lambda x: tm.seed(x, None, {}, now))
        await flow.tournaments.command(tid, lambda x: tm.start(x, now))
        print(f"tournament {tid}", flush=True)
        while len(matches := await flow.open_matches(tid)) > 1 or (
            matches and not matches[0][0].startswith(f"t.{tid}.U3-1.")
        ):
            match_id, _, teams = matches[0]
            await flow.play_match(match_id, teams, 0)
        [(final, _, teams)] = await flow.open_matches(tid)
        carried = 0

        def after(tournament: str, effect: dict[str, Any]) -> None:
            nonlocal carried
            carried += 1
            print(f"carried {effect['type']}", flush=True)
            if carried >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

        if kill_after == 0:
            real = flow.tournaments.drain

            async def die(tournament: str) -> int:
                os.kill(os.getpid(), signal.SIGKILL)
                return await real(tournament)

            flow.tournaments.drain = die  # type: ignore[method-assign]
        flow.tournaments.after_effect = after
        await flow.play_match(final, teams, 0)
        print("survived", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
