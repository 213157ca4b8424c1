"""``application/problem+json`` (RFC 9457) responses, with a stable machine-readable ``code``."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Final

from starlette.responses import JSONResponse

PROBLEM_JSON: Final = "application/problem+json"


class ProblemResponse(JSONResponse):
    """An RFC 9457 problem document."""

    media_type = PROBLEM_JSON


def problem(
    status: int,
    detail: str | None = None,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    instance: str | None = None,
) -> ProblemResponse:
    """A problem response for ``status``; ``code`` is the stable error code clients switch on."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if code is not None:
        body["code"] = code
    if instance is not None:
        body["instance"] = instance
    return ProblemResponse(body, status_code=status, headers=headers)


def rate_limited(detail: str, wait_ms: int, instance: str | None = None) -> ProblemResponse:
    """429 ``rate_limited`` with ``Retry-After`` in whole seconds, rounded up."""
    return problem(
        429,
        detail,
        code="rate_limited",
        headers={"Retry-After": str(-(-wait_ms // 1000))},
        instance=instance,
    )
