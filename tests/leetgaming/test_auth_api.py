"""The identity REST API over real HTTP (uvicorn), embedded (SQLite, in-process limits) and
distributed (PostgreSQL, Redis limits); mail read from the folder the server writes to."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import io
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from leetgaming import security, totp
from leetgaming.app import create_app
from leetgaming.auth_api import AuthLimits
from leetgaming.logs import make_handler
from leetgaming.passwords import PasswordPolicy, Passwords
from leetgaming.ratelimit import Rate
from leetgaming.settings import Settings
from realtime.envelope import CloseCode

from ..ws import call, connect, serving, unused_port

FAST = Passwords(PasswordPolicy(time_cost=1, memory_kib=8 * 1024))
PASSWORD = "correct horse battery"
PROBLEM = "application/problem+json"
REVOCATION_S = 5.0  # a signed-out session's sockets are closed within this


@dataclass
class Api:
    http: httpx.AsyncClient
    app: Starlette
    ws_url: str
    mail_dir: Path

    def last_link_token(self) -> str:
        newest = sorted(self.mail_dir.glob("*.eml"))[-1]
        message = email.message_from_bytes(newest.read_bytes(), policy=email.policy.default)
        match = re.search(r"#token=(\S+)", message.get_content())  # type: ignore[attr-defined]
        assert match, message
        return match.group(1)


@pytest.fixture
async def api(tmp_path: Path, backends: dict[str, str]) -> AsyncIterator[Api]:
    port = unused_port()
    env = {"LEETGAMING_PORT": str(port), "LEETGAMING_MAIL_DIR": str(tmp_path / "mail")}
    env |= backends
    limits = AuthLimits(
        login_per_account=Rate(3, 600),
        login_per_device=Rate(3, 600),
        login_untrusted=Rate(40, 60),
        register_per_ip=Rate(50, 3600),
    )
    settings = Settings.from_env(env)
    app = create_app(settings, passwords=FAST, auth_limits=limits)
    async with serving(app, port):
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as http:
            yield Api(http, app, base.replace("http", "ws") + "/ws", tmp_path / "mail")


async def sign_up(api: Api, address: str) -> dict[str, object]:
    registered = await api.http.post(
        "/v1/auth/register", json={"email": address, "password": PASSWORD}
    )
    assert registered.status_code == 202, registered.text
    confirmed = await api.http.post("/v1/auth/confirm", json={"token": api.last_link_token()})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.headers["cache-control"] == "no-store"
    body: dict[str, object] = confirmed.json()
    return body


async def login(api: Api, address: str, **extra: object) -> httpx.Response:
    return await api.http.post(
        "/v1/auth/login", json={"email": address, "password": PASSWORD, **extra}
    )


async def mfa_admin(api: Api, address: str) -> dict[str, str]:
    """An admin made by the operator (the app's identity service stands in for the CLI, which
    test_cli_admin covers), enrolled in TOTP, signed in with a code: its auth header."""
    await api.app.state.identity.create_admin(address, PASSWORD)
    first = (await login(api, address)).json()
    password_only = {"Authorization": f"Bearer {first['access_token']}"}
    enrolled = await api.http.post("/v1/me/totp", headers=password_only)
    assert enrolled.status_code == 201, enrolled.text
    secret = enrolled.json()["secret"]
    now = time.time()
    confirmed = await api.http.post(
        "/v1/me/totp/confirm", json={"code": totp.code_at(secret, now)}, headers=password_only
    )
    assert confirmed.status_code == 200, confirmed.text
    signed_in = await login(api, address, totp=totp.code_at(secret, now + totp.STEP_S))
    assert signed_in.status_code == 200, signed_in.text
    return {"Authorization": f"Bearer {signed_in.json()['access_token']}"}


async def test_admins_act_only_in_a_session_begun_with_a_totp_code(api: Api) -> None:
    address = "ada@example.com"
    await api.app.state.identity.create_admin(address, PASSWORD)
    first = await login(api, address)
    assert first.status_code == 200  # not enrolled yet: a password-only session
    password_only = {"Authorization": f"Bearer {first.json()['access_token']}"}
    for method, path in [
        ("GET", "/v1/admin/game-servers"),
        ("GET", "/v1/admin/withdrawals"),
        ("GET", "/v1/admin/audit"),
        ("POST", "/v1/admin/tournaments"),
    ]:
        refused = await api.http.request(method, path, headers=password_only, json={})
        assert (refused.status_code, refused.json()["code"]) == (403, "admin_mfa_required"), path
    async with connect(api.ws_url) as ws:
        denied = await call(ws, type="auth", id="a", data={"token": first.json()["access_token"]})
        assert denied["type"] == "error"
    enrolled = await api.http.post("/v1/me/totp", headers=password_only)
    secret = enrolled.json()["secret"]
    now = time.time()
    await api.http.post(
        "/v1/me/totp/confirm", json={"code": totp.code_at(secret, now)}, headers=password_only
    )
    # enrolled: a code is required, then the session is an admin's, and so is its refresh
    needed = await login(api, address)
    assert (needed.status_code, needed.json()["code"]) == (401, "totp_required")
    signed_in = await login(api, address, totp=totp.code_at(secret, now + totp.STEP_S))
    assert signed_in.status_code == 200, signed_in.text
    refreshed = await api.http.post(
        "/v1/auth/refresh", json={"refresh_token": signed_in.json()["refresh_token"]}
    )
    auth = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert (await api.http.get("/v1/admin/game-servers", headers=auth)).status_code == 200
    # the stored secret is sealed: the database alone does not give the codes
    stored = await api.app.state.identity.db.fetchone(
        "SELECT secret FROM totp_secrets WHERE player = ?", signed_in.json()["subject"]
    )
    assert stored[0].startswith("v1:") and secret not in stored[0]


async def test_sign_up_sign_in_refresh_and_log_out(api: Api) -> None:
    session = await sign_up(api, "alice@example.com")
    me = await api.http.get(
        "/v1/me", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert me.json() == {
        "subject": session["subject"],
        "role": "player",
        "email": "alice@example.com",
    }
    login = await api.http.post(
        "/v1/auth/login", json={"email": "Alice@Example.com", "password": PASSWORD}
    )
    assert login.status_code == 200 and login.json()["token_type"] == "Bearer"
    refreshed = await api.http.post(
        "/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200
    reused = await api.http.post(
        "/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    assert (reused.status_code, reused.headers["content-type"], reused.json()["code"]) == (
        401,
        PROBLEM,
        "invalid_token",
    )
    logout = await api.http.post(
        "/v1/auth/logout", json={"refresh_token": session["refresh_token"]}
    )
    assert logout.status_code == 204
    after = await api.http.post(
        "/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert after.status_code == 401
    # An access token works on the websocket while its session lasts; the refresh token and
    # passwords never do; a signed-out session's access token opens no new socket.
    fresh = await api.http.post(
        "/v1/auth/login", json={"email": "alice@example.com", "password": PASSWORD}
    )
    async with connect(api.ws_url) as ws:
        ok = await call(ws, type="auth", id="a", data={"token": fresh.json()["access_token"]})
        assert (ok["type"], ok["data"]["subject"]) == ("auth_ok", session["subject"])
    async with connect(api.ws_url) as ws:
        bad = await call(ws, type="auth", id="a", data={"token": session["refresh_token"]})
        assert bad["data"]["code"] == "bad_token"
    async with connect(api.ws_url) as ws:
        ended = await call(ws, type="auth", id="a", data={"token": session["access_token"]})
        assert ended["data"]["code"] == "bad_token"


async def closed_with(ws: ClientConnection) -> int | None:
    """Read until the server closes the socket (within REVOCATION_S); its close code."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), REVOCATION_S)
    return ws.close_code


async def test_signing_out_closes_the_sessions_websockets(api: Api) -> None:
    first = await sign_up(api, "carol@example.com")
    second = (
        await api.http.post(
            "/v1/auth/login", json={"email": "carol@example.com", "password": PASSWORD}
        )
    ).json()
    sockets = [await connect(api.ws_url) for _ in range(3)]
    try:
        for ws, session in zip(sockets, (first, first, second), strict=True):
            ok = await call(ws, type="auth", id="a", data={"token": session["access_token"]})
            assert ok["type"] == "auth_ok"
        started = time.monotonic()
        out = await api.http.post("/v1/auth/logout", json={"refresh_token": first["refresh_token"]})
        assert out.status_code == 204
        assert [await closed_with(ws) for ws in sockets[:2]] == [CloseCode.SESSION_REVOKED] * 2
        assert time.monotonic() - started < REVOCATION_S
        # the other session of the same player is untouched...
        assert (await call(sockets[2], type="ping"))["type"] == "pong"
        # ...until its refresh token is used twice: the family is revoked, its socket closed
        renewed = await api.http.post(
            "/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
        )
        assert renewed.status_code == 200
        stolen = await api.http.post(
            "/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
        )
        assert stolen.status_code == 401
        assert await closed_with(sockets[2]) == CloseCode.SESSION_REVOKED
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


async def test_responses_never_tell_whether_an_email_exists(api: Api) -> None:
    await sign_up(api, "bob@example.com")
    taken = await api.http.post(
        "/v1/auth/register", json={"email": "bob@example.com", "password": PASSWORD}
    )
    fresh = await api.http.post(
        "/v1/auth/register", json={"email": "new@example.com", "password": PASSWORD}
    )
    assert (taken.status_code, taken.json()) == (fresh.status_code, fresh.json())
    wrong = await api.http.post(
        "/v1/auth/login", json={"email": "bob@example.com", "password": "not the password"}
    )
    unknown = await api.http.post(
        "/v1/auth/login", json={"email": "ghost@example.com", "password": "not the password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_login_is_limited_per_account_and_answers_retry_after(api: Api) -> None:
    for _ in range(3):
        refused = await api.http.post(
            "/v1/auth/login", json={"email": "carol@example.com", "password": "guess guess 1"}
        )
        assert refused.status_code == 401
    limited = await api.http.post(
        "/v1/auth/login", json={"email": "CAROL@example.com", "password": "guess guess 2"}
    )
    assert (limited.status_code, limited.json()["code"]) == (429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 600
    other = await api.http.post(
        "/v1/auth/login", json={"email": "dave@example.com", "password": "guess guess 3"}
    )
    assert other.status_code == 401  # another account is not limited


@contextlib.asynccontextmanager
async def from_address(api: Api, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose connections leave from ``address``: all of 127.0.0.0/8 is this machine,
    so the server sees a different peer per address (as it would many attackers' machines)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=api.http.base_url, transport=transport) as http:
        yield http


async def test_guessing_from_many_addresses_is_throttled_and_never_locks_the_owner_out(
    api: Api,
) -> None:
    owner = "olive@example.com"
    await sign_up(api, owner)
    first = await login(api, owner)
    assert first.status_code == 200, first.text
    device = first.json()["device_token"]
    assert device.startswith("dv1.")

    # guesses at the owner's password from 12 addresses, 2 each: the account's limit (3 per
    # 10 minutes here, the owner's sign-in was one) stops them after 2, whatever address
    answers = []
    for n in range(12):
        async with from_address(api, f"127.0.0.{10 + n}") as http:
            for _ in range(2):
                guess = {"email": owner, "password": f"guess number {n}"}
                answers.append((await http.post("/v1/auth/login", json=guess)).status_code)
    assert answers == [401] * 2 + [429] * 22, answers

    # the owner's device passes: its sign-ins count against its own limit
    back = await login(api, owner, device_token=device)
    assert back.status_code == 200, back.text
    assert back.json()["device_token"] == device
    # without it (a new device) the account's limit holds for the owner too
    assert (await login(api, owner)).status_code == 429
    # a device token is bound to its address: another account's, or a tampered one, is none
    await sign_up(api, "pat@example.com")
    others = (await login(api, "pat@example.com")).json()["device_token"]
    tampered = device[:-4] + ("AAAA" if not device.endswith("AAAA") else "BBBB")
    for token in (others, tampered, "dv1.x.y", 12):
        assert (await login(api, owner, device_token=token)).status_code == 429, token
    # a stolen device token buys its own small budget, no more
    for _ in range(2):
        wrong = {"email": owner, "password": "a thief's guess", "device_token": device}
        assert (await api.http.post("/v1/auth/login", json=wrong)).status_code == 401
    limited = await login(api, owner, device_token=device)
    assert (limited.status_code, limited.json()["code"]) == (429, "rate_limited")

    # a spoofed X-Forwarded-For changes nothing: limits key on the socket's peer (20/minute)
    async with from_address(api, "127.0.0.99") as http:
        spoofed = []
        for n in range(21):
            guess = {"email": f"victim{n}@example.com", "password": "guess guess"}
            headers = {"X-Forwarded-For": f"203.0.113.{n}"}
            answer = await http.post("/v1/auth/login", json=guess, headers=headers)
            spoofed.append(answer.status_code)
    assert spoofed == [401] * 20 + [429], spoofed

    # credential stuffing: a different account per attempt from 30 more addresses; the
    # deployment's budget of sign-ins without a device token (40 a minute here) runs out
    stuffed = []
    for n in range(30):
        async with from_address(api, f"127.0.1.{n + 1}") as http:
            for m in range(2):
                pair = {"email": f"leaked{n}-{m}@example.com", "password": "hunter2 hunter2"}
                stuffed.append((await http.post("/v1/auth/login", json=pair)).status_code)
    assert stuffed.count(401) < 25 and stuffed.count(429) > 35, stuffed
    # while it is spent, a device that signed in before still passes
    pats = await login(api, "pat@example.com", device_token=others)
    assert pats.status_code == 200, pats.text


async def test_bad_bodies_are_refused_with_problems(api: Api) -> None:
    cases = [
        (b"{not json", 400, "bad_json"),
        (b"[1, 2]", 400, "bad_json"),
        (b'{"email": "a@b.co", "password": "x", "admin": true}', 422, "unknown_field"),
        (b'{"email": "a@b.co", "password": "' + b"x" * 20_000 + b'"}', 413, "body_too_large"),
        (b'{"email": "nope", "password": "long enough password"}', 422, "invalid_email"),
        (b'{"email": "a@b.co", "password": "short"}', 422, "invalid_password"),
    ]
    for body, status, code in cases:
        response = await api.http.post("/v1/auth/register", content=body)
        assert (response.status_code, response.headers["content-type"]) == (status, PROBLEM)
        assert response.json()["code"] == code
    assert not list(api.mail_dir.glob("*.eml"))  # nothing was sent for any of them


async def test_game_servers_get_keys_from_admins_only_and_exchange_them(api: Api) -> None:
    player = await sign_up(api, "erin@example.com")
    no_token = await api.http.post("/v1/admin/game-servers", json={"name": "eu-1"})
    assert (no_token.status_code, no_token.json()["code"]) == (401, "unauthorized")
    as_player = await api.http.post(
        "/v1/admin/game-servers",
        json={"name": "eu-1"},
        headers={"Authorization": f"Bearer {player['access_token']}"},
    )
    assert (as_player.status_code, as_player.json()["code"]) == (403, "forbidden")
    auth = await mfa_admin(api, "root@example.com")
    issued = await api.http.post("/v1/admin/game-servers", json={"name": "eu-1"}, headers=auth)
    assert issued.status_code == 201 and issued.json()["key"].startswith("lgsk_")
    listed = await api.http.get("/v1/admin/game-servers", headers=auth)
    assert issued.json()["key"] not in listed.text
    exchanged = await api.http.post("/v1/auth/game-server", json={"key": issued.json()["key"]})
    assert exchanged.status_code == 200 and exchanged.json()["role"] == "game_server"
    server_id = issued.json()["id"]
    async with connect(api.ws_url) as ws:
        ok = await call(ws, type="auth", id="a", data={"token": exchanged.json()["access_token"]})
        assert (ok["data"]["role"], ok["data"]["subject"]) == ("game_server", server_id)
        own = await call(ws, type="subscribe", id="s", ch=f"gameserver:{server_id}")
        assert own["type"] == "subscribed"
        other = await call(ws, type="subscribe", id="t", ch="gameserver:someone-else")
        assert other["data"]["code"] == "forbidden"
    revoked = await api.http.delete(f"/v1/admin/game-servers/{server_id}", headers=auth)
    assert revoked.status_code == 204
    again = await api.http.post("/v1/auth/game-server", json={"key": issued.json()["key"]})
    assert (again.status_code, again.json()["code"]) == (401, "invalid_credentials")


@contextmanager
def security_events() -> Iterator[io.StringIO]:
    """What the security event log writes (the product's JSON lines), while inside."""
    out = io.StringIO()
    handler = make_handler(out)
    logger = logging.getLogger("leetgaming.security")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_security_events_name_the_actor_and_never_the_secrets(api: Api) -> None:
    address = "dave@example.com"
    session = await sign_up(api, address)
    subject = str(session["subject"])
    injected = 'mallory@example.com\r\n{"event":"sign_in","outcome":"ok"}'
    with security_events() as out:
        assert (await login(api, address)).status_code == 200
        wrong = await api.http.post(
            "/v1/auth/login", json={"email": address, "password": "not the password"}
        )
        assert wrong.status_code == 401
        forged = await api.http.post(
            "/v1/auth/login", json={"email": injected, "password": "not the password"}
        )
        assert forged.status_code in (401, 422)
        for _ in range(3):  # past the per-account limit (3 per 10 minutes here)
            await api.http.post("/v1/auth/login", json={"email": address, "password": "nope"})
        player = {"Authorization": f"Bearer {session['access_token']}"}
        assert (await api.http.get("/v1/admin/audit", headers=player)).status_code == 403
        assert (await api.http.get("/v1/wallet")).status_code == 401
        spend = await api.http.post(
            "/v1/credits/use",
            json={"asset": "LEETCOIN", "amount": "5"},
            headers=player | {"Idempotency-Key": "spend-1"},
        )
        assert (spend.status_code, spend.json()["code"]) == (409, "insufficient_credits")
        async with connect(api.ws_url) as ws:
            await call(ws, type="auth", id="a", data={"token": session["access_token"]})
            refused = await call(ws, type="subscribe", id="s", ch="user:somebody-else")
            assert refused["data"]["code"] == "forbidden"
        await api.http.post("/v1/auth/logout", json={"refresh_token": session["refresh_token"]})
    lines = out.getvalue().splitlines()
    events = [orjson.loads(line) for line in lines]  # each one JSON object on one line
    assert all(e["ts"].endswith("Z") for e in events)  # UTC
    seen = {(e["event"], e["outcome"], e["actor"]) for e in events}
    me = f"player:{subject}"
    assert ("sign_in", "ok", me) in seen
    failed = [e for e in events if e["event"] == "sign_in" and e["outcome"] == "failed"]
    assert len(failed) >= 2 and all(e["actor"].startswith("acct:") for e in failed)
    assert any(e["event"] == "rate_limited" and e["status"] == 429 for e in events)
    assert any(
        e["event"] == "access_denied" and e["actor"] == me and e["status"] == 403 for e in events
    )
    assert any(
        e["event"] == "access_denied" and e["actor"] == "anonymous" and e["status"] == 401
        for e in events
    )
    assert any(
        e["event"] == "access_denied"
        and e["actor"] == subject
        and e["target"] == "user:somebody-else"
        for e in events
    )
    assert ("session_revoked", "ok", me) in seen
    assert any(
        e["event"] == "operation_refused"
        and e["actor"] == me
        and e["code"] == "insufficient_credits"
        for e in events
    )
    # no address, password or token in them; the forged line stayed inside its own record
    text = out.getvalue()
    for secret in (address, "mallory", PASSWORD, "not the password", str(session["access_token"])):
        assert secret not in text
    assert len([e for e in events if e["event"] == "sign_in" and e["outcome"] == "ok"]) == 1
    assert all(e["network"].endswith("/24") for e in events if "network" in e)


def test_clean_neutralizes_line_breaks_and_bounds_values() -> None:
    assert security.clean("a\r\nb\u2028c") == "a\\u000d\\u000ab\\u2028c"
    assert len(security.clean("x" * 10_000)) == security.VALUE_CHARS_MAX
    assert security.network_of("203.0.113.77") == "203.0.113.0/24"
    assert security.network_of("2001:db8:1:2::9") == "2001:db8:1::/48"
    assert security.network_of("not an ip") == "unknown"
