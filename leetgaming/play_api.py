"""Playing over REST: public reads (leaderboards, rating histories) and, for a player with an
access token, their queue ticket (the same calls as ``queue.join`` / ``queue.status`` /
``queue.leave`` on the websocket, with the same rules and refusals, as problem+json)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leetgaming.auth_api import Refused, bearer, json_body, unauthorized
from leetgaming.identity import Identity
from leetgaming.play import LEADERBOARD_ROWS_MAX, Play
from leetgaming.problems import problem
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


def play_routes(play_of: Callable[[], Play], identity_of: Callable[[], Identity]) -> list[Route]:
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

    return [
        Route("/v1/leaderboards/{mode}", leaderboard, methods=["GET"]),
        Route("/v1/players/{player}/ratings/{mode}", history, methods=["GET"]),
        Route("/v1/tickets", ticket_create, methods=["POST"]),
        Route("/v1/tickets/current", ticket_current, methods=["GET"]),
        Route("/v1/tickets/current", ticket_cancel, methods=["DELETE"]),
    ]
