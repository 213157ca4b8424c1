"""Pro subscriptions over REST: subscribe (idempotent, paid from the USD balance), read the
current one, cancel at the period's end, take the cancellation back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leetgaming.idempotency_store import IdempotencyKeys
from leetgaming.identity import Identity
from leetgaming.problems import problem
from leetgaming.subscriptions import Subscriptions, subscription_json
from leetgaming.tokens import AccessClaims
from leetgaming.wallet_api import guard, idempotent

_PRIVATE: Final = {"Cache-Control": "private, no-store"}


def subscription_routes(
    subscriptions_of: Callable[[], Subscriptions],
    identity_of: Callable[[], Identity],
    keys_of: Callable[[], IdempotencyKeys],
    clock_s: Callable[[], float] = time.time,
) -> list[Route]:
    player = guard(identity_of, "player")

    def answer(sub: Any, status: int = 200) -> Response:
        return JSONResponse(
            subscription_json(sub, int(clock_s())), status_code=status, headers=_PRIVATE
        )

    async def subscribe(
        request: Request, claims: AccessClaims, body: dict[str, Any], key: str
    ) -> Response:
        sub = await subscriptions_of().subscribe(claims.subject, key, body.get("plan"))
        return answer(sub, 201)

    @player
    async def current(request: Request, claims: AccessClaims) -> Response:
        sub = await subscriptions_of().current(claims.subject)
        if sub is None:
            return problem(404, "you have never subscribed", code="not_found")
        return answer(sub)

    @player
    async def cancel(request: Request, claims: AccessClaims) -> Response:
        return answer(await subscriptions_of().cancel(claims.subject))

    @player
    async def resume(request: Request, claims: AccessClaims) -> Response:
        return answer(await subscriptions_of().resume(claims.subject))

    return [
        Route(
            "/v1/subscriptions",
            player(idempotent(keys_of, clock_s, subscribe, "plan")),
            methods=["POST"],
        ),
        Route("/v1/subscriptions/current", current, methods=["GET"]),
        Route("/v1/subscriptions/current/cancel", cancel, methods=["POST"]),
        Route("/v1/subscriptions/current/resume", resume, methods=["POST"]),
    ]
