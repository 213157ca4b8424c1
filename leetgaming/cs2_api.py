"""HTTP routes of CS2 servers (see :mod:`leetgaming.cs2`).

- ``GET /v1/matches/{match}/config/{flavor}``: the plugin's match config, for the single-use
  config token in ``Authorization: Bearer``; ``Cache-Control: no-store``.
- ``POST /v1/ingest/cs2/{flavor}/{match}``: the plugin's event log (the match's ingest token).
  200 ``{"accepted": true, "duplicate": …, "applied": …}`` once stored; problems otherwise.
- ``GET /v1/matches/{match}/live`` (anyone): the public feed's latest body and the series'
  public view as the public has seen it so far (both as delayed), and the delay
  (:mod:`leetgaming.spectators`).
- ``GET /v1/matches/{match}/cs2`` (admins): the series as the plugin reported it, with its
  players' stats; ``GET /v1/matches/{match}/cs2/events`` (admins): the stored event log.
- ``/v1/admin/cs2-servers`` (admins): register (POST), list (GET), remove (DELETE /{id}).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leetgaming.audit import AuditLog
from leetgaming.auth_api import Refused, json_body
from leetgaming.cs2 import EVENT_BYTES_MAX, Cs2, Cs2Refused
from leetgaming.identity import Identity
from leetgaming.problems import problem
from leetgaming.tokens import AccessClaims
from leetgaming.wallet_api import guard

_NO_STORE = {"Cache-Control": "no-store"}
EVENTS_PAGE_MAX = 1000


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def read_limited(request: Request, limit_bytes: int) -> bytes:
    """The body, refused (413) past ``limit_bytes`` without reading the rest."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit_bytes:
            raise Cs2Refused(413, "body_too_large", f"bodies are at most {limit_bytes} bytes")
    return bytes(raw)


def _refused(refused: Cs2Refused) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="leetgaming"'} if refused.status == 401 else None
    return problem(refused.status, str(refused), code=refused.code, headers=headers)


def cs2_routes(
    cs2_of: Callable[[], Cs2],
    identity_of: Callable[[], Identity],
    audit_of: Callable[[], AuditLog],
) -> list[Route]:
    admin = guard(identity_of, "admin")

    async def config(request: Request) -> Response:
        try:
            body = await cs2_of().config(
                request.path_params["match"], request.path_params["flavor"], bearer_token(request)
            )
        except Cs2Refused as refused:
            return _refused(refused)
        return JSONResponse(body, headers=_NO_STORE)

    async def ingest(request: Request) -> Response:
        cs2 = cs2_of()
        flavor, match = request.path_params["flavor"], request.path_params["match"]
        try:
            _, number = await cs2.authorize(flavor, match, bearer_token(request))
            raw = await read_limited(request, EVENT_BYTES_MAX)
            accepted = await cs2.ingest_authorized(flavor, match, number, raw)
        except Cs2Refused as refused:
            return _refused(refused)
        return Response(
            orjson.dumps(
                {
                    "accepted": True,
                    "duplicate": accepted.duplicate,
                    "applied": accepted.applied,
                    "seq": accepted.seq,
                }
            ),
            media_type="application/json",
        )

    async def live(request: Request) -> Response:
        cs2 = cs2_of()
        match = request.path_params["match"]
        delay = await cs2.delay_of(match)
        if delay is None:
            return problem(404, "no CS2 series for this match", code="unknown_match")
        latest = await cs2.feed.snapshot(match)
        series = await cs2.feed.public_snapshot(f"match:{match}")
        return JSONResponse(
            {"match": match, "delay_s": delay, "latest": latest, "series": series},
            headers=_NO_STORE,
        )

    @admin
    async def series(request: Request, claims: AccessClaims) -> Response:
        found = await cs2_of().series(request.path_params["match"])
        if found is None:
            return problem(404, "no CS2 series for this match", code="unknown_match")
        return JSONResponse(found, headers=_NO_STORE)

    @admin
    async def events(request: Request, claims: AccessClaims) -> Response:
        after, limit = request.query_params.get("after", "0"), request.query_params.get("limit")
        limit = limit or "100"
        if not after.isdigit() or not limit.isdigit() or not 1 <= int(limit) <= EVENTS_PAGE_MAX:
            return problem(422, f"after is a seq, limit 1..{EVENTS_PAGE_MAX}", code="bad_query")
        rows = await cs2_of().events(request.path_params["match"], int(after), int(limit))
        return JSONResponse({"events": rows}, headers=_NO_STORE)

    @admin
    async def servers(request: Request, claims: AccessClaims) -> Response:
        cs2 = cs2_of()
        if request.method == "GET":
            return JSONResponse({"servers": [s.as_json() for s in await cs2.list_servers()]})
        try:
            body = await json_body(
                request,
                "name",
                "flavor",
                "region",
                "address",
                "rcon_host",
                "rcon_port",
                "rcon_password",
            )
            server = await cs2.add_server(claims.subject, body)
        except Refused as refused:
            return refused.response
        except Cs2Refused as refused:
            return _refused(refused)
        await audit_of().append(None, claims.subject, "cs2_server.add", server.id, server.as_json())
        return JSONResponse(server.as_json(), status_code=201)

    @admin
    async def remove_server(request: Request, claims: AccessClaims) -> Response:
        server_id = request.path_params["server"]
        if not await cs2_of().remove_server(server_id):
            return problem(404, "no such CS2 server", code="unknown_server")
        await audit_of().append(None, claims.subject, "cs2_server.remove", server_id, {})
        return Response(status_code=204)

    return [
        Route("/v1/matches/{match}/config/{flavor}", config, methods=["GET"]),
        Route("/v1/ingest/cs2/{flavor}/{match}", ingest, methods=["POST"]),
        Route("/v1/matches/{match}/live", live, methods=["GET"]),
        Route("/v1/matches/{match}/cs2", series, methods=["GET"]),
        Route("/v1/matches/{match}/cs2/events", events, methods=["GET"]),
        Route("/v1/admin/cs2-servers", servers, methods=["GET", "POST"]),
        Route("/v1/admin/cs2-servers/{server}", remove_server, methods=["DELETE"]),
    ]
