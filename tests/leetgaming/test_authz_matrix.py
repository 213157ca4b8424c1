"""The authorization matrix: who may call what, declared here and checked on the real app.

What this file proves, against the app served by a real uvicorn server on real PostgreSQL and
Redis (card payments through localstripe):

- ``REST`` declares, for every REST operation the app routes, the outcome of each principal
  (anonymous, player A, player B, a game server, an admin whose session began with a TOTP
  code): allowed, 401, 403, or 404 for someone else's object. Every operation is called as
  every principal, on real objects of player A's (a card deposit, its ledger transfer, a
  withdrawal, a subscription, a match with its demos, a tournament, a CS2 lease), and the
  answer must match: an allowed principal is never refused with 401/403 (nor gets a 5xx);
  a refused one is refused with 401 ``unauthorized`` / 403 ``forbidden`` whatever the body,
  so before the body is read (write operations are sent a body with an unknown field); player
  B's 404 on A's object is the very answer B gets for an object that does not exist.
- The same matrix on objects that do not exist: authentication and the role come before the
  lookup (anonymous gets 401 even for a missing object).
- The table is complete: an operation in ``/openapi.json`` or in the app's routes that the
  table does not declare fails a test (a new route cannot be added without saying who may
  call it), and so does a declared operation the app no longer has; the document's
  ``security`` and error responses agree with the table.
- An admin token without MFA is an admin nowhere (only where enrolment needs it).
- Mass assignment: fields such as ``player``, ``role``, ``balance``, ``winner``, ``subject``,
  ``admin`` added to a write's body are refused (422 ``unknown_field``) and nothing changes
  for anyone; a roster naming another player does not enter them.
- Player B's own listings (wallet, deposits, transactions, subscription) hold nothing
  of player A's.
- The websocket side: every realtime ``rpc`` method (``leetgaming.play._METHODS``) and
  subscribe/publish on every channel namespace, as each of the principals, over real
  websockets; a session that has not authenticated may call nothing, and an admin token
  without MFA does not authenticate.

Where the product answers someone else's object with 403 rather than 404 (a match's demos:
"the match's players and admins only"), the table says so.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import jwt
import orjson
import pytest
import pytest_asyncio
import redis
import stripe
from starlette.applications import Starlette
from starlette.routing import Route
from websockets.asyncio.client import ClientConnection

from leetgaming import totp
from leetgaming.app import create_app
from leetgaming.play import _METHODS
from leetgaming.settings import Settings
from leetgaming.tokens import INITIAL_KID, issue_access_token, signing_key

from ..conftest import _pg_execute, _with_database
from ..ws import connect, receive, serving, unused_port
from .test_auth_api import FAST, PASSWORD
from .test_deposits import SK, pay, send_webhooks
from .test_withdrawals import stripe_settings

SECRET: Final = "z" * 40
QUEUE: Final = "cs2:1v1:eu"
QUEUES: Final = f"""
[queue."{QUEUE}"]
team_size = 1
ready_check_s = 600
"""
TOURNAMENT: Final = {
    "name": "Authz cup",
    "queue": QUEUE,
    "team_size": 1,
    "format": {"kind": "double_elimination"},
    "entry_fee": {"asset": "USD", "amount": "1000"},
    "prize_asset": "USD",
    "payout_bps": [7000, 3000],
    "participants_min": 2,
    "participants_max": 8,
    "rake_bps": 1000,
}
PROBLEM: Final = "application/problem+json"
JUNK_FIELD: Final = "unexpected_field"


class Outcome(enum.StrEnum):
    ALLOWED = "allowed"  # not refused: never 401 or 403 (nor a 5xx); a 404 or 422 may be
    UNAUTHENTICATED = "401"  # 401: no (valid) token for this operation
    FORBIDDEN = "403"  # 403 ``forbidden``: a valid token, the wrong principal
    HIDDEN = "404"  # 404 ``not_found``: someone else's object, as if it did not exist


ALLOW, UNAUTH, FORBID, HIDE = (
    Outcome.ALLOWED,
    Outcome.UNAUTHENTICATED,
    Outcome.FORBIDDEN,
    Outcome.HIDDEN,
)
PRINCIPALS: Final = ("anonymous", "player_a", "player_b", "game_server", "admin")
Row = tuple[Outcome, Outcome, Outcome, Outcome, Outcome]  # in the order of PRINCIPALS

# The rows the table is made of (anonymous, player A, player B, game server, admin).
OPEN: Final[Row] = (ALLOW, ALLOW, ALLOW, ALLOW, ALLOW)  # no token needed; a token changes nothing
SIGNED_IN: Final[Row] = (UNAUTH, ALLOW, ALLOW, ALLOW, ALLOW)  # any valid token
PLAYERS: Final[Row] = (UNAUTH, ALLOW, ALLOW, FORBID, FORBID)  # players only (their own things)
PLAYERS_ADMINS: Final[Row] = (UNAUTH, ALLOW, ALLOW, FORBID, ALLOW)
A_ONLY: Final[Row] = (UNAUTH, ALLOW, HIDE, FORBID, FORBID)  # A's object, players only
A_OR_ADMIN: Final[Row] = (UNAUTH, ALLOW, HIDE, FORBID, ALLOW)  # A's object, admins see it
MATCH_OF_A: Final[Row] = (UNAUTH, ALLOW, FORBID, FORBID, ALLOW)  # A's match: B gets 403
ADMINS: Final[Row] = (UNAUTH, FORBID, FORBID, FORBID, ALLOW)
# Opened by the match's own token (a CS2 plugin's), which no access token stands in for.
MATCH_TOKEN: Final[Row] = (UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH)
# A match that does not exist: its token is looked up by the match, so 404 whoever asks.
NO_MATCH: Final[Row] = (HIDE, HIDE, HIDE, HIDE, HIDE)
NOBODYS_MATCH: Final[Row] = (UNAUTH, FORBID, FORBID, FORBID, ALLOW)  # demos of no match

Body = Callable[["World", str], object] | None


def junk(world: World, who: str) -> object:
    """A body no write operation takes: a refusal must come before it is read."""
    return {JUNK_FIELD: True}


def totp_code(world: World, who: str) -> object:
    """A valid TOTP code of the caller (players have two-factor on), so that what is checked
    after the code is reached: whose withdrawal it is."""
    secret = world.totp_secrets.get(who)
    return {"code": "000000" if secret is None else world.totp_clock.next_code(secret)}


@dataclass(frozen=True)
class Op:
    """One REST operation and who may call it."""

    method: str
    path: str
    row: Row
    body: Body = None
    on_missing: Row | None = None  # the row when its objects do not exist (default: row)
    fixed: Mapping[str, str] = field(default_factory=dict)  # path parameters, not objects
    objects: Mapping[str, str] = field(default_factory=dict)  # parameter -> object's name

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


MATCH: Final = {"match": "match"}
LEASE: Final = {"match": "lease"}
CS2: Final = {"flavor": "matchzy"}

REST: Final[tuple[Op, ...]] = (
    # probes, documents, the portal
    Op("GET", "/healthz", OPEN),
    Op("GET", "/readyz", OPEN),
    Op("GET", "/metrics", OPEN),
    Op("GET", "/openapi.json", OPEN),
    Op("GET", "/docs", OPEN),
    Op("GET", "/", OPEN),
    Op("GET", "/confirm", OPEN),
    # identity: credentials travel in the body; a bearer token changes nothing
    Op("POST", "/v1/auth/register", OPEN, junk),
    Op("POST", "/v1/auth/confirm", OPEN, junk),
    Op("POST", "/v1/auth/login", OPEN, junk),
    Op("POST", "/v1/auth/refresh", OPEN, junk),
    Op("POST", "/v1/auth/logout", OPEN, junk),
    Op("POST", "/v1/auth/google", OPEN, junk),
    Op("GET", "/v1/auth/steam/start", OPEN),
    Op("GET", "/v1/auth/steam/callback", OPEN),
    Op("POST", "/v1/auth/exchange", OPEN, junk),
    Op("GET", "/v1/auth/providers", OPEN),
    Op("POST", "/v1/auth/game-server", OPEN, junk),
    Op("GET", "/v1/me", SIGNED_IN),
    Op("POST", "/v1/me/totp", PLAYERS_ADMINS),
    Op("POST", "/v1/me/totp/confirm", PLAYERS_ADMINS),
    Op("GET", "/v1/admin/game-servers", ADMINS),
    Op("POST", "/v1/admin/game-servers", ADMINS, junk),
    Op("DELETE", "/v1/admin/game-servers/{server_id}", ADMINS),
    # playing
    Op("GET", "/v1/queues", OPEN),
    Op("GET", "/v1/leaderboards/{mode}", OPEN, fixed={"mode": "cs2:1v1"}),
    Op("GET", "/v1/players/{player}/ratings/{mode}", OPEN, fixed={"mode": "cs2:1v1"}),
    Op("POST", "/v1/tickets", PLAYERS, junk),
    Op("GET", "/v1/tickets/current", PLAYERS),
    Op("DELETE", "/v1/tickets/current", PLAYERS),
    Op("POST", "/v1/admin/matches", ADMINS, junk),
    # tournaments
    Op("GET", "/v1/tournaments", OPEN),
    Op("GET", "/v1/tournaments/{tournament}", OPEN),
    Op("GET", "/v1/tournaments/{tournament}/bracket", OPEN),
    Op("GET", "/v1/tournaments/{tournament}/standings", OPEN),
    Op("GET", "/v1/players/{player}/tournaments", OPEN),
    Op("POST", "/v1/tournaments/{tournament}/registration", PLAYERS, junk),
    Op("DELETE", "/v1/tournaments/{tournament}/registration", PLAYERS),
    Op("POST", "/v1/tournaments/{tournament}/check-in", PLAYERS),
    Op(
        "POST", "/v1/tournaments/{tournament}/matches/{match}/dispute", PLAYERS, junk, objects=MATCH
    ),
    Op("POST", "/v1/admin/tournaments", ADMINS, junk),
    Op("POST", "/v1/admin/tournaments/{tournament}/{action}", ADMINS, fixed={"action": "start"}),
    Op(
        "POST",
        "/v1/admin/tournaments/{tournament}/matches/{match}/{action}",
        ADMINS,
        junk,
        fixed={"action": "resolve"},
        objects=MATCH,
    ),
    # demos and CS2 servers
    Op("POST", "/v1/ingest/cs2/{flavor}/{match}/demo", MATCH_TOKEN, None, NO_MATCH, CS2, LEASE),
    Op("POST", "/v1/ingest/cs2/{flavor}/{match}/backup", MATCH_TOKEN, None, NO_MATCH, CS2, LEASE),
    Op("POST", "/v1/ingest/cs2/{flavor}/{match}", MATCH_TOKEN, None, NO_MATCH, CS2, LEASE),
    Op("GET", "/v1/matches/{match}/config/{flavor}", MATCH_TOKEN, None, NO_MATCH, CS2, LEASE),
    Op("POST", "/v1/admin/matches/{match}/demos", ADMINS, objects=MATCH),
    Op("GET", "/v1/admin/matches/{match}/backups", ADMINS, objects=MATCH),
    Op("GET", "/v1/matches/{match}/demos", MATCH_OF_A, on_missing=NOBODYS_MATCH, objects=MATCH),
    Op(
        "GET",
        "/v1/matches/{match}/demos/{demo}",
        MATCH_OF_A,
        on_missing=NOBODYS_MATCH,
        objects=MATCH,
    ),
    Op(
        "GET",
        "/v1/matches/{match}/demos/{demo}/file",
        MATCH_OF_A,
        on_missing=NOBODYS_MATCH,
        objects=MATCH,
    ),
    Op("GET", "/v1/matches/{match}/live", OPEN, objects=LEASE),
    Op("GET", "/v1/matches/{match}/cs2", ADMINS, objects=MATCH),
    Op("GET", "/v1/matches/{match}/cs2/events", ADMINS, objects=MATCH),
    Op("GET", "/v1/admin/cs2-servers", ADMINS),
    Op("POST", "/v1/admin/cs2-servers", ADMINS, junk),
    Op("DELETE", "/v1/admin/cs2-servers/{server}", ADMINS),
    Op("GET", "/v1/admin/figures", ADMINS),
    # the wallet
    Op("GET", "/v1/deposits", PLAYERS),
    Op("POST", "/v1/deposits", PLAYERS, junk),
    Op("POST", "/v1/conversions", PLAYERS, junk),
    Op("POST", "/v1/credits/use", PLAYERS, junk),
    Op("POST", "/v1/admin/credits", ADMINS, junk),
    Op("GET", "/v1/deposits/{deposit_id}", A_OR_ADMIN),
    Op("GET", "/v1/deposit-addresses/{chain}", PLAYERS, fixed={"chain": "ethereum"}),
    Op("POST", "/v1/webhooks/stripe", OPEN, junk),  # signed by Stripe: no token stands in
    Op("GET", "/v1/wallet", PLAYERS_ADMINS),
    Op("GET", "/v1/transactions", PLAYERS_ADMINS),
    Op("GET", "/v1/transactions/{transfer_id}", A_OR_ADMIN),
    Op("GET", "/v1/assets", OPEN),
    Op("GET", "/v1/payments/config", OPEN),
    Op("GET", "/v1/prices", OPEN),
    Op("PUT", "/v1/admin/prices/{asset}", ADMINS, junk, fixed={"asset": "ETH"}),
    Op("GET", "/v1/admin/audit", ADMINS),
    Op("GET", "/v1/admin/reconciliation", ADMINS),
    # subscriptions
    Op("POST", "/v1/subscriptions", PLAYERS, junk),
    Op("GET", "/v1/subscriptions/current", PLAYERS),
    Op("POST", "/v1/subscriptions/current/cancel", PLAYERS),
    Op("POST", "/v1/subscriptions/current/resume", PLAYERS),
    # withdrawals
    Op("POST", "/v1/withdrawals", PLAYERS, junk),
    Op("GET", "/v1/withdrawals/{withdrawal_id}", A_ONLY),
    Op("POST", "/v1/withdrawals/{withdrawal_id}/confirm", A_ONLY, totp_code),
    Op("POST", "/v1/withdrawals/{withdrawal_id}/cancel", A_ONLY),
    Op("GET", "/v1/admin/withdrawals", ADMINS),
    Op(
        "POST",
        "/v1/admin/withdrawals/{withdrawal_id}/{action}",
        ADMINS,
        fixed={"action": "approve"},
    ),
)
BY_KEY: Final = {op.key: op for op in REST}
# Served by the portal's static files when it is built (a Mount, not a Route), by a page
# saying how to build it when not: declared, but not required among the routes.
PORTAL: Final = frozenset({"GET /", "GET /confirm"})
# Where a password-only admin session may act (it enrols in TOTP with it), besides OPEN rows.
MFA_EXEMPT: Final = frozenset({"GET /v1/me", "POST /v1/me/totp", "POST /v1/me/totp/confirm"})
UNAUTHORIZED_CODES: Final = frozenset({"unauthorized", "bad_token"})
NOT_FOUND_CODES: Final = frozenset({"not_found", "unknown_match"})


class TotpClock:
    """The app's TOTP clock in this test: each code is of a step later than the last, so a
    test may use as many as it needs (a code is accepted once, within a step of now)."""

    def __init__(self) -> None:
        self.now_s = time.time()

    def __call__(self) -> float:
        return self.now_s

    def next_code(self, secret: str) -> str:
        self.now_s += totp.STEP_S
        return totp.code_at(secret, self.now_s)


@dataclass
class World:
    app: Starlette
    http: httpx.AsyncClient
    ws_url: str
    subjects: dict[str, str]  # principal -> subject ("" for anonymous)
    tokens: dict[str, str | None]
    totp_secrets: dict[str, str]
    totp_clock: TotpClock
    objects: dict[str, str]  # real objects: player A's, a tournament, a match, a lease
    missing: dict[str, str]  # the same parameters, naming nothing
    lease_ingest_token: str

    def headers(self, who: str) -> dict[str, str]:
        token = self.tokens[who]
        return {} if token is None else {"Authorization": f"Bearer {token}"}


async def _login(http: httpx.AsyncClient, email: str, code: str | None = None) -> str:
    body: dict[str, str] = {"email": email, "password": PASSWORD}
    if code is not None:
        body["totp"] = code
    signed_in = await http.post("/v1/auth/login", json=body)
    assert signed_in.status_code == 200, signed_in.text
    token: str = signed_in.json()["access_token"]
    return token


async def _enrol(http: httpx.AsyncClient, token: str, clock: TotpClock) -> str:
    auth = {"Authorization": f"Bearer {token}"}
    enrolled = await http.post("/v1/me/totp", headers=auth)
    assert enrolled.status_code == 201, enrolled.text
    secret: str = enrolled.json()["secret"]
    confirmed = await http.post(
        "/v1/me/totp/confirm", json={"code": clock.next_code(secret)}, headers=auth
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret


def _delete_prefix(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server_url: str,
    redis_url: str,
    localstripe: str,
) -> AsyncIterator[World]:
    """The app, distributed (PostgreSQL, Redis), on localstripe; real accounts for players A
    and B and an admin (signed in with a TOTP code), a game server with its key, and player
    A's things: a paid card deposit, its transfer, a withdrawal sent, a subscription, a match
    (A against a third player), a tournament, a CS2 lease. On a database of its own: its
    tournaments, deposits and audit entries must not show in other tests' listings."""
    database = f"lgtest_authz_{secrets.token_hex(4)}"
    await _pg_execute(postgres_server_url, f'CREATE DATABASE "{database}"')
    postgres_url = _with_database(postgres_server_url, database)
    folder: Path = tmp_path_factory.mktemp("authz")
    (folder / "queues.toml").write_text(QUEUES)
    prefix = f"lgtest:{secrets.token_hex(8)}:"
    port = unused_port()
    env = {
        "LEETGAMING_PORT": str(port),
        "LEETGAMING_SECRET_KEY": SECRET,
        "LEETGAMING_QUEUES_FILE": str(folder / "queues.toml"),
        "LEETGAMING_MAIL_DIR": str(folder / "mail"),
        "LEETGAMING_BLOB_DIR": str(folder / "blobs"),
        "LEETGAMING_DATABASE_URL": postgres_url,
        "LEETGAMING_REDIS_URL": redis_url,
        "LEETGAMING_REDIS_PREFIX": prefix,
    }
    env |= {f"LEETGAMING_{k.upper()}": v for k, v in stripe_settings(localstripe).items()}
    app = create_app(Settings.from_env(env), passwords=FAST)
    tag = secrets.token_hex(4)
    try:
        async with serving(app, port):
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                yield await _set_up(app, http, base, localstripe, tag)
    finally:
        _delete_prefix(redis_url, prefix)
        await _pg_execute(postgres_server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def _set_up(
    app: Starlette, http: httpx.AsyncClient, base: str, localstripe: str, tag: str
) -> World:
    state = app.state
    clock = TotpClock()
    state.identity.two_factor.clock_s = clock  # the withdrawals' two-factor is the same
    identity = state.identity
    a = await identity.create_account(f"a-{tag}@example.com", PASSWORD, "player")
    b = await identity.create_account(f"b-{tag}@example.com", PASSWORD, "player")
    admin = await identity.create_admin(f"root-{tag}@example.com", PASSWORD)
    token_a = await _login(http, f"a-{tag}@example.com")
    token_b = await _login(http, f"b-{tag}@example.com")
    password_only = await _login(http, f"root-{tag}@example.com")
    admin_secret = await _enrol(http, password_only, clock)
    token_admin = await _login(http, f"root-{tag}@example.com", clock.next_code(admin_secret))
    as_admin = {"Authorization": f"Bearer {token_admin}"}
    as_a = {"Authorization": f"Bearer {token_a}"}

    issued = await http.post("/v1/admin/game-servers", json={"name": f"gs-{tag}"}, headers=as_admin)
    assert issued.status_code == 201, issued.text
    server = await http.post("/v1/auth/game-server", json={"key": issued.json()["key"]})
    assert server.status_code == 200, server.text
    gs, token_gs = server.json()["subject"], server.json()["access_token"]

    # A's card deposit, paid (Stripe tells the app by webhook), and its ledger transfer
    await send_webhooks(http, localstripe, base)
    made = await http.post(
        "/v1/deposits",
        json={"method": "card", "asset": "USD", "amount": "50000"},
        headers=as_a | {"Idempotency-Key": secrets.token_hex(8)},
    )
    assert made.status_code == 201, made.text
    deposit = made.json()["id"]
    await pay(
        stripe.StripeClient(SK, base_addresses={"api": localstripe}),
        made.json()["payment_intent"],
        "4242424242424242",
    )
    deadline = time.monotonic() + 15
    while (await http.get(f"/v1/deposits/{deposit}", headers=as_a)).json()["state"] != (
        "succeeded"
    ):
        assert time.monotonic() < deadline, "the deposit was not paid within 15 s"
        await asyncio.sleep(0.1)
    [transfer, *_] = (await http.get("/v1/transactions", headers=as_a)).json()["transactions"]

    # A's withdrawal back to the card: small, sent at once (nothing left to confirm or cancel)
    sent = await http.post(
        "/v1/withdrawals",
        json={
            "asset": "USD",
            "amount": "10000",
            "rail": "card_refund",
            "destination": deposit,
        },
        headers=as_a | {"Idempotency-Key": secrets.token_hex(8)},
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["state"] == "sent", sent.text
    subscribed = await http.post(
        "/v1/subscriptions",
        json={"plan": "pro"},
        headers=as_a | {"Idempotency-Key": secrets.token_hex(8)},
    )
    assert subscribed.status_code == 201, subscribed.text

    # two-factor on for both players (a withdrawal's confirmation asks for a code first)
    secrets_of = {
        "player_a": await _enrol(http, token_a, clock),
        "player_b": await _enrol(http, token_b, clock),
    }

    created = await http.post("/v1/admin/tournaments", json=TOURNAMENT, headers=as_admin)
    assert created.status_code == 201, created.text
    match = await http.post(
        "/v1/admin/matches",
        json={"queue": QUEUE, "teams": [[a], [f"c-{tag}"]]},
        headers=as_admin | {"Idempotency-Key": secrets.token_hex(8)},
    )
    assert match.status_code == 201, match.text

    # a CS2 lease, as the allocation of a match to a CS2 server leaves it (its config token
    # and ingest token known to this test only)
    lease = f"m.authz-{tag}"
    config_token, ingest_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = time.time()
    await state.cs2.db.execute(
        "INSERT INTO cs2_leases (match, number, server, flavor, config_hash, config_expires_s, "
        "ingest_hash, created_s, teams, delay_s, document) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        lease,
        secrets.randbelow(2**40) + 2**41,
        f"cs2-none-{tag}",
        "matchzy",
        _sha256(config_token),
        now + 3600,
        _sha256(ingest_token),
        now,
        "[]",
        0.0,
        "{}",
    )
    return World(
        app=app,
        http=http,
        ws_url=base.replace("http://", "ws://") + "/ws",
        subjects={
            "anonymous": "",
            "player_a": a,
            "player_b": b,
            "game_server": gs,
            "admin": admin,
        },
        tokens={
            "anonymous": None,
            "player_a": token_a,
            "player_b": token_b,
            "game_server": token_gs,
            "admin": token_admin,
        },
        totp_secrets=secrets_of,
        totp_clock=clock,
        objects={
            "deposit_id": deposit,
            "transfer_id": transfer["id"],
            "withdrawal_id": sent.json()["id"],
            "tournament": created.json()["id"],
            "match": match.json()["match"],
            "lease": lease,
            "player": a,
            "demo": "d-none",
            "server": f"cs2-none-{tag}",
            "server_id": f"gs-none-{tag}",
        },
        missing={
            "deposit_id": f"dep_none{tag}",
            "transfer_id": str(uuid.uuid4()),
            "withdrawal_id": f"wd_none{tag}",
            "tournament": f"t-none-{tag}",
            "match": f"m.none-{tag}",
            "lease": f"m.none-{tag}",
            "player": f"nobody-{tag}",
            "demo": "d-none",
            "server": f"cs2-none-{tag}",
            "server_id": f"gs-none-{tag}",
        },
        lease_ingest_token=ingest_token,
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _path(op: Op, objects: Mapping[str, str]) -> str:
    names = [part[1:-1] for part in op.path.split("/") if part.startswith("{")]
    values = {
        name: op.fixed[name] if name in op.fixed else objects[op.objects.get(name, name)]
        for name in names
    }
    return op.path.format(**values)


async def _send(world: World, op: Op, who: str, objects: Mapping[str, str]) -> httpx.Response:
    headers = world.headers(who) | {"Idempotency-Key": secrets.token_hex(8)}
    body = None if op.body is None else op.body(world, who)
    return await world.http.request(
        op.method,
        _path(op, objects),
        headers=headers,
        content=None if body is None else orjson.dumps(body),
    )


def _code(response: httpx.Response) -> str | None:
    if not response.headers.get("content-type", "").startswith(PROBLEM):
        return None
    code = response.json().get("code")
    return None if code is None else str(code)


def _mismatch(expected: Outcome, response: httpx.Response) -> str | None:
    """Why ``response`` is not of the ``expected`` outcome (None: it is)."""
    status, code = response.status_code, _code(response)
    if status >= 500:
        return f"got {status} (server error)"
    if expected is ALLOW:
        return None if status not in (401, 403) else f"refused: {status} {code}"
    if expected is UNAUTH:
        ok = status == 401 and code in UNAUTHORIZED_CODES
    elif expected is FORBID:
        ok = status == 403 and code == "forbidden"
    else:
        ok = status == 404 and code in NOT_FOUND_CODES
    return None if ok else f"expected {expected}, got {status} {code}: {response.text[:160]}"


async def _check_row(
    world: World, op: Op, row: Row, objects: Mapping[str, str], compare_hidden: bool
) -> list[str]:
    failures: list[str] = []
    statuses: dict[str, int] = {}
    for who, expected in zip(PRINCIPALS, row, strict=True):
        response = await _send(world, op, who, objects)
        statuses[who] = response.status_code
        why = _mismatch(expected, response)
        if why is not None:
            failures.append(f"{op.key} as {who}: {why}")
        if expected is HIDE and compare_hidden and why is None:
            # someone else's object is answered exactly as one that does not exist
            absent = await _send(world, op, who, world.missing)
            same = (absent.status_code, _code(absent), absent.json().get("detail"))
            seen = (response.status_code, _code(response), response.json().get("detail"))
            if same != seen:
                failures.append(f"{op.key} as {who}: {seen} on A's object, {same} on none")
    if row == OPEN and len(set(statuses.values())) != 1:
        failures.append(f"{op.key}: open, yet answered by who asks: {statuses}")
    return failures


# The REST matrix ---------------------------------------------------------------------------

module_loop = pytest.mark.asyncio(loop_scope="module")


@module_loop
@pytest.mark.parametrize("op", REST, ids=[op.key for op in REST])
async def test_every_principal_gets_what_the_table_declares(world: World, op: Op) -> None:
    failures = await _check_row(world, op, op.row, world.objects, compare_hidden=True)
    assert not failures, "\n".join(failures)


WITH_OBJECTS: Final = tuple(op for op in REST if "{" in op.path)


@module_loop
@pytest.mark.parametrize("op", WITH_OBJECTS, ids=[op.key for op in WITH_OBJECTS])
async def test_refusals_come_before_the_lookup_of_objects_that_do_not_exist(
    world: World, op: Op
) -> None:
    row = op.on_missing or op.row
    failures = await _check_row(world, op, row, world.missing, compare_hidden=False)
    assert not failures, "\n".join(failures)


@module_loop
async def test_an_admin_token_without_mfa_is_an_admin_nowhere(world: World) -> None:
    """A password-only admin session (not begun with a TOTP code) may enrol and read who it
    is; every other operation an admin may use refuses it with 403."""
    password_only = issue_access_token(
        SECRET, world.subjects["admin"], "admin", f"nomfa-{secrets.token_hex(4)}", int(time.time())
    )
    world.tokens["admin_without_mfa"] = password_only
    failures: list[str] = []
    try:
        for op in REST:
            admin = op.row[PRINCIPALS.index("admin")]
            if op.row == OPEN or op.key in MFA_EXEMPT or admin is not ALLOW:
                continue
            response = await _send(world, op, "admin_without_mfa", world.objects)
            code = _code(response)
            if response.status_code != 403 or code not in ("admin_mfa_required", "forbidden"):
                failures.append(f"{op.key}: {response.status_code} {code}")
        for key in sorted(MFA_EXEMPT):
            response = await _send(world, BY_KEY[key], "admin_without_mfa", world.objects)
            if response.status_code in (401, 403) or response.status_code >= 500:
                failures.append(f"{key} (enrolment) refused: {response.status_code}")
    finally:
        del world.tokens["admin_without_mfa"]
    assert not failures, "\n".join(failures)


@module_loop
async def test_the_ingest_routes_open_with_the_matchs_own_token(world: World) -> None:
    """The positive control of the MATCH_TOKEN rows: the lease's ingest token is accepted
    where every access token was refused (what follows is about the body, not who sends it)."""
    answer = await world.http.post(
        f"/v1/ingest/cs2/matchzy/{world.objects['lease']}",
        content=b"not an event",
        headers={"Authorization": f"Bearer {world.lease_ingest_token}"},
    )
    assert answer.status_code not in (401, 403, 404), answer.text
    assert answer.status_code < 500, answer.text


# The table is complete -----------------------------------------------------------------------


def _routed(app: Starlette) -> set[str]:
    return {
        f"{method} {route.path}"
        for route in app.routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}
    }


def _documented(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    verbs = {"get", "put", "post", "delete", "patch"}
    return {
        f"{method.upper()} {path}": operation
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in verbs
    }


@module_loop
async def test_every_documented_operation_is_in_the_table(world: World) -> None:
    doc = (await world.http.get("/openapi.json")).json()
    documented = _documented(doc)
    assert len(documented) >= 40, sorted(documented)
    undeclared = sorted(set(documented) - set(BY_KEY))
    assert not undeclared, f"in /openapi.json, not in the authorization table: {undeclared}"


@module_loop
async def test_every_routed_operation_is_in_the_table_and_none_other(world: World) -> None:
    routed = _routed(world.app)
    assert len(routed) >= 80, sorted(routed)
    assert not sorted(routed - set(BY_KEY)), f"routed, not declared: {sorted(routed - set(BY_KEY))}"
    stale = sorted(set(BY_KEY) - routed - PORTAL)
    assert not stale, f"declared, not routed: {stale}"
    assert len(REST) == len(BY_KEY), "an operation is declared twice"


@module_loop
async def test_the_document_agrees_with_the_table(world: World) -> None:
    """A documented operation needs a token exactly when the table refuses anonymous callers,
    and documents the refusals the table declares."""
    doc = (await world.http.get("/openapi.json")).json()
    failures: list[str] = []
    for key, operation in _documented(doc).items():
        row = BY_KEY[key].row
        responses = set(operation.get("responses", {}))
        needs_token = row[0] is not ALLOW
        if bool(operation.get("security")) != needs_token:
            failures.append(f"{key}: security {operation.get('security')} but row {row}")
        for outcome, status in ((UNAUTH, "401"), (FORBID, "403"), (HIDE, "404")):
            if outcome in row and status not in responses:
                failures.append(f"{key}: {status} not documented")
    assert not failures, "\n".join(failures)


# Mass assignment and one's own listings ----------------------------------------------------


async def _get(world: World, who: str, path: str) -> Any:
    response = await world.http.get(path, headers=world.headers(who))
    return response.status_code, response.json()


async def _snapshot(world: World, tournament: str) -> dict[str, Any]:
    """What the mass assignments could have changed, for anyone."""
    return {
        "wallets": [await _get(world, who, "/v1/wallet") for who in ("player_a", "player_b")],
        "deposits": [await _get(world, who, "/v1/deposits") for who in ("player_a", "player_b")],
        "subscriptions": [
            await _get(world, who, "/v1/subscriptions/current") for who in ("player_a", "player_b")
        ],
        "tickets": [
            await _get(world, who, "/v1/tickets/current") for who in ("player_a", "player_b")
        ],
        "withdrawals": await _get(world, "admin", "/v1/admin/withdrawals"),
        "prices": await _get(world, "anonymous", "/v1/prices"),
        "game_servers": await _get(world, "admin", "/v1/admin/game-servers"),
        "tournament": await _get(world, "anonymous", f"/v1/tournaments/{tournament}"),
        "history_b": await _get(
            world, "anonymous", f"/v1/players/{world.subjects['player_b']}/tournaments"
        ),
    }


@module_loop
async def test_fields_added_to_a_body_change_nobody(world: World) -> None:
    a, b = world.subjects["player_a"], world.subjects["player_b"]
    admin = {"Authorization": f"Bearer {world.tokens['admin']}"}
    free = await world.http.post("/v1/admin/tournaments", json=TOURNAMENT, headers=admin)
    assert free.status_code == 201, free.text
    tournament = free.json()["id"]
    opened = await world.http.post(
        f"/v1/admin/tournaments/{tournament}/open-registration", headers=admin
    )
    assert opened.status_code == 200, opened.text
    before = await _snapshot(world, tournament)
    newcomer = f"new-{secrets.token_hex(4)}@example.com"
    deposit = world.objects["deposit_id"]
    cases: list[tuple[str, str, str, dict[str, Any], int, str]] = [
        (
            "player_a",
            "POST",
            "/v1/withdrawals",
            {
                "asset": "USD",
                "amount": "1000",
                "rail": "card_refund",
                "destination": deposit,
                "player": b,
            },
            422,
            "unknown_field",
        ),
        (
            "player_a",
            "POST",
            "/v1/deposits",
            {"method": "card", "asset": "USD", "amount": "1000", "player": b},
            422,
            "unknown_field",
        ),
        (
            "player_a",
            "POST",
            "/v1/conversions",
            {"from_asset": "USD", "to_asset": "ETH", "amount": "100", "balance": "99999999"},
            422,
            "unknown_field",
        ),
        (
            "player_b",
            "POST",
            "/v1/subscriptions",
            {"plan": "pro", "subject": a},
            422,
            "unknown_field",
        ),
        ("player_a", "POST", "/v1/tickets", {"queue": QUEUE, "player": b}, 422, "unknown_field"),
        (
            "player_a",
            "POST",
            f"/v1/tournaments/{tournament}/registration",
            {"team": "mine", "player": b},
            422,
            "unknown_field",
        ),
        (
            "player_a",
            "POST",
            f"/v1/tournaments/{tournament}/registration",
            {"roster": [b]},  # a roster is a party's, its leader registering it
            409,
            "roster_not_party",
        ),
        (
            "player_a",
            "POST",
            f"/v1/tournaments/{tournament}/matches/x/dispute",
            {"reason": "lag", "winner": a},
            422,
            "unknown_field",
        ),
        (
            "player_a",
            "POST",
            f"/v1/withdrawals/{world.objects['withdrawal_id']}/cancel",
            {"player": b},
            409,  # no body is read: the withdrawal is sent, so it cannot be cancelled
            "wrong_state",
        ),
        (
            "admin",
            "PUT",
            "/v1/admin/prices/ETH",
            {"price_usd": "1", "admin": True},
            422,
            "unknown_field",
        ),
        (
            "player_a",
            "PUT",
            "/v1/admin/prices/ETH",
            {"price_usd": "1", "role": "admin"},
            403,
            "forbidden",
        ),
        (
            "admin",
            "POST",
            "/v1/admin/game-servers",
            {"name": "x", "role": "admin"},
            422,
            "unknown_field",
        ),
        (
            "admin",
            "POST",
            f"/v1/admin/tournaments/{tournament}/matches/x/resolve",
            {"winner": None, "player": b},
            422,
            "unknown_field",
        ),
        (
            "anonymous",
            "POST",
            "/v1/auth/register",
            {"email": newcomer, "password": PASSWORD, "role": "admin"},
            422,
            "unknown_field",
        ),
        (
            "anonymous",
            "POST",
            "/v1/auth/login",
            {"email": newcomer, "password": PASSWORD, "admin": True},
            422,
            "unknown_field",
        ),
    ]
    failures: list[str] = []
    for who, method, path, body, status, code in cases:
        response = await world.http.request(
            method,
            path,
            json=body,
            headers=world.headers(who) | {"Idempotency-Key": secrets.token_hex(8)},
        )
        if (response.status_code, _code(response)) != (status, code):
            failures.append(f"{method} {path} {sorted(body)} as {who}: {response.text[:200]}")
    assert not failures, "\n".join(failures)
    after = await _snapshot(world, tournament)
    for name in before:
        assert after[name] == before[name], name
    assert before["tournament"][1]["entries"] == {}  # nobody entered
    nobody = await world.http.post("/v1/auth/login", json={"email": newcomer, "password": PASSWORD})
    assert nobody.status_code == 401, nobody.text  # no account was made, admin or not


@module_loop
async def test_player_bs_own_listings_hold_nothing_of_player_as(world: World) -> None:
    a, b = world.subjects["player_a"], world.subjects["player_b"]
    status, wallet = await _get(world, "player_b", "/v1/wallet")
    assert (status, wallet["player"], wallet["balances"]) == (200, b, [])
    status, mine = await _get(world, "player_a", "/v1/wallet")
    assert (status, mine["player"]) == (200, a) and mine["balances"]
    assert (await _get(world, "player_b", "/v1/deposits")) == (200, {"deposits": []})
    deposits = (await _get(world, "player_a", "/v1/deposits"))[1]["deposits"]
    assert world.objects["deposit_id"] in [d["id"] for d in deposits]
    status, history = await _get(world, "player_b", "/v1/transactions")
    assert (status, history["transactions"]) == (200, [])
    status, theirs = await _get(world, "player_a", "/v1/transactions")
    assert world.objects["transfer_id"] in [t["id"] for t in theirs["transactions"]]
    assert (await _get(world, "player_b", "/v1/subscriptions/current"))[0] == 404
    assert (await _get(world, "player_a", "/v1/subscriptions/current"))[0] == 200


# The websocket ------------------------------------------------------------------------------


async def _answer(ws: ClientConnection, ref: str) -> dict[str, Any]:
    """The answer to the frame ``ref`` (publications and presence meanwhile skipped)."""
    while True:
        frame = await receive(ws)
        if frame.get("id") == ref or (frame["type"] == "error" and frame["data"].get("ref") == ref):
            return frame


async def _session(world: World, who: str) -> ClientConnection:
    ws = await connect(world.ws_url)
    token = world.tokens[who]
    auth: dict[str, Any] = {"v": 1, "type": "auth", "id": "auth"}
    if token is not None:
        auth["data"] = {"token": token}
    await ws.send(orjson.dumps(auth).decode())
    opened = await _answer(ws, "auth")
    assert opened["type"] == "auth_ok", opened
    assert opened["data"]["subject"] == world.subjects[who]
    return ws


async def _frame(ws: ClientConnection, ref: str, kind: str, **data: Any) -> dict[str, Any]:
    channel = data.pop("ch", None)
    frame: dict[str, Any] = {"v": 1, "type": kind, "id": ref, "data": data}
    if channel is not None:
        frame["ch"] = channel
    await ws.send(orjson.dumps(frame).decode())
    return await _answer(ws, ref)


Params = Callable[[World, str], dict[str, Any]]
WsRow = tuple[Outcome, Outcome, Outcome, Outcome, Outcome]  # anonymous is a spectator here
WS_PLAYERS: Final[WsRow] = (FORBID, ALLOW, ALLOW, FORBID, FORBID)
WS_A_ONLY: Final[WsRow] = (FORBID, ALLOW, HIDE, FORBID, FORBID)
WS_SERVER: Final[WsRow] = (FORBID, FORBID, FORBID, ALLOW, FORBID)
WS_NOT_ITS_MATCH: Final[WsRow] = (FORBID, FORBID, FORBID, HIDE, FORBID)


def _bad(world: World, who: str) -> dict[str, Any]:
    return {JUNK_FIELD: 1}  # refused after the role is checked: nothing changes


def _match(world: World, who: str) -> dict[str, Any]:
    return {"match": world.objects["match"]}


def _decline(world: World, who: str) -> dict[str, Any]:
    # B declines A's match (not B's to decline); A's own decline is sent malformed, so the
    # match stays in its ready check for the rest of the module
    return {"match": world.objects["match"]} | ({} if who == "player_b" else {JUNK_FIELD: 1})


def _result(world: World, who: str) -> dict[str, Any]:
    return {"match": world.objects["match"], "ranks": [0, 1], "signature": "00"}


# rpc method -> (its parameters, the outcome of each principal)
RPC: Final[dict[str, tuple[Params, WsRow]]] = {
    "queue.join": (lambda w, who: {"queue": "cs2:none:eu"}, WS_PLAYERS),
    "queue.leave": (lambda w, who: {}, WS_PLAYERS),
    "queue.status": (lambda w, who: {}, WS_PLAYERS),
    "match.current": (lambda w, who: {}, WS_PLAYERS),
    "party.create": (_bad, WS_PLAYERS),
    "party.invite": (_bad, WS_PLAYERS),
    "party.join": (_bad, WS_PLAYERS),
    "party.leave": (_bad, WS_PLAYERS),
    "party.status": (_bad, WS_PLAYERS),
    "match.accept": (_match, WS_A_ONLY),  # A accepts A's match; B may not
    "match.decline": (_decline, WS_A_ONLY),
    "server.register": (_bad, WS_SERVER),
    "match.update": (_match, WS_NOT_ITS_MATCH),  # a match not on this server
    "match.result": (_result, WS_NOT_ITS_MATCH),
    "match.abort": (_match, WS_NOT_ITS_MATCH),
}
HIDDEN_RPC_CODES: Final = frozenset({"unknown_match", "not_your_match"})


def _rpc_mismatch(expected: Outcome, frame: dict[str, Any]) -> str | None:
    code = frame["data"].get("code") if frame["type"] == "error" else None
    if expected is ALLOW:
        refused = code in ("forbidden", "not_authenticated", "internal", "unknown_method")
        return f"refused: {code}" if refused else None
    if expected is FORBID:
        return None if code == "forbidden" else f"expected forbidden, got {frame}"
    return None if code in HIDDEN_RPC_CODES else f"expected not-found, got {frame}"


def test_every_rpc_method_is_in_the_table() -> None:
    assert set(RPC) == set(_METHODS), sorted(set(RPC) ^ set(_METHODS))


@module_loop
async def test_every_rpc_method_as_every_principal(world: World) -> None:
    failures: list[str] = []
    for who_index, who in enumerate(PRINCIPALS):
        ws = await _session(world, who)
        try:
            for n, (method, (params, row)) in enumerate(RPC.items()):
                frame = await _frame(ws, f"r{n}", "rpc", method=method, params=params(world, who))
                why = _rpc_mismatch(row[who_index], frame)
                if why is not None:
                    failures.append(f"rpc {method} as {who}: {why}")
            unknown = await _frame(ws, "u", "rpc", method="admin.grant", params={})
            if unknown["data"].get("code") != "unknown_method":
                failures.append(f"rpc admin.grant as {who}: {unknown}")
        finally:
            await ws.close()
    assert not failures, "\n".join(failures)


@module_loop
async def test_nothing_before_authentication_and_no_admin_without_mfa(world: World) -> None:
    async with connect(world.ws_url) as ws:
        before_auth: list[tuple[str, dict[str, Any]]] = [
            ("rpc", {"method": "queue.status", "params": {}}),
            ("rpc", {"method": "server.register", "params": {}}),
            ("subscribe", {"ch": "lobby:authz"}),
            ("publish", {"ch": "lobby:authz", "body": {"text": "hi"}}),
        ]
        for n, (kind, data) in enumerate(before_auth):
            frame = await _frame(ws, f"x{n}", kind, **data)
            assert frame["data"].get("code") == "not_authenticated", frame
    password_only = issue_access_token(
        SECRET, world.subjects["admin"], "admin", f"nomfa-{secrets.token_hex(4)}", int(time.time())
    )
    forged = issue_access_token("f" * 40, world.subjects["admin"], "admin", "s", int(time.time()))
    for token in (password_only, forged):
        async with connect(world.ws_url) as ws:
            frame = await _frame(ws, "auth", "auth", token=token)
            assert frame["data"].get("code") == "bad_token", frame


@module_loop
async def test_forged_and_misused_tokens_are_refused_on_rest_and_websocket(world: World) -> None:
    """Item 8 over the wire: each forgery of an admin token gets 401 on a REST route and
    ``bad_token`` on the websocket, while the honest token passes both."""
    admin, now = world.subjects["admin"], int(time.time())
    claims = {"iss": "leetgaming", "aud": "leetgaming", "sub": admin, "role": "admin"}
    claims |= {"sid": "s", "iat": now, "exp": now + 300, "amr": ["pwd", "otp"]}
    key, kid = signing_key(SECRET, INITIAL_KID), {"kid": INITIAL_KID}
    email = f"forger-{secrets.token_hex(4)}@example.com"
    await world.app.state.identity.create_account(email, PASSWORD, "player")
    session = await world.http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert session.status_code == 200, session.text
    forgeries = {
        "alg none": jwt.encode(claims, None, algorithm="none", headers=kid),
        "no kid": jwt.encode(claims, key, algorithm="HS256"),
        "unknown kid": jwt.encode(claims, key, algorithm="HS256", headers={"kid": "kbad"}),
        "the raw secret": jwt.encode(claims, SECRET, algorithm="HS256", headers=kid),
        "expired": jwt.encode(claims | {"exp": now - 1}, key, algorithm="HS256", headers=kid),
        "no exp": jwt.encode(
            {k: v for k, v in claims.items() if k != "exp"}, key, algorithm="HS256", headers=kid
        ),
        "wrong aud": jwt.encode(claims | {"aud": "x"}, key, algorithm="HS256", headers=kid),
        "wrong iss": jwt.encode(claims | {"iss": "x"}, key, algorithm="HS256", headers=kid),
        "a refresh token": session.json()["refresh_token"],
        "a token signed by another server": issue_access_token("f" * 40, admin, "admin", "s", now),
        "garbage": "a.b.c",
    }
    honest = jwt.encode(claims, key, algorithm="HS256", headers=kid)
    route = "/v1/admin/withdrawals"
    assert (
        await world.http.get(route, headers={"Authorization": f"Bearer {honest}"})
    ).status_code == 200
    for name, token in forgeries.items():
        got = await world.http.get(route, headers={"Authorization": f"Bearer {token}"})
        assert got.status_code == 401, (name, got.status_code, got.text)
        async with connect(world.ws_url) as ws:
            frame = await _frame(ws, "auth", "auth", token=token)
            assert frame["data"].get("code") == "bad_token", (name, frame)


def _channels(
    subjects: Mapping[str, str], objects: Mapping[str, str]
) -> dict[str, tuple[WsRow, WsRow]]:
    """channel -> (who may subscribe, who may publish), per principal."""
    a, b, gs = (subjects[w] for w in ("player_a", "player_b", "game_server"))
    match, tournament = objects["match"], objects["tournament"]
    nobody: WsRow = (FORBID, FORBID, FORBID, FORBID, FORBID)
    return {
        "lobby:authz": (OPEN, (FORBID, ALLOW, ALLOW, FORBID, ALLOW)),
        "queue:authz": ((FORBID, ALLOW, ALLOW, FORBID, ALLOW), nobody),
        f"match:{match}": (OPEN, nobody),
        f"tournament:{tournament}": (OPEN, nobody),
        f"user:{a}": ((FORBID, ALLOW, FORBID, FORBID, ALLOW), nobody),
        f"user:{b}": ((FORBID, FORBID, ALLOW, FORBID, ALLOW), nobody),
        f"gameserver:{gs}": (
            (FORBID, FORBID, FORBID, ALLOW, ALLOW),
            (FORBID, FORBID, FORBID, ALLOW, FORBID),
        ),
        "gameserver:someone-else": ((FORBID, FORBID, FORBID, FORBID, ALLOW), nobody),
        f"referee:{match}": ((FORBID, FORBID, FORBID, FORBID, ALLOW), nobody),
    }


def test_every_channel_namespace_is_in_the_table() -> None:
    from realtime.channel import Namespace

    placeholders = {"match": "m", "tournament": "t"}
    channels = _channels({w: w for w in PRINCIPALS}, placeholders)
    declared = {channel.split(":", 1)[0] for channel in channels}
    assert declared == {str(n) for n in Namespace}, declared


async def _channel_case(
    world: World, who: str, channel: str, subscribe: Outcome, publish: Outcome
) -> list[str]:
    # a connection of its own: refusals count as bad frames, and too many close a session
    failures: list[str] = []
    ws = await _session(world, who)
    try:
        frame = await _frame(ws, "s", "subscribe", ch=channel)
        code = frame["data"].get("code")
        if (subscribe is ALLOW) != (frame["type"] == "subscribed") or (
            subscribe is FORBID and code != "forbidden"
        ):
            failures.append(f"subscribe {channel} as {who}: expected {subscribe}, got {frame}")
        frame = await _frame(ws, "p", "publish", ch=channel, body={"text": "authz"})
        code = frame["data"].get("code")
        if (publish is ALLOW) != (frame["type"] == "published") or (
            publish is FORBID and code != "forbidden"
        ):
            failures.append(f"publish {channel} as {who}: expected {publish}, got {frame}")
    finally:
        await ws.close()
    return failures


@module_loop
async def test_every_channel_namespace_as_every_principal(world: World) -> None:
    cases = [
        _channel_case(world, who, channel, subscribe[i], publish[i])
        for channel, (subscribe, publish) in _channels(world.subjects, world.objects).items()
        for i, who in enumerate(PRINCIPALS)
    ]
    failures = [line for found in await asyncio.gather(*cases) for line in found]
    assert len(cases) == 45
    assert not failures, "\n".join(failures)
