"""HTTP routes of match demos (see :mod:`leetgaming.demos`).

- ``POST /v1/ingest/cs2/{flavor}/{match}/demo``: the plugin's demo upload (the match's ingest
  token; ``Get5-FileName``/``MatchZy-FileName`` and ``…-MapNumber`` headers; the raw file).
- ``POST /v1/ingest/cs2/{flavor}/{match}/backup``: the plugin's round backups (the same token
  and headers, ``…-RoundNumber`` too); ``GET /v1/admin/matches/{match}/backups`` lists them.
- ``POST /v1/admin/matches/{match}/demos?map_number=&filename=`` (admins): the same, by hand.
- ``GET /v1/matches/{match}/demos`` (admins, the match's players): the match's demos, with
  their state and stats; ``GET …/demos/{demo}``: one, with its stats next to the plugin's
  and their differences; ``GET …/demos/{demo}/file``: the file, with range requests.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from leetgaming.auth_api import bearer, unauthorized
from leetgaming.cs2 import Cs2, Cs2Refused
from leetgaming.cs2_api import bearer_token
from leetgaming.demos import DemoRefused, Demos
from leetgaming.identity import Identity
from leetgaming.problems import problem

_RANGE: Final = re.compile(r"^bytes=(\d*)-(\d*)$")
_NO_STORE: Final = {"Cache-Control": "no-store"}


def _map_number(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 4:
        raise DemoRefused(422, "bad_number", "map and round numbers are whole numbers")
    return int(raw)


def demo_routes(
    demos_of: Callable[[], Demos],
    cs2_of: Callable[[], Cs2],
    identity_of: Callable[[], Identity],
    play_of: Callable[[], Any],
) -> list[Route]:
    async def upload(
        request: Request, match: str, source: str, filename: str | None, map_raw: str | None
    ) -> Response:
        demos = demos_of()
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > demos.bytes_max:
            return problem(413, f"demos are at most {demos.bytes_max} bytes", code="too_large")
        try:
            demo, new = await demos.upload(
                match, request.stream(), filename, _map_number(map_raw), source
            )
        except DemoRefused as refused:
            return problem(refused.status, str(refused), code=refused.code)
        return JSONResponse(demo, status_code=201 if new else 200)

    async def from_plugin(request: Request) -> Callable[[str], str | None]:
        """Authorize a plugin's upload with the match's ingest token (Cs2Refused if not);
        its headers by name (``MatchZy-…`` or ``Get5-…``, MatchZy sends both)."""
        flavor, match = request.path_params["flavor"], request.path_params["match"]
        await cs2_of().authorize(flavor, match, bearer_token(request))
        prefix = "Get5" if flavor == "get5" else "MatchZy"
        return lambda name: (
            request.headers.get(f"{prefix}-{name}") or request.headers.get(f"Get5-{name}")
        )

    async def plugin_upload(request: Request) -> Response:
        try:
            header = await from_plugin(request)
        except Cs2Refused as refused:
            return problem(refused.status, str(refused), code=refused.code)
        match, flavor = request.path_params["match"], request.path_params["flavor"]
        return await upload(request, match, flavor, header("FileName"), header("MapNumber"))

    async def plugin_backup(request: Request) -> Response:
        try:
            header = await from_plugin(request)
            backup, new = await demos_of().backup(
                request.path_params["match"],
                request.stream(),
                header("FileName"),
                _map_number(header("MapNumber")),
                _map_number(header("RoundNumber")),
            )
        except (Cs2Refused, DemoRefused) as refused:
            return problem(refused.status, str(refused), code=refused.code)
        return JSONResponse(backup, status_code=201 if new else 200)

    async def backup_listing(request: Request) -> Response:
        claims = bearer(request, identity_of())
        if claims is None:
            return unauthorized()
        if claims.role != "admin" or not claims.mfa:
            return problem(403, "admins only", code="forbidden")
        found = await demos_of().backups(request.path_params["match"])
        return JSONResponse({"backups": found}, headers=_NO_STORE)

    async def admin_upload(request: Request) -> Response:
        claims = bearer(request, identity_of())
        if claims is None:
            return unauthorized()
        if claims.role != "admin" or not claims.mfa:
            return problem(403, "admins only", code="forbidden")
        query = request.query_params
        return await upload(
            request,
            request.path_params["match"],
            "admin",
            query.get("filename"),
            query.get("map_number"),
        )

    async def allowed(request: Request, match: str) -> Response | None:
        """None when the caller may see the match's demos: an admin, or one of its players."""
        claims = bearer(request, identity_of())
        if claims is None:
            return unauthorized()
        if claims.role == "admin" and claims.mfa:
            return None
        loaded = await play_of().load(match)
        if claims.role == "player" and loaded is not None and claims.subject in loaded[0].players:
            return None
        return problem(403, "the match's players and admins only", code="forbidden")

    async def listing(request: Request) -> Response:
        match = request.path_params["match"]
        if (refused := await allowed(request, match)) is not None:
            return refused
        return JSONResponse({"demos": await demos_of().of_match(match)}, headers=_NO_STORE)

    async def one(request: Request) -> Response:
        match = request.path_params["match"]
        if (refused := await allowed(request, match)) is not None:
            return refused
        demo = await demos_of().get(match, request.path_params["demo"])
        if demo is None:
            return problem(404, "no such demo", code="unknown_demo")
        return JSONResponse(demo, headers=_NO_STORE)

    async def download(request: Request) -> Response:
        match = request.path_params["match"]
        if (refused := await allowed(request, match)) is not None:
            return refused
        demos = demos_of()
        found = await demos.blob_of(match, request.path_params["demo"])
        if found is None:
            return problem(404, "no such demo (or it has expired)", code="unknown_demo")
        key, size, filename = found
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        }
        wanted = request.headers.get("range")
        start, end, status = 0, size, 200
        if wanted is not None:
            parsed = _RANGE.match(wanted.strip())
            if parsed is None or parsed.group(1) == parsed.group(2) == "":
                return _unsatisfiable(size)
            first, last = parsed.group(1), parsed.group(2)
            if first == "":  # the last N bytes
                start, end = max(0, size - int(last)), size
            else:
                start = int(first)
                end = size if last == "" else min(size, int(last) + 1)
            if start >= size or start >= end:
                return _unsatisfiable(size)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)

        async def body() -> AsyncIterator[bytes]:
            async for chunk in demos.blobs.read(key, start, end):
                yield chunk

        return StreamingResponse(
            body(), status_code=status, headers=headers, media_type="application/octet-stream"
        )

    return [
        Route("/v1/ingest/cs2/{flavor}/{match}/demo", plugin_upload, methods=["POST"]),
        Route("/v1/ingest/cs2/{flavor}/{match}/backup", plugin_backup, methods=["POST"]),
        Route("/v1/admin/matches/{match}/demos", admin_upload, methods=["POST"]),
        Route("/v1/admin/matches/{match}/backups", backup_listing, methods=["GET"]),
        Route("/v1/matches/{match}/demos", listing, methods=["GET"]),
        Route("/v1/matches/{match}/demos/{demo}", one, methods=["GET"]),
        Route("/v1/matches/{match}/demos/{demo}/file", download, methods=["GET"]),
    ]


def _unsatisfiable(size: int) -> Response:
    return problem(
        416,
        "the range is not within the file",
        code="bad_range",
        headers={"Content-Range": f"bytes */{size}"},
    )
