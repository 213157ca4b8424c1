"""Playing over REST: public reads (leaderboards, rating histories) and, for a player with an
access token, their queue ticket (the same calls as ``queue.join`` / ``queue.status`` /
``queue.leave`` on the websocket, with the same rules and refusals, as problem+json)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledger import derive_id
from leetgaming.auth_api import Refused, bearer, json_body, unauthorized
from leetgaming.idempotency_store import IdempotencyKeys
from leetgaming.identity import Identity
from leetgaming.play import LEADERBOARD_ROWS_MAX, Play
from leetgaming.problems import problem
from leetgaming.tokens import AccessClaims
from leetgaming.wallet_api import guard, idempotent
from matchmaking.service import QueueConfig
from realtime.channel import Principal, Role
from realtime.server import RpcError

_MODE: Final = re.compile(r"^[a-z0-9_-]{1,32}:[a-z0-9_-]{1,32}$")
# The HTTP status of each refusal of a call (anything else refused: 409, a conflict with the
# player's current state).
_STATUS: Final = {
    "bad_params": 422,
    "unknown_queue": 404,
    "forbidden": 403,
    "not_party_leader": 403,
    "rate_limited": 429,
}


PLAYER_ID_CHARS_MAX: Final = 64
BEST_OF: Final = (1, 3, 5, 7)


def match_teams(
    body: dict[str, Any], queues: Mapping[str, QueueConfig]
) -> tuple[str, tuple[tuple[str, ...], ...], int]:
    """The queue, teams and series length of an organizer's match, or :class:`Refused`."""

    def bad(message: str) -> Refused:
        return Refused(problem(422, message, code="bad_match"))

    queue = body.get("queue")
    if not isinstance(queue, str) or queue not in queues:
        raise Refused(problem(404, "no such queue", code="unknown_queue"))
    size = queues[queue].rules.team_size
    teams = body.get("teams")
    if (
        not isinstance(teams, list)
        or len(teams) != 2
        or not all(isinstance(t, list) and len(t) == size for t in teams)
    ):
        raise bad(f"teams is two lists of {size} player ids")
    players = [p for t in teams for p in t]
    if not all(
        isinstance(p, str) and 0 < len(p) <= PLAYER_ID_CHARS_MAX and p.isprintable()
        for p in players
    ):
        raise bad(f"a player id is a string of 1..{PLAYER_ID_CHARS_MAX} characters")
    if len(set(players)) != len(players):
        raise bad("a player plays on one side once")
    best_of = body.get("best_of", 1)
    if best_of not in BEST_OF or type(best_of) is not int:
        raise bad("best_of is 1, 3, 5 or 7")
    return queue, tuple(tuple(t) for t in teams), best_of


def play_routes(
    play_of: Callable[[], Play],
    identity_of: Callable[[], Identity],
    keys_of: Callable[[], IdempotencyKeys] | None = None,
) -> list[Route]:
    async def as_player(request: Request, method: str, params: dict[str, object]) -> Response:
        claims = bearer(request, identity_of())
        if claims is None:
            return unauthorized()
        principal = Principal(Role(claims.role), claims.subject)
        try:
            result = await play_of().call(principal, method, params)
        except RpcError as refused:
            return problem(_STATUS.get(refused.code, 409), str(refused), code=refused.code)
        return JSONResponse(result, status_code=201 if method == "queue.join" else 200)

    async def ticket_create(request: Request) -> Response:
        claims = bearer(request, identity_of())  # who first: a body is read for players only
        if claims is None:
            return unauthorized()
        if claims.role != "player":
            return problem(403, "players queue; this token is not a player's", code="forbidden")
        try:
            body = await json_body(request, "queue")
        except Refused as refused:
            return refused.response
        return await as_player(request, "queue.join", body)

    async def ticket_current(request: Request) -> Response:
        return await as_player(request, "queue.status", {})

    async def ticket_cancel(request: Request) -> Response:
        return await as_player(request, "queue.leave", {})

    def mode_of(request: Request) -> str | None:
        mode = str(request.path_params["mode"])
        return mode if _MODE.match(mode) else None

    async def leaderboard(request: Request) -> Response:
        mode = mode_of(request)
        if mode is None:
            return problem(404, "modes are game:mode, e.g. cs2:5v5", code="unknown_mode")
        raw = request.query_params.get("limit", "50")
        if not raw.isdigit() or not 1 <= int(raw) <= LEADERBOARD_ROWS_MAX:
            return problem(422, f"limit is 1..{LEADERBOARD_ROWS_MAX}", code="bad_limit")
        rows = await play_of().leaderboard(mode, int(raw))
        return JSONResponse({"mode": mode, "players": rows})

    async def history(request: Request) -> Response:
        mode = mode_of(request)
        if mode is None:
            return problem(404, "modes are game:mode, e.g. cs2:5v5", code="unknown_mode")
        player = str(request.path_params["player"])
        rows = await play_of().rating_history(player, mode)
        return JSONResponse({"player": player, "mode": mode, "history": rows})

    async def create_match(
        request: Request, claims: AccessClaims, body: dict[str, Any], key: str
    ) -> Response:
        play = play_of()
        queue, teams, best_of = match_teams(body, play.queues)
        match_id = f"m.custom.{derive_id('match.custom', claims.subject, key):032x}"
        await play.start_match(match_id, queue, teams, best_of)
        return JSONResponse(
            {
                "match": match_id,
                "queue": queue,
                "teams": [list(t) for t in teams],
                "best_of": best_of,
            },
            status_code=201,
        )

    async def list_queues(request: Request) -> Response:
        play = play_of()
        return JSONResponse(
            {
                "queues": [
                    {
                        "queue": name,
                        "team_size": q.rules.team_size,
                        "teams": q.rules.teams,
                        "ready_check_s": q.ready_check_s,
                        **await play.queue_figures(name),
                    }
                    for name, q in sorted(play.queues.items())
                ]
            },
            headers={"Cache-Control": "no-store"},
        )

    routes = [
        Route("/v1/queues", list_queues, methods=["GET"]),
        Route("/v1/leaderboards/{mode}", leaderboard, methods=["GET"]),
        Route("/v1/players/{player}/ratings/{mode}", history, methods=["GET"]),
        Route("/v1/tickets", ticket_create, methods=["POST"]),
        Route("/v1/tickets/current", ticket_current, methods=["GET"]),
        Route("/v1/tickets/current", ticket_cancel, methods=["DELETE"]),
    ]
    if keys_of is not None:
        admin_match = guard(identity_of, "admin")(
            idempotent(keys_of, time.time, create_match, "queue", "teams", "best_of")
        )
        routes.append(Route("/v1/admin/matches", admin_match, methods=["POST"]))
    return routes
