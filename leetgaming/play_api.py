"""Public REST reads of playing: leaderboards and rating histories (anyone may read them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leetgaming.play import LEADERBOARD_ROWS_MAX, Play
from leetgaming.problems import problem

_MODE: Final = re.compile(r"^[a-z0-9_-]{1,32}:[a-z0-9_-]{1,32}$")


def play_routes(play_of: Callable[[], Play]) -> list[Route]:
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
    ]
