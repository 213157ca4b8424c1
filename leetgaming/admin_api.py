"""The admin portal's live figures: ``GET /v1/admin/figures``.

What the operators watch: websocket connections (this node's), each queue's waiting tickets and
the wait to expect, the matches in their ready check, finding a server or live (every node's,
from the database), the tournaments running, and the ledger writer's counters (this process's:
the portal turns two readings into transfers per second).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leetgaming.identity import Identity
from leetgaming.play import Play
from leetgaming.tokens import AccessClaims
from leetgaming.wallet_api import guard

_OPEN_STATES = ("ready_check", "allocating", "live")


def admin_routes(
    identity_of: Callable[[], Identity],
    play_of: Callable[[], Play],
    hub_of: Callable[[], Any],
    ledger_stats: Callable[[], dict[str, int]],
    clock_s: Callable[[], float] = time.time,
) -> list[Route]:
    admin = guard(identity_of, "admin")

    @admin
    async def figures(request: Request, claims: AccessClaims) -> Response:
        play = play_of()
        rows = await play.db.fetch(
            "SELECT state, COUNT(*) FROM matches WHERE state IN (?, ?, ?) GROUP BY state",
            *_OPEN_STATES,
        )
        counted = {str(state): int(n) for state, n in rows}
        running = await play.db.fetchone(
            "SELECT COUNT(*) FROM tournaments WHERE phase IN (?, ?)", "running", "check_in"
        )
        hub = hub_of()
        return JSONResponse(
            {
                "at_s": clock_s(),
                "node": hub.node_id,
                "connections": hub.connections_open(),
                "queues": [
                    {"queue": name, **await play.queue_figures(name)}
                    for name in sorted(play.queues)
                ],
                "matches": {state: counted.get(state, 0) for state in _OPEN_STATES},
                "tournaments_running": int(running[0]) if running else 0,
                "ledger": ledger_stats(),
            },
            headers={"Cache-Control": "no-store"},
        )

    return [Route("/v1/admin/figures", figures, methods=["GET"])]
