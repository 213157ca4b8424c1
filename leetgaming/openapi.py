"""The OpenAPI 3.1 document of the REST API (``GET /openapi.json``) and its readable page
(``GET /docs``, rendered here from the same document: no script, no CDN).

The document is written by hand next to the routes, with small builders for what every route
repeats (problem responses, bearer auth, amounts as strings of the smallest unit); the test
suite checks that every documented path is routed and every routed path is documented, and
checks responses against it.
"""

from __future__ import annotations

import html
from typing import Any, Final

PROBLEM: Final = "application/problem+json"
JSON: Final = "application/json"

_AMOUNT = {"type": "string", "pattern": "^-?[0-9]+$", "description": "smallest units"}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": _STR,
        "title": _STR,
        "status": _INT,
        "detail": _STR,
        "code": {"type": "string", "description": "stable, machine-readable"},
        "instance": _STR,
    },
}
_MONEY_ROW = _obj(
    ["asset", "scale", "decimal", "available", "held", "incoming", "total"],
    asset=_STR,
    scale=_INT,
    decimal={"type": "string", "description": "available, in whole units"},
    available=_AMOUNT,
    held=_AMOUNT,
    incoming=_AMOUNT,
    total=_AMOUNT,
    expires={
        "type": "array",
        "description": "game credits: what expires when (oldest are used first)",
        "items": _obj(["on", "amount"], on={"type": "string", "format": "date"}, amount=_AMOUNT),
    },
)
_TRANSACTION = _obj(
    [
        "id",
        "timestamp_ns",
        "kind",
        "state",
        "asset",
        "amount",
        "scale",
        "decimal",
        "ledger_transfer",
    ],
    id={"type": "string", "format": "uuid"},
    timestamp_ns={"type": "string", "pattern": "^[0-9]+$"},
    kind=_STR,
    state={"enum": ["posted", "held", "hold_posted", "hold_released", "hold_expired"]},
    asset=_STR,
    amount=_AMOUNT,
    scale=_INT,
    decimal=_STR,
    pending_id=_nullable({"type": "string", "format": "uuid"}),
    ledger_transfer=_STR,
)
_PRICE = _obj(
    ["asset", "price_usd", "set_at_s"],
    asset=_STR,
    price_usd={"type": "string", "pattern": "^[0-9]+(\\.[0-9]{1,8})?$"},
    set_at_s=_INT,
)
_AUDIT_ENTRY = _obj(
    ["id", "at_ns", "actor", "action", "subject", "detail"],
    id=_STR,
    at_ns=_STR,
    actor=_STR,
    action=_STR,
    subject=_STR,
    detail={"type": "object"},
)


_INCOMING = _obj(
    ["chain", "tx_hash", "log_index", "block", "asset", "amount", "confirmations_needed"],
    chain=_STR,
    tx_hash=_STR,
    log_index=_INT,
    block=_INT,
    asset=_STR,
    amount=_AMOUNT,
    confirmations_needed=_INT,
)
_DEPOSIT_ADDRESS = _obj(
    ["chain", "chain_id", "address", "assets", "confirmations", "incoming"],
    chain=_STR,
    chain_id=_INT,
    address={"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"},
    assets={"type": "array", "items": _STR},
    confirmations=_INT,
    incoming={"type": "array", "items": _INCOMING},
)
_SUBSCRIPTION = _obj(
    ["id", "plan", "state", "price", "period_start_s", "period_end_s", "renews", "pro"],
    id=_STR,
    plan={"const": "pro"},
    state={"enum": ["active", "cancelling", "lapsed", "ended"]},
    price=_obj(["asset", "amount", "per"], asset=_STR, amount=_AMOUNT, per={"const": "month"}),
    period_start_s=_INT,
    period_end_s=_INT,
    renews={"type": "boolean"},
    pro={"type": "boolean"},
)
_DEPOSIT = _obj(
    ["id", "method", "state", "asset", "amount", "fee", "net", "reversed"],
    id=_STR,
    method={"enum": ["card", "chain"]},
    state={"enum": ["created", "pending", "succeeded", "failed", "reversed"]},
    asset=_STR,
    amount=_AMOUNT,
    fee=_AMOUNT,
    net=_AMOUNT,
    reversed=_AMOUNT,
)
_WITHDRAWAL = _obj(
    [
        "id",
        "state",
        "asset",
        "amount",
        "fee",
        "payout",
        "rail",
        "destination",
        "needs_approval",
        "risk_score",
        "risk_reasons",
        "approved_by",
        "provider_ref",
        "history",
    ],
    id=_STR,
    state={
        "enum": [
            "awaiting_totp",
            "awaiting_approval",
            "in_review",
            "approved",
            "sending",
            "sent",
            "failed",
            "rejected",
            "cancelled",
            "returned",
        ]
    },
    asset=_STR,
    amount=_AMOUNT,
    fee=_AMOUNT,
    payout=_AMOUNT,
    rail=_STR,
    destination=_STR,
    needs_approval={"type": "boolean"},
    risk_score=_INT,
    risk_reasons={"type": "array", "items": _STR},
    approved_by=_nullable(_STR),
    provider_ref=_nullable(
        {"type": "string", "description": "the Stripe refund, or the chain transaction's hash"}
    ),
    history={"type": "array", "items": _obj(["state", "by"], state=_STR, by=_STR)},
    player=_STR,
)
_CODE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["code"],
                "properties": {"code": {"type": "string", "pattern": "^[0-9]{6}$"}},
                "additionalProperties": False,
            }
        }
    },
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": (
        "one value per operation: a retry with the same key and body gets the first answer "
        "(Idempotent-Replayed: true); the same key with another body is refused (422); "
        "keys are kept 24 hours"
    ),
}


_AMOUNT_IN = {
    "anyOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": "^[0-9]{1,40}$"},
    ],
    "description": "smallest units",
}


def _body(required: list[str], **properties: Any) -> dict[str, Any]:
    """A required JSON request body of exactly these properties."""
    schema = {**_obj(required, **properties), "additionalProperties": False}
    return {"required": True, "content": {JSON: {"schema": schema}}}


def _problems(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {
            "description": "refused",
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for s in statuses
    }


def _ok(schema: dict[str, Any], status: int = 200, description: str = "ok") -> dict[str, Any]:
    return {str(status): {"description": description, "content": {JSON: {"schema": schema}}}}


def _linked(
    responses: dict[str, Any], status: int, parameter: str, **targets: str
) -> dict[str, Any]:
    """``responses`` with OpenAPI links from the ``status`` response to ``targets`` (name: a
    path and method, ``/v1/deposits/{deposit_id} get``), passing the body's ``id`` as
    ``parameter``: what a stateful test follows (create, then read or act on what was made)."""
    links = {}
    for name, target in targets.items():
        path, method = target.rsplit(" ", 1)
        pointer = path.replace("~", "~0").replace("/", "~1")
        links[name] = {
            "operationRef": f"#/paths/{pointer}/{method}",
            "parameters": {parameter: "$response.body#/id"},
        }
    response = responses[str(status)]
    return {**responses, str(status): {**response, "links": links}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": _STR,
        "description": description,
    }


_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_CS2_SERVER = _obj(
    ["id", "flavor", "region", "address", "rcon"],
    id=_STR,
    flavor=_STR,
    region=_STR,
    address=_STR,
    rcon=_STR,
)

_SESSION = _obj(
    ["subject", "role", "access_token", "token_type", "expires_in", "refresh_token"],
    subject=_STR,
    role={"enum": ["player", "admin"]},
    access_token=_STR,
    token_type={"const": "Bearer"},
    expires_in=_INT,
    refresh_token=_STR,
    device_token=_STR,  # a password sign-in's: send it with the next sign-in from this device
)
_REDIRECT = {"description": "a redirect (Location)", "headers": {"Location": {"schema": _STR}}}


def _session_route(summary: str, required: list[str], *extra: int, **fields: Any) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "tags": ["identity"],
            "requestBody": _body(required, **fields),
            "responses": {**_ok(_SESSION), **_problems(400, 401, 413, 422, 429, *extra)},
        }
    }


_IDENTITY_PATHS: dict[str, Any] = {
    "/v1/auth/register": {
        "post": {
            "summary": (
                "Register: always 202, taken or not; the address gets a link to confirm (or a "
                "notice that it has an account)"
            ),
            "tags": ["identity"],
            "requestBody": _body(["email", "password"], email=_STR, password=_STR),
            "responses": {
                **_ok(_obj(["status", "detail"], status=_STR, detail=_STR), 202),
                **_problems(400, 413, 422, 429),
            },
        }
    },
    "/v1/auth/confirm": _session_route(
        "Confirm a registration with the mailed token: the account and a session",
        ["token"],
        token=_STR,
    ),
    "/v1/auth/login": _session_route(
        (
            "Sign in with email and password (one 401 for every refusal); an admin who has "
            "enrolled adds a TOTP code, without which admin routes refuse the session. The "
            "answer's device_token, sent with the next sign-in to the same address, counts that "
            "sign-in against the device's own limit, so guesses at the account from elsewhere "
            "do not lock its owner out"
        ),
        ["email", "password"],
        email=_STR,
        password=_STR,
        totp=_STR,
        device_token=_STR,
    ),
    "/v1/auth/refresh": _session_route(
        "A new session pair; the refresh token is spent (reusing it ends the session)",
        ["refresh_token"],
        refresh_token=_STR,
    ),
    "/v1/auth/logout": {
        "post": {
            "summary": "End the session of a refresh token",
            "tags": ["identity"],
            "requestBody": _body(["refresh_token"], refresh_token=_STR),
            "responses": {"204": {"description": "ended"}, **_problems(400, 413, 422)},
        }
    },
    "/v1/auth/google": _session_route(
        "Sign in with a Google ID token (checked against Google's published keys)",
        ["id_token"],
        404,
        409,
        503,
        id_token=_STR,
    ),
    "/v1/auth/exchange": _session_route(
        "Turn the one-time login code of a Steam sign-in into a session",
        ["code"],
        code=_STR,
    ),
    "/v1/auth/providers": {
        "get": {
            "summary": "Which sign-in providers this server offers (Google's client id, Steam)",
            "tags": ["identity"],
            "responses": _ok(
                _obj(
                    ["google", "steam"],
                    google=_nullable(_obj(["client_id", "gsi_url"], client_id=_STR, gsi_url=_STR)),
                    steam={"type": "boolean"},
                )
            ),
        }
    },
    "/v1/auth/steam/start": {
        "get": {
            "summary": "Sign in with Steam: redirects to Steam's OpenID 2.0 login",
            "tags": ["identity"],
            "responses": {"302": _REDIRECT, **_problems(404)},
        }
    },
    "/v1/auth/steam/callback": {
        "get": {
            "summary": (
                "Where Steam sends the browser back: verified with Steam, then a redirect to the "
                "portal with #login_code=… (or #login_error=…)"
            ),
            "tags": ["identity"],
            "responses": {"303": _REDIRECT, **_problems(404, 429)},
        }
    },
    "/v1/me": {
        "get": {
            "summary": "Who the access token belongs to",
            "tags": ["identity"],
            "security": _BEARER,
            "responses": {
                **_ok(_obj(["subject", "role"], subject=_STR, role=_STR, email=_STR)),
                **_problems(401),
            },
        }
    },
}


def document(version: str) -> dict[str, Any]:
    """The OpenAPI document of this server."""
    probe = _obj(["status"], status=_STR, checks={"type": "object"})
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {
                "summary": "Liveness: the process serves HTTP",
                "tags": ["operations"],
                "responses": _ok(probe),
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the database (and Redis when configured) answer",
                "tags": ["operations"],
                "responses": {
                    **_ok(probe),
                    "503": {"description": "not ready", "content": {JSON: {"schema": probe}}},
                },
            }
        },
        "/v1/deposits": {
            "get": {
                "summary": "Your deposits, newest first (the last 50): card refunds go to one",
                "tags": ["wallet"],
                "security": _BEARER,
                "responses": {
                    **_ok(_obj(["deposits"], deposits={"type": "array", "items": _DEPOSIT})),
                    **_problems(401, 403),
                },
            },
            "post": {
                "summary": "Deposit by card: a Stripe PaymentIntent to pay with its client secret",
                "tags": ["wallet"],
                "security": _BEARER,
                "parameters": [_IDEMPOTENCY_KEY],
                "requestBody": _body(
                    ["method", "asset", "amount"],
                    method={"const": "card"},
                    asset={"enum": ["USD", "EUR", "GBP"]},
                    amount={
                        "anyOf": [
                            {"type": "integer", "minimum": 100, "maximum": 1_000_000},
                            {"type": "string", "pattern": "^([1-9][0-9]{2,5}|1000000)$"},
                        ],
                        "description": "cents: 100 to 1000000",
                    },
                ),
                "responses": _linked(
                    {
                        **_ok(
                            {
                                **_DEPOSIT,
                                "required": [
                                    *_DEPOSIT["required"],
                                    "client_secret",
                                    "payment_intent",
                                ],
                                "properties": {
                                    **_DEPOSIT["properties"],
                                    "client_secret": _STR,
                                    "payment_intent": _STR,
                                },
                            },
                            201,
                            "created (or replayed)",
                        ),
                        **_problems(400, 401, 403, 409, 413, 422, 502, 503),
                    },
                    201,
                    "deposit_id",
                    GetDeposit="/v1/deposits/{deposit_id} get",
                ),
            },
        },
        "/v1/subscriptions": {
            "post": {
                "summary": (
                    "Subscribe to Pro: the first month is paid from your USD balance at once; "
                    "renewed monthly; Pro pays 1.5 % on deposits and 2 % on withdrawals"
                ),
                "tags": ["wallet"],
                "security": _BEARER,
                "parameters": [_IDEMPOTENCY_KEY],
                "requestBody": _body(["plan"], plan={"const": "pro"}),
                "responses": {
                    **_ok(_SUBSCRIPTION, 201),
                    **_problems(400, 401, 403, 409, 413, 422),
                },
            }
        },
        "/v1/subscriptions/current": {
            "get": {
                "summary": "Your open subscription, or your latest one",
                "tags": ["wallet"],
                "security": _BEARER,
                "responses": {**_ok(_SUBSCRIPTION), **_problems(401, 403, 404)},
            }
        },
        "/v1/subscriptions/current/cancel": {
            "post": {
                "summary": "Cancel: Pro to the end of the period that is paid, then ended",
                "tags": ["wallet"],
                "security": _BEARER,
                "responses": {**_ok(_SUBSCRIPTION), **_problems(401, 403, 404, 409)},
            }
        },
        "/v1/subscriptions/current/resume": {
            "post": {
                "summary": "Take a cancellation back before the period ends",
                "tags": ["wallet"],
                "security": _BEARER,
                "responses": {**_ok(_SUBSCRIPTION), **_problems(401, 403, 404, 409)},
            }
        },
        "/v1/conversions": {
            "post": {
                "summary": "Convert between assets at the price table, less the 1 % fee",
                "tags": ["wallet"],
                "security": _BEARER,
                "parameters": [_IDEMPOTENCY_KEY],
                "requestBody": _body(
                    ["from_asset", "to_asset", "amount"],
                    from_asset=_STR,
                    to_asset=_STR,
                    amount=_AMOUNT_IN,
                ),
                "responses": {
                    **_ok(
                        _obj(
                            ["id", "from_asset", "to_asset", "amount", "received", "fee"],
                            id=_STR,
                            from_asset=_STR,
                            to_asset=_STR,
                            amount=_AMOUNT,
                            received=_AMOUNT,
                            fee=_AMOUNT,
                        ),
                        201,
                    ),
                    **_problems(400, 401, 403, 409, 413, 422),
                },
            }
        },
        "/v1/credits/use": {
            "post": {
                "summary": "Use game credits (an XP boost): the ones that expire first go first",
                "tags": ["wallet"],
                "security": _BEARER,
                "parameters": [_IDEMPOTENCY_KEY],
                "requestBody": _body(
                    ["asset", "amount"],
                    asset={"type": "string"},
                    amount=_AMOUNT_IN,
                ),
                "responses": {
                    **_ok(
                        _obj(["asset", "used", "left"], asset=_STR, used=_AMOUNT, left=_AMOUNT), 201
                    ),
                    **_problems(400, 401, 403, 409, 413, 422),
                },
            }
        },
        "/v1/admin/credits": {
            "post": {
                "summary": "Grant game credits to a player, expiring on a day or never (audited)",
                "tags": ["admin"],
                "security": _BEARER,
                "parameters": [_IDEMPOTENCY_KEY],
                "requestBody": _body(
                    ["player", "asset", "amount"],
                    player=_STR,
                    asset={"enum": ["LEETCOIN", "XP_BOOST", "FREE_ENTRY"]},
                    amount=_AMOUNT_IN,
                    expires_on=_nullable({"type": "string", "format": "date"}),
                ),
                "responses": {
                    **_ok(
                        _obj(
                            ["grant", "player", "asset", "amount", "expires_on"],
                            grant=_STR,
                            player=_STR,
                            asset=_STR,
                            amount=_AMOUNT,
                            expires_on=_nullable(_STR),
                        ),
                        201,
                    ),
                    **_problems(400, 401, 403, 409, 413, 422),
                },
            }
        },
        "/v1/deposits/{deposit_id}": {
            "get": {
                "summary": "One of your deposits",
                "tags": ["wallet"],
                "security": _BEARER,
                "parameters": [_path("deposit_id", "the deposit's id")],
                "responses": {**_ok(_DEPOSIT), **_problems(401, 403, 404)},
            }
        },
        "/v1/deposit-addresses/{chain}": {
            "get": {
                "summary": (
                    "Your deposit address on a chain, and what was paid to it that is not yet "
                    "deep enough to be credited"
                ),
                "tags": ["wallet"],
                "security": _BEARER,
                "parameters": [_path("chain", "a configured chain: ethereum, polygon")],
                "responses": {**_ok(_DEPOSIT_ADDRESS), **_problems(401, 403, 404)},
            }
        },
        "/v1/webhooks/stripe": {
            "post": {
                "summary": "Stripe's webhook endpoint (checked against Stripe-Signature)",
                "tags": ["payments"],
                "parameters": [
                    {"name": "Stripe-Signature", "in": "header", "required": True, "schema": _STR}
                ],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": {"type": "object"}}},
                },
                "responses": {
                    **_ok(_obj(["received", "outcome"], received={"const": True}, outcome=_STR)),
                    **_problems(400, 404, 413, 503),
                },
            }
        },
        "/v1/withdrawals": {
            "post": {
                "summary": (
                    "Withdraw: held at once; above $1,000 a TOTP code and an admin; risky ones "
                    "reviewed; at most $10,000 a day"
                ),
                "tags": ["wallet"],
                "security": _BEARER,
                "parameters": [_IDEMPOTENCY_KEY],
                "requestBody": _body(
                    ["asset", "amount", "rail", "destination"],
                    asset=_STR,
                    amount=_AMOUNT_IN,
                    rail={
                        "type": "string",
                        "description": "card_refund, or a configured chain (ethereum, polygon)",
                    },
                    destination={
                        "type": "string",
                        "description": (
                            "card_refund: a succeeded card deposit of yours; a chain: a 0x address"
                        ),
                    },
                ),
                "responses": _linked(
                    {
                        **_ok(_WITHDRAWAL, 201, "held (and sent, when nothing else is needed)"),
                        **_problems(400, 401, 403, 409, 413, 422, 502),
                    },
                    201,
                    "withdrawal_id",
                    GetWithdrawal="/v1/withdrawals/{withdrawal_id} get",
                    CancelWithdrawal="/v1/withdrawals/{withdrawal_id}/cancel post",
                ),
            }
        },
        "/v1/withdrawals/{withdrawal_id}": {
            "get": {
                "summary": "One of your withdrawals",
                "tags": ["wallet"],
                "security": _BEARER,
                "parameters": [_path("withdrawal_id", "the withdrawal's id")],
                "responses": {**_ok(_WITHDRAWAL), **_problems(401, 403, 404)},
            }
        },
        "/v1/withdrawals/{withdrawal_id}/confirm": {
            "post": {
                "summary": "Confirm a withdrawal above the threshold with a TOTP code",
                "tags": ["wallet"],
                "security": _BEARER,
                "parameters": [_path("withdrawal_id", "the withdrawal's id")],
                "requestBody": _CODE_BODY,
                "responses": {**_ok(_WITHDRAWAL), **_problems(400, 401, 403, 404, 409, 413, 422)},
            }
        },
        "/v1/withdrawals/{withdrawal_id}/cancel": {
            "post": {
                "summary": "Cancel a withdrawal not yet on its way (the hold is released)",
                "tags": ["wallet"],
                "security": _BEARER,
                "parameters": [_path("withdrawal_id", "the withdrawal's id")],
                "responses": {**_ok(_WITHDRAWAL), **_problems(401, 403, 404, 409)},
            }
        },
        "/v1/me/totp": {
            "post": {
                "summary": "Start two-factor enrolment: a secret for an authenticator app",
                "tags": ["identity"],
                "security": _BEARER,
                "responses": {
                    **_ok(
                        _obj(["secret", "otpauth_uri"], secret=_STR, otpauth_uri=_STR, detail=_STR),
                        201,
                    ),
                    **_problems(401, 403, 409),
                },
            }
        },
        **_IDENTITY_PATHS,
        "/v1/me/totp/confirm": {
            "post": {
                "summary": "Finish enrolment with a first code",
                "tags": ["identity"],
                "security": _BEARER,
                "requestBody": _CODE_BODY,
                "responses": {
                    **_ok(_obj(["totp"], totp={"const": "on"})),
                    **_problems(400, 401, 403, 413, 422),
                },
            }
        },
        "/v1/admin/withdrawals": {
            "get": {
                "summary": "Withdrawals waiting for an admin: approval (over $1,000) and risk review",
                "tags": ["admin"],
                "security": _BEARER,
                "parameters": [
                    _query("queue", {"enum": ["approval", "review", "all"]}, "which (all)")
                ],
                "responses": {
                    **_ok(
                        _obj(["withdrawals"], withdrawals={"type": "array", "items": _WITHDRAWAL})
                    ),
                    **_problems(401, 403, 422),
                },
            }
        },
        "/v1/admin/withdrawals/{withdrawal_id}/{action}": {
            "post": {
                "summary": "Approve or reject a waiting withdrawal (audited)",
                "tags": ["admin"],
                "security": _BEARER,
                "parameters": [
                    _path("withdrawal_id", "the withdrawal's id"),
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {"enum": ["approve", "reject"]},
                    },
                ],
                "responses": {**_ok(_WITHDRAWAL), **_problems(401, 403, 404, 409, 502)},
            }
        },
        "/v1/admin/matches": {
            "post": {
                "summary": "An organizer's match: its players get the ready check at once",
                "tags": ["admin"],
                "security": _BEARER,
                "parameters": [_IDEMPOTENCY_KEY],
                "requestBody": _body(
                    ["queue", "teams"],
                    queue={"type": "string", "description": "game:mode:region"},
                    teams={
                        "type": "array",
                        "minItems": 2,
                        "maxItems": 2,
                        "items": {"type": "array", "items": _STR},
                    },
                    best_of={"enum": [1, 3, 5, 7]},
                ),
                "responses": {
                    **_ok(
                        _obj(
                            ["match", "queue", "teams", "best_of"],
                            match=_STR,
                            queue=_STR,
                            teams={"type": "array"},
                            best_of=_INT,
                        ),
                        201,
                    ),
                    **_problems(400, 401, 403, 404, 409, 413, 422),
                },
            }
        },
        "/v1/wallet": {
            "get": {
                "summary": "Your balances per asset, game credits, NFTs and portfolio value",
                "tags": ["wallet"],
                "security": _BEARER,
                "responses": {
                    **_ok(
                        _obj(
                            ["player", "balances", "credits", "nfts", "portfolio"],
                            player=_STR,
                            balances={"type": "array", "items": _MONEY_ROW},
                            credits={"type": "array", "items": _MONEY_ROW},
                            nfts={
                                "type": "array",
                                "items": _obj(["asset", "quantity"], asset=_STR, quantity=_INT),
                            },
                            portfolio=_obj(
                                ["currency", "value_cents", "assets", "unpriced"],
                                currency={"const": "USD"},
                                value_cents=_AMOUNT,
                                assets={"type": "array"},
                                unpriced={"type": "array", "items": _STR},
                            ),
                        )
                    ),
                    **_problems(401, 403),
                },
            }
        },
        "/v1/transactions": {
            "get": {
                "summary": "Your transactions, newest first, in cursor pages",
                "tags": ["wallet"],
                "security": _BEARER,
                "parameters": [
                    _query("asset", _STR, "only this asset"),
                    _query("kind", _STR, "only this kind (deposit, entry_fee, prize, ...)"),
                    _query(
                        "since_ns", {"type": "string", "pattern": "^[0-9]+$"}, "at or after (ns)"
                    ),
                    _query(
                        "until_ns", {"type": "string", "pattern": "^[0-9]+$"}, "at or before (ns)"
                    ),
                    _query("cursor", _STR, "next_cursor of the previous page"),
                    _query("limit", {"type": "string", "pattern": "^[0-9]+$"}, "rows, 1..100 (25)"),
                ],
                "responses": {
                    **_ok(
                        _obj(
                            ["transactions", "next_cursor"],
                            transactions={"type": "array", "items": _TRANSACTION},
                            next_cursor=_nullable(_STR),
                        )
                    ),
                    **_problems(401, 403, 422),
                },
            }
        },
        "/v1/transactions/{transfer_id}": {
            "get": {
                "summary": "One ledger transfer that touched your wallet (admins: any)",
                "tags": ["wallet"],
                "security": _BEARER,
                "parameters": [_path("transfer_id", "the transfer's UUID")],
                "responses": {
                    **_ok(
                        {**_TRANSACTION, "required": [*_TRANSACTION["required"], "debit", "credit"]}
                    ),
                    **_problems(401, 403, 404),
                },
            }
        },
        "/v1/assets": {
            "get": {
                "summary": "Every asset: its code, its scale (digits after the point) and kind",
                "tags": ["wallet"],
                "responses": _ok(
                    _obj(
                        ["assets"],
                        assets={
                            "type": "array",
                            "items": _obj(
                                ["asset", "scale", "kind"], asset=_STR, scale=_INT, kind=_STR
                            ),
                        },
                    )
                ),
            }
        },
        "/v1/prices": {
            "get": {
                "summary": "The price table: US dollars per whole unit, with the time each was set",
                "tags": ["wallet"],
                "responses": _ok(
                    _obj(
                        ["currency", "prices"],
                        currency={"const": "USD"},
                        prices={"type": "array", "items": _PRICE},
                    )
                ),
            }
        },
        "/v1/admin/prices/{asset}": {
            "put": {
                "summary": "Set an asset's price (admins; audited)",
                "tags": ["admin"],
                "security": _BEARER,
                "parameters": [_path("asset", "an asset code")],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                **_obj(["price_usd"], price_usd=_PRICE["properties"]["price_usd"]),
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {**_ok(_PRICE), **_problems(400, 401, 403, 413, 422)},
            }
        },
        "/v1/admin/audit": {
            "get": {
                "summary": "The audit log, newest first (admins)",
                "tags": ["admin"],
                "security": _BEARER,
                "parameters": [
                    _query("before", _STR, "next_before of the previous page"),
                    _query("limit", {"type": "string", "pattern": "^[0-9]+$"}, "rows, 1..200 (50)"),
                    _query("action", _STR, "only this action"),
                ],
                "responses": {
                    **_ok(
                        _obj(
                            ["entries", "next_before"],
                            entries={"type": "array", "items": _AUDIT_ENTRY},
                            next_before=_nullable(_STR),
                        )
                    ),
                    **_problems(401, 403, 422),
                },
            }
        },
        "/v1/payments/config": {
            "get": {
                "summary": "How players can pay in: the card form's Stripe key and Stripe.js, the chains",
                "tags": ["wallet"],
                "responses": {
                    **_ok(
                        _obj(
                            ["card", "chains"],
                            chains={"type": "array", "items": _STR},
                            card=_nullable(
                                _obj(
                                    ["publishable_key", "js_url"], publishable_key=_STR, js_url=_STR
                                )
                            ),
                        )
                    ),
                },
            }
        },
        "/v1/admin/figures": {
            "get": {
                "summary": "Live figures: connections, queues and waits, matches, the ledger (admins)",
                "tags": ["admin"],
                "security": _BEARER,
                "responses": {
                    **_ok(
                        _obj(
                            ["at_s", "node", "connections", "queues", "matches", "ledger"],
                            at_s={"type": "number"},
                            node=_STR,
                            connections=_INT,
                            queues={
                                "type": "array",
                                "items": _obj(
                                    ["queue", "waiting", "wait_estimate_s", "matches_recent"],
                                    queue=_STR,
                                    waiting=_INT,
                                    wait_estimate_s=_nullable({"type": "number"}),
                                    matches_recent=_INT,
                                ),
                            },
                            matches=_obj(
                                ["ready_check", "allocating", "live"],
                                ready_check=_INT,
                                allocating=_INT,
                                live=_INT,
                            ),
                            tournaments_running=_INT,
                            ledger={"type": "object", "additionalProperties": _INT},
                        )
                    ),
                    **_problems(401, 403),
                },
            }
        },
        "/v1/matches/{match}/live": {
            "get": {
                "summary": "A CS2 match's public feed: its latest body and series view as "
                "delayed, and the delay",
                "tags": ["cs2"],
                "parameters": [_path("match", "the match")],
                "responses": {
                    **_ok(
                        _obj(
                            ["match", "delay_s", "latest", "series"],
                            match=_STR,
                            delay_s={"type": "number"},
                            latest=_nullable({"type": "object"}),
                            series=_nullable({"type": "object"}),
                        )
                    ),
                    **_problems(404),
                },
            }
        },
        "/v1/matches/{match}/config/{flavor}": {
            "get": {
                "summary": "The get5 or MatchZy match config, for the single-use config token",
                "tags": ["cs2"],
                "security": _BEARER,
                "parameters": [
                    _path("match", "the match"),
                    _path("flavor", "get5 or matchzy"),
                ],
                "responses": {**_ok({"type": "object"}), **_problems(401, 404)},
            }
        },
        "/v1/ingest/cs2/{flavor}/{match}": {
            "post": {
                "summary": "One event of a CS2 plugin's log (get5's schema, MatchZy's subset)",
                "tags": ["cs2"],
                "security": _BEARER,
                "parameters": [
                    _path("flavor", "get5 or matchzy"),
                    _path("match", "the match (the body's matchid must agree)"),
                ],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": {"type": "object"}}},
                },
                "responses": {
                    **_ok(
                        _obj(
                            ["accepted", "duplicate", "applied", "seq"],
                            accepted={"type": "boolean"},
                            duplicate={"type": "boolean"},
                            applied={"type": "boolean"},
                            seq=_nullable(_INT),
                        )
                    ),
                    **_problems(400, 401, 404, 409, 413, 422, 429),
                },
            }
        },
        "/v1/admin/cs2-servers": {
            "get": {
                "summary": "The CS2 servers (admins)",
                "tags": ["cs2"],
                "security": _BEARER,
                "responses": {
                    **_ok(_obj(["servers"], servers={"type": "array", "items": _CS2_SERVER})),
                    **_problems(401, 403),
                },
            },
            "post": {
                "summary": "Register a CS2 server running get5 or MatchZy (admins)",
                "tags": ["cs2"],
                "security": _BEARER,
                "requestBody": _body(
                    [
                        "name",
                        "flavor",
                        "region",
                        "address",
                        "rcon_host",
                        "rcon_port",
                        "rcon_password",
                    ],
                    name=_STR,
                    flavor={"enum": ["get5", "matchzy"]},
                    region=_STR,
                    address=_STR,
                    rcon_host=_STR,
                    rcon_port=_INT,
                    rcon_password=_STR,
                ),
                "responses": {**_ok(_CS2_SERVER, 201), **_problems(401, 403, 409, 422)},
            },
        },
        "/v1/admin/reconciliation": {
            "get": {
                "summary": "Reconcile the whole ledger: every asset sums to zero (admins)",
                "tags": ["admin"],
                "security": _BEARER,
                "responses": {
                    **_ok(
                        _obj(
                            ["ok", "accounts", "transfers", "assets", "problems_total", "problems"],
                            ok={"type": "boolean"},
                            accounts=_INT,
                            transfers=_INT,
                            assets={
                                "type": "object",
                                "additionalProperties": {
                                    "type": "object",
                                    "additionalProperties": _STR,
                                },
                            },
                            problems_total=_INT,
                            problems={"type": "array", "items": {"type": "object"}},
                        )
                    ),
                    **_problems(401, 403),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LeetGaming",
            "version": version,
            "description": (
                "Wallet, tournaments and identity over REST. Amounts are strings of the asset's "
                "smallest unit. Errors are application/problem+json with a stable `code`. Money "
                "POSTs take an `Idempotency-Key` header. At most 100 requests a minute per address "
                "by default (429 with Retry-After beyond)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {"Problem": _PROBLEM_SCHEMA},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def page(doc: dict[str, Any]) -> str:
    """The document as a plain HTML page: every operation with its parameters and answers."""
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{e(doc['info']['title'])} API</title>",
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem;color:#111}code{background:#f2f2f2;padding:0 .2em}"
        "h2{border-top:1px solid #ccc;padding-top:1rem}.m{font-weight:700}</style></head><body>",
        f"<h1>{e(doc['info']['title'])} API <small>{e(doc['info']['version'])}</small></h1>",
        f"<p>{e(doc['info']['description'])}</p>",
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>",
    ]
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            parts.append(
                f"<h2><span class='m'>{e(method.upper())}</span> <code>{e(path)}</code></h2>"
            )
            parts.append(f"<p>{e(op.get('summary', ''))}</p>")
            if op.get("security"):
                parts.append(
                    "<p>Needs <code>Authorization: Bearer &lt;access token&gt;</code>.</p>"
                )
            params = op.get("parameters", [])
            if params:
                parts.append("<ul>")
                for p in params:
                    parts.append(
                        f"<li><code>{e(p['name'])}</code> ({e(p['in'])}): {e(p.get('description', ''))}</li>"
                    )
                parts.append("</ul>")
            statuses = ", ".join(e(s) for s in op.get("responses", {}))
            parts.append(f"<p>Answers: {statuses}</p>")
    parts.append("</body></html>")
    return "".join(parts)
