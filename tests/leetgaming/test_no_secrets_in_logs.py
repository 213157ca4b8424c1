"""Item 19 of the security issue: no secret and no personal data in the logs, every flow run.

The real app serves over real HTTP and websockets (uvicorn), embedded (SQLite) and distributed
(PostgreSQL, Redis), while every log record of the process goes through the production handler
(``configure_logging`` at ``debug``: the most it ever writes, uvicorn's and the libraries'
lines included). Each flow keeps the secrets it used or was given: passwords, confirmation
links, access, refresh and device tokens, TOTP secrets and codes, a game server's key and its
token, the server's secret key, the database password, the Stripe keys, a card number, a
PaymentIntent's client secret, email addresses, the client's IP address (and one forwarded by a
proxy). None of them, nor any WINDOW-long piece of one, may be in what was written. The public
websocket feeds (lobby, match and tournament channels, which anonymous spectators read) and the
public REST reads carry no email address and no full IP address either.

The test process is the server and its clients at once. A record is the server's when it is
written from the server's task or anything that task started (a context variable set for it
follows its tasks and threads); only those are checked. The clients' (httpx, the websocket
client, the Stripe SDK standing in for Stripe.js in a player's browser) show what a client
sent, so they are kept apart, and serve to show that a secret did reach a log of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email
import email.policy
import io
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import stripe
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from leetgaming import totp
from leetgaming.app import create_app
from leetgaming.auth_api import AuthLimits
from leetgaming.logs import configure_logging
from leetgaming.passwords import PasswordPolicy, Passwords
from leetgaming.ratelimit import Rate
from leetgaming.settings import Settings
from leetgaming.tokens import issue_access_token

from ..ws import call, connect, receive, serving, unused_port
from .test_deposits import pay
from .test_play import sign
from .test_tournaments_api import CONFIG
from .test_wallet_api import fund

T = TypeVar("T")

FAST = Passwords(PasswordPolicy(time_cost=1, memory_kib=8 * 1024))
LIMITS = AuthLimits(
    login_per_account=Rate(20, 600),
    login_per_device=Rate(20, 600),
    login_untrusted=Rate(100, 60),
    register_per_ip=Rate(50, 3600),
)
QUEUES = """
[queue."cs2:1v1:eu"]
team_size = 1
window_start = 50.0
window_max = 50.0
ready_check_s = 10
"""
# Every client connects from this address (all of 127.0.0.0/8 is this machine); the server
# listens on 127.0.0.1, so this one is in a log only where a client is named.
CLIENT_IP = "127.45.67.89"
CLIENT_NETWORK = "127.45.67.0/24"
FORWARDED_IP = "203.0.113.77"  # a player's address, as a proxy in front would forward it
GAME_SERVER_ADDRESS = "198.51.100.23:27015"  # where players connect to play: theirs only
CARD = "4242424242424242"
WINDOW = 12  # a piece of a secret this long in a log is a leak
CLIENT_LOGGERS = ("httpx", "httpcore", "websockets.client")  # the server uses none of these
SERVER_LOGGERS = ("leetgaming", "uvicorn", "realtime", "ledger", "wallet", "matchmaking")

SIDE: contextvars.ContextVar[str] = contextvars.ContextVar("side", default="client")


class BySide(io.StringIO):
    """The lines written while the server runs as its own; the clients' apart, in
    ``clients``."""

    def __init__(self) -> None:
        super().__init__()
        self.clients = io.StringIO()

    def write(self, text: str) -> int:
        if SIDE.get() == "server":
            return super().write(text)
        return self.clients.write(text)


@contextmanager
def all_logs() -> Iterator[BySide]:
    """Every record of the process through the production handler, as ``leetgaming serve``
    configures it, at debug, into a buffer; the previous configuration back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    named = [
        logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    ]
    kept = [(list(lg.handlers), lg.propagate, lg.level, lg.disabled) for lg in named]
    out = BySide()
    configure_logging("debug", stream=out)
    try:
        yield out
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for lg, (handlers, propagate, level, disabled) in zip(named, kept, strict=True):
            lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, disabled
            lg.setLevel(level)


@dataclass
class Server:
    http: httpx.AsyncClient
    base: str
    ws_url: str
    state: Any
    secret_key: str
    mail_dir: Path
    context: contextvars.Context

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """``work`` done on the server's side, its records checked as the server's (what the
        operator's CLI does, such as making an admin)."""
        return await asyncio.get_running_loop().create_task(work, context=self.context.copy())

    def last_link_token(self) -> str:
        newest = sorted(self.mail_dir.glob("*.eml"))[-1]
        message = email.message_from_bytes(newest.read_bytes(), policy=email.policy.default)
        match = re.search(r"#token=(\S+)", message.get_content())
        assert match, message
        return match.group(1)

    def ws(self, query: str = "", **options: Any) -> Any:
        """A websocket from CLIENT_IP, to ``/ws`` with ``query``."""
        return connect(self.ws_url + query, local_addr=(CLIENT_IP, 0), **options)

    def admin(self) -> dict[str, str]:
        """An admin's header (a signed-in admin's token, made here as test_wallet_api does)."""
        token = issue_access_token(
            self.secret_key, "root", "admin", "s", int(time.time()), mfa=True
        )
        return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def served(
    tmp_path: Path, backends: dict[str, str], **settings: str
) -> AsyncIterator[Server]:
    """The app on ``backends`` with ``settings`` (by field name), served by uvicorn; its HTTP
    client leaves from CLIENT_IP."""
    (tmp_path / "queues.toml").write_text(QUEUES)
    port = unused_port()
    secret_key = secrets.token_urlsafe(32)
    env = {
        "LEETGAMING_PORT": str(port),
        "LEETGAMING_SECRET_KEY": secret_key,
        "LEETGAMING_QUEUES_FILE": str(tmp_path / "queues.toml"),
        "LEETGAMING_MAIL_DIR": str(tmp_path / "mail"),
        "LEETGAMING_REST_REQUESTS_PER_MIN": "100000",
    }
    env |= backends
    env |= {f"LEETGAMING_{name.upper()}": value for name, value in settings.items()}
    app = create_app(Settings.from_env(env), passwords=FAST, auth_limits=LIMITS)
    side = SIDE.set("server")  # the server's task copies this context, and so does all it starts
    context = contextvars.copy_context()
    async with serving(app, port):
        SIDE.reset(side)
        base = f"http://127.0.0.1:{port}"
        transport = httpx.AsyncHTTPTransport(local_address=CLIENT_IP)
        async with httpx.AsyncClient(base_url=base, transport=transport, timeout=30) as http:
            yield Server(
                http, base, f"ws://127.0.0.1:{port}/ws", app.state, secret_key,
                tmp_path / "mail", context,
            )  # fmt: skip


@dataclass
class Deployment:
    backends: dict[str, str]
    probes: dict[str, str]  # its own secrets: the database's password, when it has one


@pytest.fixture
def deployment(own_backends: dict[str, str]) -> Deployment:
    """The backends (distributed: on a database of the test's own, since its flows leave
    ratings and tournaments that other tests list), with a password in the PostgreSQL URL
    (trust authentication ignores it; the URL is what a deployment configures, and what the
    app logs, redacted, as it starts)."""
    backends = own_backends
    url = backends["LEETGAMING_DATABASE_URL"]
    if not url.startswith("postgresql://postgres@"):
        return Deployment(backends, {})
    password = f"dbpw{secrets.token_hex(10)}"
    with_password = url.replace("postgres@", f"postgres:{password}@", 1)
    return Deployment(
        backends | {"LEETGAMING_DATABASE_URL": with_password}, {"database password": password}
    )


def pieces(value: str) -> list[str]:
    """``value``, or every WINDOW-long piece of it."""
    if len(value) <= WINDOW:
        return [value]
    return [value[i : i + WINDOW] for i in range(len(value) - WINDOW + 1)]


def leaked(text: str, probes: dict[str, str]) -> list[str]:
    """The names of the probes in ``text``, whole or by a WINDOW-long piece."""
    return [name for name, value in probes.items() if any(p in text for p in pieces(value))]


def jwt_signature(token: str) -> str:
    """A JWT's signature: the part only its issuer can make (its header is the same in every
    token, and its claims, such as the subject, are in the logs on purpose)."""
    header, _, signature = token.split(".")
    assert header.startswith("eyJ") and len(signature) >= 40, token
    return signature


def add_session(probes: dict[str, str], name: str, session: dict[str, Any]) -> None:
    probes[f"access token ({name})"] = jwt_signature(session["access_token"])
    probes[f"refresh token ({name})"] = session["refresh_token"]
    assert len(session["refresh_token"]) >= 40


def add_email(probes: dict[str, str], name: str, address: str) -> None:
    probes[name] = address
    probes[f"{name} (its local part)"] = address.split("@")[0]


def server_lines(logs: BySide, deployment: Deployment) -> tuple[str, list[dict[str, Any]]]:
    """What the server wrote (each line one JSON object), after checking that the clients'
    lines and the server's were told apart, and that the server logged its settings."""
    text, clients = logs.getvalue(), logs.clients.getvalue()
    lines = [orjson.loads(line) for line in text.splitlines()]
    other = [orjson.loads(line) for line in clients.splitlines()]
    assert not [e for e in lines if e["logger"].startswith(CLIENT_LOGGERS)], "a client's line"
    assert not [e for e in other if e["logger"].startswith(SERVER_LOGGERS)], "a server line hid"
    [starting] = [e for e in lines if e["msg"] == "starting"]
    assert starting["settings"]["secret_key"] == "***"
    if deployment.probes:  # the URL with its password was the one configured
        assert starting["settings"]["database_url"].startswith("postgresql://postgres:***@")
    return text, lines


def check_no_leak(text: str, probes: dict[str, str], codes: list[str]) -> None:
    found = leaked(text, probes)
    assert not found, f"in the server's log: {found}"
    for code in codes:  # six digits: only a number on its own counts
        assert not re.search(rf"(?<![0-9]){code}(?![0-9])", text), f"TOTP code {code} logged"


async def sign_up(server: Server, address: str, password: str) -> dict[str, Any]:
    registered = await server.http.post(
        "/v1/auth/register", json={"email": address, "password": password}
    )
    assert registered.status_code == 202, registered.text
    confirmed = await server.http.post("/v1/auth/confirm", json={"token": server.last_link_token()})
    assert confirmed.status_code == 200, confirmed.text
    body: dict[str, Any] = confirmed.json()
    return body


def bearer(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['access_token']}"}


async def test_identity_flows_log_no_secret(tmp_path: Path, deployment: Deployment) -> None:
    """Sign-up, confirmation, sign-in (again with the device token), failed sign-ins, a body
    that is not JSON, refresh, a replayed refresh token, sign-out; an admin's TOTP enrolment
    and sign-in with a code (a wrong code first); a game server's key issued, a forged one
    refused, the real one exchanged; websockets authenticated with tokens, a refused
    subscription, a refresh token offered as an access token; tokens, keys, a cookie, an
    Authorization and a forwarded address on the websocket handshake and in query strings;
    a page of another origin refused."""
    probes = dict(deployment.probes)
    codes: list[str] = []
    with all_logs() as logs:
        async with served(tmp_path, deployment.backends) as server:
            http = server.http
            player = f"pl{secrets.token_hex(6)}@example.com"
            password = f"pw {secrets.token_hex(8)} horse battery"
            add_email(probes, "player email", player)
            probes["password"] = password
            registered = await http.post(
                "/v1/auth/register", json={"email": player, "password": password}
            )
            assert registered.status_code == 202, registered.text
            link = server.last_link_token()
            probes["confirmation link token"] = link
            confirmed = await http.post("/v1/auth/confirm", json={"token": link})
            assert confirmed.status_code == 200, confirmed.text
            first = confirmed.json()
            add_session(probes, "sign-up", first)

            logged_in = await http.post(
                "/v1/auth/login", json={"email": player, "password": password}
            )
            assert logged_in.status_code == 200, logged_in.text
            session = logged_in.json()
            add_session(probes, "sign-in", session)
            device = session["device_token"]
            assert device.startswith("dv1.") and len(device) > 40
            probes["device token"] = device.removeprefix("dv1.")
            assert (await http.get("/v1/me", headers=bearer(session))).json()["email"] == player
            again = await http.post(
                "/v1/auth/login",
                json={"email": player, "password": password, "device_token": device},
            )
            assert again.status_code == 200, again.text
            other = again.json()  # a second session, untouched by what happens to the first
            add_session(probes, "second sign-in", other)

            wrong = f"wrong {secrets.token_hex(8)} guess"
            probes["wrong password"] = wrong
            failed = await http.post("/v1/auth/login", json={"email": player, "password": wrong})
            assert failed.status_code == 401
            ghost = f"gh{secrets.token_hex(6)}@example.com"
            add_email(probes, "unknown email", ghost)
            unknown = await http.post("/v1/auth/login", json={"email": ghost, "password": wrong})
            assert unknown.status_code == 401
            broken = await http.post(
                "/v1/auth/login", content=f'{{"email": "{player}", "password": "{password}"'
            )
            assert (broken.status_code, broken.json()["code"]) == (400, "bad_json")

            refreshed = await http.post(
                "/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
            )
            assert refreshed.status_code == 200, refreshed.text
            add_session(probes, "refreshed", refreshed.json())
            replayed = await http.post(
                "/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
            )
            assert replayed.status_code == 401  # the family is revoked
            out = await http.post("/v1/auth/logout", json={"refresh_token": first["refresh_token"]})
            assert out.status_code == 204

            # an admin made by the operator, enrolled in TOTP, signed in with a code
            admin = f"ad{secrets.token_hex(6)}@example.com"
            add_email(probes, "admin email", admin)
            await server.run(server.state.identity.create_admin(admin, password))
            password_only = (
                await http.post("/v1/auth/login", json={"email": admin, "password": password})
            ).json()
            add_session(probes, "admin, password only", password_only)
            enrolled = await http.post("/v1/me/totp", headers=bearer(password_only))
            assert enrolled.status_code == 201, enrolled.text
            totp_secret = enrolled.json()["secret"]
            assert len(totp_secret) >= 16 and totp_secret in enrolled.json()["otpauth_uri"]
            probes["totp secret"] = totp_secret
            now = time.time()
            codes += [totp.code_at(totp_secret, now), totp.code_at(totp_secret, now + totp.STEP_S)]
            codes.append(f"{(int(codes[1]) + 1) % 1_000_000:06d}")  # a wrong one
            enrolment = await http.post(
                "/v1/me/totp/confirm", json={"code": codes[0]}, headers=bearer(password_only)
            )
            assert enrolment.status_code == 200, enrolment.text
            refused = await http.post(
                "/v1/auth/login", json={"email": admin, "password": password, "totp": codes[2]}
            )
            assert (refused.status_code, refused.json()["code"]) == (401, "bad_totp")
            signed_in = await http.post(
                "/v1/auth/login", json={"email": admin, "password": password, "totp": codes[1]}
            )
            assert signed_in.status_code == 200, signed_in.text
            admin_session = signed_in.json()
            add_session(probes, "admin", admin_session)

            # a game server's key, issued and exchanged, and its token on the websocket
            issued = await http.post(
                "/v1/admin/game-servers", json={"name": "eu-1"}, headers=bearer(admin_session)
            )
            assert issued.status_code == 201, issued.text
            key = issued.json()["key"]
            assert key.startswith(f"lgsk_{issued.json()['id']}_")
            # its id is logged, on purpose; its secret part may itself hold "_"
            probes["game-server key"] = key.removeprefix(f"lgsk_{issued.json()['id']}_")
            forged = await http.post("/v1/auth/game-server", json={"key": key[:-6] + "AAAAAA"})
            assert forged.status_code == 401
            exchanged = await http.post("/v1/auth/game-server", json={"key": key})
            assert exchanged.status_code == 200, exchanged.text
            gs_token = exchanged.json()["access_token"]
            probes["game-server access token"] = jwt_signature(gs_token)

            async with server.ws() as ws:
                ok = await call(ws, type="auth", id="a", data={"token": gs_token})
                assert ok["data"]["role"] == "game_server"
                denied = await call(ws, type="subscribe", id="s", ch="gameserver:someone-else")
                assert denied["data"]["code"] == "forbidden"
            async with server.ws() as ws:
                ok = await call(ws, type="auth", id="a", data={"token": other["access_token"]})
                assert ok["type"] == "auth_ok"
                denied = await call(ws, type="subscribe", id="s", ch="user:somebody-else")
                assert denied["data"]["code"] == "forbidden"
            async with server.ws() as ws:
                bad = await call(ws, type="auth", id="a", data={"token": other["refresh_token"]})
                assert bad["data"]["code"] == "bad_token"

            # secrets where they do not belong: query strings, headers of the handshake
            probes["forwarded client ip"] = FORWARDED_IP
            cookie = f"theme=dark; sid={other['refresh_token']}"
            handshake = {
                "Authorization": f"Bearer {other['refresh_token']}",
                "Cookie": cookie,
                "X-Forwarded-For": FORWARDED_IP,
            }
            for query in (
                f"?token={other['refresh_token']}",
                f"?access_token={other['access_token']}",
                f"?key={key}",
                f"?{device}",
            ):
                async with server.ws(query, additional_headers=handshake) as ws:
                    assert (await call(ws, type="ping"))["type"] == "pong"
            probed = await http.get(
                "/v1/wallet",
                params={"access_token": other["access_token"], "key": key},
                headers={"Cookie": cookie, "X-Forwarded-For": FORWARDED_IP},
            )
            assert probed.status_code == 401
            with pytest.raises(InvalidStatus):
                async with server.ws(origin="https://evil.example"):
                    pass
        probes["server secret key"] = server.secret_key
    probes["client ip"] = CLIENT_IP

    text, lines = server_lines(logs, deployment)
    # the capture saw the server's lines, about this client's network
    events = {(e.get("event"), e.get("outcome")) for e in lines}
    assert {("sign_in", "ok"), ("sign_in", "failed"), ("session_revoked", "ok")} <= events
    assert {("access_denied", "denied"), ("ws_origin_refused", "denied")} <= events
    assert all(e["network"] == CLIENT_NETWORK for e in lines if "network" in e)
    routes = {e.get("route") for e in lines if e["logger"] == "leetgaming.http"}
    assert {"/v1/auth/login", "/v1/auth/game-server", "/v1/me/totp/confirm"} <= routes
    assert any(e["level"] == "debug" and e["msg"].startswith("< TEXT") for e in lines)
    check_no_leak(text, probes, codes)
    # uvicorn's line for each websocket names the client's network, and no query string
    accepted = [e["msg"] for e in lines if "[accepted]" in e["msg"]]
    assert f'{CLIENT_NETWORK} - "WebSocket /ws?***" [accepted]' in accepted


async def test_card_deposit_and_withdrawal_log_no_secret(
    tmp_path: Path, deployment: Deployment, localstripe: str
) -> None:
    """A card deposit at localstripe (the player's browser paying with the card), credited by
    localstripe's signed webhook; a forged webhook refused; a withdrawal refunded to the card;
    the wallet read."""
    probes = dict(deployment.probes)
    stripe_key = f"sk_test_{secrets.token_hex(12)}"
    webhook_secret = f"whsec_{secrets.token_hex(16)}"
    probes |= {"stripe secret key": stripe_key, "stripe webhook secret": webhook_secret}
    probes["card number"] = CARD
    stripe_settings = {
        "stripe_secret_key": stripe_key,
        "stripe_webhook_secret": webhook_secret,
        "stripe_api_base": localstripe,
    }
    with all_logs() as logs:
        async with served(tmp_path, deployment.backends, **stripe_settings) as server:
            http = server.http
            player = f"cd{secrets.token_hex(6)}@example.com"
            password = f"pw {secrets.token_hex(8)} card holder"
            add_email(probes, "player email", player)
            probes["password"] = password
            session = await sign_up(server, player, password)
            add_session(probes, "player", session)
            me = bearer(session)
            hook = await http.post(
                f"{localstripe}/_config/webhooks/leetgaming",
                data={"url": f"{server.base}/v1/webhooks/stripe", "secret": webhook_secret},
            )
            assert hook.status_code == 200, hook.text

            made = await http.post(
                "/v1/deposits",
                json={"method": "card", "asset": "USD", "amount": "50000"},
                headers=me | {"Idempotency-Key": secrets.token_hex(8)},
            )
            assert made.status_code == 201, made.text
            deposit = made.json()
            intent, client_secret = deposit["payment_intent"], deposit["client_secret"]
            assert client_secret.startswith(f"{intent}_secret_")
            probes["client secret"] = client_secret.removeprefix(f"{intent}_secret_")
            sdk = stripe.StripeClient(stripe_key, base_addresses={"api": localstripe})
            await pay(sdk, intent, CARD)  # a client: the player's browser
            deadline = time.monotonic() + 15
            while (
                state := (await http.get(f"/v1/deposits/{deposit['id']}", headers=me)).json()[
                    "state"
                ]
            ) != "succeeded":
                assert time.monotonic() < deadline, f"the deposit stayed {state}"
                await asyncio.sleep(0.1)
            forged = await http.post(
                "/v1/webhooks/stripe",
                content=orjson.dumps({"id": "evt_x", "type": "payment_intent.succeeded"}),
                headers={"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"},
            )
            assert forged.status_code == 400

            sent = await http.post(
                "/v1/withdrawals",
                json={
                    "asset": "USD",
                    "amount": "10000",
                    "rail": "card_refund",
                    "destination": deposit["id"],
                },
                headers=me | {"Idempotency-Key": secrets.token_hex(8)},
            )
            assert sent.status_code == 201, sent.text
            assert sent.json()["state"] == "sent", sent.json()
            wallet = (await http.get("/v1/wallet", headers=me)).json()
            usd = next(b for b in wallet["balances"] if b["asset"] == "USD")
            assert usd["available"] == str(50_000 - 1_250 - 10_000)
        probes["server secret key"] = server.secret_key
    probes["client ip"] = CLIENT_IP

    text, lines = server_lines(logs, deployment)
    # the card number did reach a log of this process: the browser's (the Stripe SDK's debug
    # lines, a client's), never the server's
    assert CARD in logs.clients.getvalue()
    stripe_lines = [e["msg"] for e in lines if e["logger"] == "stripe"]
    assert any("Request to Stripe api" in m and "/v1/payment_intents" in m for m in stripe_lines)
    assert any("/v1/refunds" in m for m in stripe_lines)
    assert any("API response body" in m and "client_secret" in m for m in stripe_lines)
    routes = {e.get("route") for e in lines if e["logger"] == "leetgaming.http"}
    assert {"/v1/deposits", "/v1/webhooks/stripe", "/v1/withdrawals"} <= routes
    check_no_leak(text, probes, [])


async def frames_of(ws: ClientConnection, into: list[str]) -> None:
    """Keep every frame ``ws`` gets, raw, in ``into``, until the socket closes."""
    with contextlib.suppress(ConnectionClosed):
        async for raw in ws:
            into.append(str(raw))


async def next_body(ws: ClientConnection, kind: str, match: str | None = None) -> dict[str, Any]:
    """The next publication of ``kind`` (about ``match``, if given) on ``ws``."""
    while True:
        frame = await receive(ws)
        body = frame["data"].get("body") if frame["type"] == "pub" else None
        if body is not None and body["kind"] == kind and match in (None, body.get("match")):
            return body  # type: ignore[no-any-return]


async def ask(ws: ClientConnection, **frame: Any) -> dict[str, Any]:
    """Send ``frame``; the answer to it (publications arriving meanwhile are skipped)."""
    await ws.send(orjson.dumps({"v": 1, **frame}))
    while True:
        answer = await receive(ws)
        if answer.get("id") == frame["id"]:
            return answer


async def rpc(ws: ClientConnection, method: str, **params: Any) -> dict[str, Any]:
    return await ask(ws, type="rpc", id=method, data={"method": method, "params": params})


def kinds_of(frames: list[str]) -> set[str]:
    """What the frames were: their types, a publication's by its body's kind (chat: ``chat``)."""
    kinds = set()
    for raw in frames:
        frame = orjson.loads(raw)
        body = frame["data"].get("body") if frame["type"] == "pub" else None
        if body is None:
            kinds.add(frame["type"])
        else:
            kinds.add("chat" if "text" in body else str(body.get("kind")))
    return kinds


async def test_public_feeds_and_reads_carry_no_address_or_email(
    tmp_path: Path, deployment: Deployment
) -> None:
    """Two players (signed up with their addresses, connected from CLIENT_IP) join the lobby
    and chat; they play a match on a game server that gave its address; they register for a
    tournament. What an anonymous spectator reads on the lobby, match and tournament channels
    (publications, presence), and the public REST reads, carry no email address, no IP
    address and no secret; the logs of all that carry no secret either."""
    probes = dict(deployment.probes)
    seen: list[str] = []  # every frame the spectator got, raw
    with all_logs() as logs:
        async with served(tmp_path, deployment.backends) as server:
            http, admin = server.http, server.admin()
            players: list[tuple[dict[str, Any], ClientConnection]] = []
            for n in range(2):
                address = f"fp{n}{secrets.token_hex(6)}@example.com"
                add_email(probes, f"player {n} email", address)
                session = await sign_up(server, address, f"pw {secrets.token_hex(8)} feeds")
                add_session(probes, f"player {n}", session)
                ws = await server.ws()
                ok = await call(ws, type="auth", id="a", data={"token": session["access_token"]})
                assert ok["type"] == "auth_ok"
                mine = f"user:{session['subject']}"
                assert (await call(ws, type="subscribe", id="u", ch=mine))["type"] == "subscribed"
                players.append((session, ws))
            spectator = await server.ws()
            assert (await call(spectator, type="auth", id="a"))["data"]["role"] == "spectator"
            lobby = await call(spectator, type="subscribe", id="l", ch="lobby:main")
            assert lobby["type"] == "subscribed"
            listening = asyncio.create_task(frames_of(spectator, seen))
            for _, ws in players:
                joined = await ask(ws, type="subscribe", id="l", ch="lobby:main")
                assert joined["type"] == "subscribed", joined
            said = await ask(
                players[0][1],
                type="publish",
                id="p",
                ch="lobby:main",
                data={"body": {"text": "gl hf"}},
            )
            assert said["type"] == "published", said

            # a game server: its key from an admin, its address given as it registers
            issued = await http.post("/v1/admin/game-servers", json={"name": "eu"}, headers=admin)
            assert issued.status_code == 201, issued.text
            key, server_id = issued.json()["key"], issued.json()["id"]
            probes["game-server key"] = key.removeprefix(f"lgsk_{server_id}_")
            exchanged = await http.post("/v1/auth/game-server", json={"key": key})
            assert exchanged.status_code == 200, exchanged.text
            probes["game-server access token"] = jwt_signature(exchanged.json()["access_token"])
            game_server = await server.ws()
            await call(
                game_server, type="auth", id="a", data={"token": exchanged.json()["access_token"]}
            )
            await call(game_server, type="subscribe", id="s", ch=f"gameserver:{server_id}")
            registered = await rpc(
                game_server, "server.register", region="eu", capacity=2, address=GAME_SERVER_ADDRESS
            )
            assert registered["data"]["result"]["server"] == server_id

            # a match: found, accepted, live on the game server, updated, finished
            for _, ws in players:
                queued = await rpc(ws, "queue.join", queue="cs2:1v1:eu")
                assert queued["type"] == "rpc_result", queued
            match_id = (await next_body(players[0][1], "match.found"))["match"]
            await spectator.send(
                orjson.dumps({"v": 1, "type": "subscribe", "id": "m", "ch": f"match:{match_id}"})
            )
            deadline = time.monotonic() + 10
            while "subscribed" not in kinds_of(seen):  # its lobby's answer was read before
                assert time.monotonic() < deadline, "the spectator never got the match channel"
                await asyncio.sleep(0.02)
            for _, ws in players:
                accepted = await rpc(ws, "match.accept", match=match_id)
                assert accepted["type"] == "rpc_result", accepted
            await next_body(game_server, "match.assigned", match_id)
            live = await next_body(players[0][1], "match.live", match_id)
            assert live["address"] == GAME_SERVER_ADDRESS  # the players do get it
            await rpc(game_server, "match.update", match=match_id, live={"round": 1})
            done = await rpc(
                game_server,
                "match.result",
                match=match_id,
                ranks=[0, 1],
                signature=sign(key, match_id, [0, 1]),
            )
            assert done["data"]["result"]["state"] == "finished", done

            # a tournament the players register for (each funded for the entry fee)
            created = await http.post("/v1/admin/tournaments", json=CONFIG, headers=admin)
            assert created.status_code == 201, created.text
            tid = created.json()["id"]
            await spectator.send(
                orjson.dumps({"v": 1, "type": "subscribe", "id": "t", "ch": f"tournament:{tid}"})
            )
            opened = await http.post(
                f"/v1/admin/tournaments/{tid}/open-registration", headers=admin
            )
            assert opened.status_code == 200, opened.text
            for n, (session, _) in enumerate(players):
                await server.run(fund(server.state.ledger, session["subject"], "USD", 2_000, n))
                entered = await http.post(
                    f"/v1/tournaments/{tid}/registration", headers=bearer(session)
                )
                assert entered.status_code == 201, entered.text
            await spectator.send(
                orjson.dumps({"v": 1, "type": "presence", "id": "w", "ch": "lobby:main"})
            )
            subject = players[0][0]["subject"]
            reads = [
                await http.get(path)
                for path in (
                    "/v1/tournaments",
                    f"/v1/tournaments/{tid}",
                    f"/v1/tournaments/{tid}/bracket",
                    f"/v1/tournaments/{tid}/standings",
                    "/v1/leaderboards/cs2:1v1",
                    f"/v1/players/{subject}/ratings/cs2:1v1",
                    f"/v1/players/{subject}/tournaments",
                )
            ]
            expected = {"join", "chat", "match.live", "match.update", "match.finished"}
            expected |= {"tournament.delta", "presence_result"}
            deadline = time.monotonic() + 10
            while not expected <= kinds_of(seen):
                assert time.monotonic() < deadline, expected - kinds_of(seen)
                await asyncio.sleep(0.05)
            for ws in (spectator, game_server, *(ws for _, ws in players)):
                await ws.close()
            await listening
        probes["server secret key"] = server.secret_key
    probes["client ip"] = CLIENT_IP

    assert all(r.status_code == 200 for r in reads), [r.text for r in reads]
    public = "\n".join(seen + [r.text for r in reads])
    assert subject in public  # the players are named, by their ids
    assert "@" not in public, "an email address"
    assert not re.search(r"\b[0-9]{1,3}(\.[0-9]{1,3}){3}\b", public), "an IPv4 address"
    assert not leaked(public, probes), leaked(public, probes)

    text, lines = server_lines(logs, deployment)
    routes = {e.get("route") for e in lines if e["logger"] == "leetgaming.http"}
    assert "/v1/tournaments/{tournament}/registration" in routes
    assert any(e["msg"] == f'{CLIENT_NETWORK} - "WebSocket /ws" [accepted]' for e in lines)
    check_no_leak(text, probes, [])


def test_uvicorn_lines_name_a_network_and_no_query_string_or_credential_header() -> None:
    """What uvicorn (and websockets, on uvicorn's logger) pass as arguments, rewritten; what
    names no client, as it was."""
    with all_logs() as logs:
        side = SIDE.set("server")
        try:
            error = logging.getLogger("uvicorn.error")
            error.info('%s - "WebSocket %s" [accepted]', "203.0.113.77:51234", "/ws?dv1.a.b")
            error.info('%s - "WebSocket %s" %d', "2001:db8:1:2::9:443", "/ws", 403)
            error.debug("< %s %s %s", "GET", "/ws?key=lgsk_x_y", "HTTP/1.1")
            error.debug("< %s: %s", "X-Forwarded-For", "198.51.100.9, 10.0.0.1")
            error.debug("< %s: %s", "Cookie", "theme=dark; sid=opaque")
            error.debug("< %s: %s", "Host", "127.0.0.1:8000")
            error.info("Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", "http", "::1", 80)
        finally:
            SIDE.reset(side)
    assert [orjson.loads(line)["msg"] for line in logs.getvalue().splitlines()] == [
        '203.0.113.0/24 - "WebSocket /ws?***" [accepted]',
        '2001:db8:1::/48 - "WebSocket /ws" 403',
        "< GET /ws?*** HTTP/1.1",
        "< X-Forwarded-For: ***",
        "< Cookie: ***",
        "< Host: 127.0.0.1:8000",  # the server's own name, not a client's
        "Uvicorn running on http://::1:80 (Press CTRL+C to quit)",
    ]
