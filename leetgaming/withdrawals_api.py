"""Withdrawals and two-factor enrolment over REST: players ask, confirm with TOTP, cancel and
read their withdrawals; admins see the queue that waits for them, approve and reject. Every
step is in the audit log; a refused request changes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leetgaming.auth_api import json_body
from leetgaming.idempotency_store import IdempotencyKeys
from leetgaming.identity import Identity
from leetgaming.problems import problem
from leetgaming.tokens import AccessClaims
from leetgaming.two_factor import TwoFactor
from leetgaming.wallet_api import guard, idempotent
from leetgaming.withdrawals import Withdrawals, withdrawal_json
from wallet import withdrawals as wd
from wallet.amounts import parse_minor

_PRIVATE: Final = {"Cache-Control": "private, no-store"}
_QUEUES: Final = {
    "approval": (str(wd.State.AWAITING_APPROVAL),),
    "review": (str(wd.State.IN_REVIEW),),
    "all": (str(wd.State.AWAITING_APPROVAL), str(wd.State.IN_REVIEW)),
}


def withdrawal_routes(
    withdrawals_of: Callable[[], Withdrawals],
    identity_of: Callable[[], Identity],
    keys_of: Callable[[], IdempotencyKeys],
    clock_s: Callable[[], float] = time.time,
) -> list[Route]:
    player = guard(identity_of, "player")
    admin = guard(identity_of, "admin")

    async def ask(
        request: Request, claims: AccessClaims, body: dict[str, Any], key: str
    ) -> Response:
        if not isinstance(body.get("asset"), str):
            return problem(422, "asset is an asset code", code="bad_asset")
        amount = parse_minor(body.get("amount"))
        w = await withdrawals_of().request(
            claims.subject,
            key,
            body["asset"],
            amount,
            str(body.get("rail")),
            body.get("destination"),
        )
        return JSONResponse(withdrawal_json(w), status_code=201, headers=_PRIVATE)

    post_withdrawal = player(
        idempotent(keys_of, clock_s, ask, "asset", "amount", "rail", "destination")
    )

    @player
    async def get_withdrawal(request: Request, claims: AccessClaims) -> Response:
        found = await withdrawals_of().get(request.path_params["withdrawal_id"])
        if found is None or not found[1] or found[0].player != claims.subject:
            return problem(404, "no such withdrawal", code="not_found")
        return JSONResponse(withdrawal_json(found[0]), headers=_PRIVATE)

    @player
    async def confirm(request: Request, claims: AccessClaims) -> Response:
        body = await json_body(request, "code")
        w = await withdrawals_of().confirm(
            claims.subject, request.path_params["withdrawal_id"], body.get("code")
        )
        return JSONResponse(withdrawal_json(w), headers=_PRIVATE)

    @player
    async def cancel(request: Request, claims: AccessClaims) -> Response:
        w = await withdrawals_of().cancel(claims.subject, request.path_params["withdrawal_id"])
        return JSONResponse(withdrawal_json(w), headers=_PRIVATE)

    # an admin enrols with a password-only session: the one thing such a session may do
    enrolling = guard(identity_of, "player", "admin", mfa_exempt=True)

    def two_factor() -> TwoFactor:
        return withdrawals_of().two_factor

    @enrolling
    async def enrol(request: Request, claims: AccessClaims) -> Response:
        secret, uri = await two_factor().enrol(claims.subject)
        return JSONResponse(
            {"secret": secret, "otpauth_uri": uri, "detail": "confirm with a first code"},
            status_code=201,
            headers=_PRIVATE,
        )

    @enrolling
    async def confirm_enrolment(request: Request, claims: AccessClaims) -> Response:
        body = await json_body(request, "code")
        await two_factor().check(claims.subject, body.get("code"), enrolling=True)
        return JSONResponse({"totp": "on"}, headers=_PRIVATE)

    @admin
    async def queue(request: Request, claims: AccessClaims) -> Response:
        which = request.query_params.get("queue", "all")
        if which not in _QUEUES:
            return problem(422, f"queue is one of {', '.join(_QUEUES)}", code="bad_query")
        rows = await withdrawals_of().queue(_QUEUES[which])
        return JSONResponse(
            {"withdrawals": [withdrawal_json(w) | {"player": w.player} for w in rows]},
            headers=_PRIVATE,
        )

    @admin
    async def decide(request: Request, claims: AccessClaims) -> Response:
        wid, action = request.path_params["withdrawal_id"], request.path_params["action"]
        service = withdrawals_of()
        if action == "approve":
            w = await service.approve(claims.subject, wid)
        elif action == "reject":
            w = await service.reject(claims.subject, wid)
        else:
            return problem(404, "the actions are approve and reject", code="not_found")
        return JSONResponse(withdrawal_json(w) | {"player": w.player}, headers=_PRIVATE)

    return [
        Route("/v1/withdrawals", post_withdrawal, methods=["POST"]),
        Route("/v1/withdrawals/{withdrawal_id}", get_withdrawal, methods=["GET"]),
        Route("/v1/withdrawals/{withdrawal_id}/confirm", confirm, methods=["POST"]),
        Route("/v1/withdrawals/{withdrawal_id}/cancel", cancel, methods=["POST"]),
        Route("/v1/me/totp", enrol, methods=["POST"]),
        Route("/v1/me/totp/confirm", confirm_enrolment, methods=["POST"]),
        Route("/v1/admin/withdrawals", queue, methods=["GET"]),
        Route("/v1/admin/withdrawals/{withdrawal_id}/{action}", decide, methods=["POST"]),
    ]
