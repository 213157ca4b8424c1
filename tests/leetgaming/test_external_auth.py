"""Sign-in with Google and Steam against local providers that speak OpenID Connect and OpenID
2.0 (``tests/providers.py``), on the real app: sessions for the right person, and every forged,
expired, replayed or misdirected token or assertion refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from leetgaming.external_auth import ExternalAuthError, check_assertion

from ..providers import OidcProvider, SteamProvider
from ..ws import serving, unused_port
from .test_play import serving_play
from .test_wallet_api import QUEUES

CLIENT_ID, CLIENT_SECRET = "lg-web.apps.example", "shh"


@asynccontextmanager
async def app_with_providers(
    tmp_path: Path, backends: dict[str, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, OidcProvider, SteamProvider, Any, str]]:
    google_port, steam_port = unused_port(), unused_port()
    google = OidcProvider(f"http://127.0.0.1:{google_port}", CLIENT_ID, CLIENT_SECRET)
    steam = SteamProvider(f"http://127.0.0.1:{steam_port}")
    settings = {
        "google_client_id": CLIENT_ID,
        "google_issuer": google.base_url,
        "steam_openid_endpoint": steam.endpoint,
    }
    async with (
        serving(google.app, google_port),
        serving(steam.app, steam_port),
        serving_play(tmp_path, backends, QUEUES, **settings) as (ws_url, state),
    ):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            yield http, google, steam, state, base


async def google_code_flow(http: httpx.AsyncClient, google: OidcProvider, login: str) -> str:
    """What a browser does: authorize at the provider, exchange the code for an ID token."""
    redirect = "http://127.0.0.1/callback"
    nonce = secrets.token_hex(8)
    authorized = await http.get(
        f"{google.base_url}/authorize",
        params={
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": redirect,
            "scope": "openid email profile",
            "state": "xyz",
            "nonce": nonce,
            "login_hint": login,
        },
    )
    assert authorized.status_code == 302
    code = parse_qs(urlsplit(authorized.headers["location"]).query)["code"][0]
    tokens = await http.post(
        f"{google.base_url}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert tokens.status_code == 200, tokens.text
    id_token: str = tokens.json()["id_token"]
    assert jwt.decode(id_token, options={"verify_signature": False})["nonce"] == nonce
    return id_token


async def test_google_id_tokens_are_checked_against_the_providers_keys(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    async with app_with_providers(tmp_path, backends) as (http, google, _, state, _base):
        google.user("alice", f"alice{secrets.token_hex(3)}@example.com")
        google.user("bob", f"bob{secrets.token_hex(3)}@example.com", verified=False)

        async def sign_in(id_token: object) -> httpx.Response:
            return await http.post("/v1/auth/google", json={"id_token": id_token})

        first = await sign_in(await google_code_flow(http, google, "alice"))
        assert first.status_code == 200, first.text
        session = first.json()
        assert session["role"] == "player" and session["refresh_token"]
        me = await http.get(
            "/v1/me", headers={"Authorization": f"Bearer {session['access_token']}"}
        )
        assert me.json()["email"] == google.users["alice"]["email"]
        again = await sign_in(await google_code_flow(http, google, "alice"))
        assert again.json()["subject"] == session["subject"]  # the same account

        # the provider rotates its key: a token with the new kid is refused until the keys may
        # be fetched again (an unknown kid refetches at most once a minute), then accepted
        google.rotate()
        early = await sign_in(google.sign(google.claims("alice")))
        assert (early.status_code, early.json()["code"]) == (401, "invalid_id_token")
        state.providers.google.refresh_min_s = 0  # the minute has passed
        rotated = await sign_in(google.sign(google.claims("alice")))
        assert rotated.status_code == 200, rotated.text
        old_key = google.sign(google.claims("alice"), *reversed(google.keys[0]))
        assert (await sign_in(old_key)).status_code == 200  # still published: still good

        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_pem = (
            google.keys[-1][1]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        good = google.sign(google.claims("alice"))
        header, _, signature = good.split(".")
        other_payload = (
            jwt.encode(google.claims("alice", sub="g-someone-else"), "k" * 32, algorithm="HS256")
        ).split(".")[1]
        forged = {
            "another audience": google.sign(google.claims("alice", aud="someone-else")),
            "another issuer": google.sign(google.claims("alice", iss="https://evil.example")),
            "expired": google.sign(
                google.claims("alice", iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
            ),
            "no exp": google.sign(google.claims("alice", exp=None)),
            "a stranger's key under a known kid": google.sign(
                google.claims("alice"), key=stranger, kid=google.keys[-1][0]
            ),
            "an unknown kid": google.sign(google.claims("alice"), key=stranger, kid="nope"),
            "alg none": jwt.encode(google.claims("alice"), None, algorithm="none"),
            "HS256 keyed with the public key": _hs256_with(
                public_pem, google.claims("alice"), google.keys[-1][0]
            ),
            "a swapped payload": f"{header}.{other_payload}.{signature}",
            "not a token": "abc",
            "not a string": 12,
        }
        for what, token in forged.items():
            refused = await sign_in(token)
            assert refused.status_code == 401, what
            assert refused.json()["code"] == "invalid_id_token", what
        unverified = await sign_in(google.sign(google.claims("bob")))
        assert (unverified.status_code, unverified.json()["code"]) == (401, "email_not_verified")

        # an email that has a password account is not taken over
        taken = f"carol{secrets.token_hex(3)}@example.com"
        await state.identity.create_admin(taken, "correct horse battery staple")
        google.user("carol", taken)
        refused = await sign_in(google.sign(google.claims("carol")))
        assert (refused.status_code, refused.json()["code"]) == (409, "account_exists")


def _hs256_with(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    """An HS256 token keyed with the RSA public key (the algorithm-confusion attack), built by
    hand: PyJWT itself refuses to use a PEM as an HMAC secret."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


async def steam_round_trip(
    http: httpx.AsyncClient, steam: SteamProvider, base: str
) -> tuple[str, httpx.Response]:
    """Start at our site, pass through Steam, come back: the callback URL and its answer."""
    start = await http.get("/v1/auth/steam/start")
    assert start.status_code == 302
    to_steam = start.headers["location"]
    assert to_steam.startswith(steam.endpoint + "?")
    assertion = await http.get(to_steam)
    assert assertion.status_code == 302
    callback = assertion.headers["location"]
    assert callback.startswith(f"{base}/v1/auth/steam/callback?")
    return callback, await http.get(callback)


def fragment(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    return {k: v[0] for k, v in parse_qs(location.partition("#")[2]).items()}


async def test_steam_sign_in_is_verified_with_steam_and_used_once(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    async with app_with_providers(tmp_path, backends) as (http, _, steam, state, base):
        steam.next_user = "7656119" + "".join(secrets.choice("0123456789") for _ in range(10))
        callback, answer = await steam_round_trip(http, steam, base)
        code = fragment(answer)["login_code"]
        assert "login_code" not in answer.headers["location"].partition("#")[0]  # not sent on
        exchanged = await http.post("/v1/auth/exchange", json={"code": code})
        assert exchanged.status_code == 200, exchanged.text
        subject = exchanged.json()["subject"]
        assert await state.identity.external_subject("steam", subject) == steam.next_user
        again = await http.post("/v1/auth/exchange", json={"code": code})
        assert (again.status_code, again.json()["code"]) == (401, "invalid_token")

        # the same assertion again, an edited one, one for another site, a cancel
        assert fragment(await http.get(callback)) == {"login_error": "invalid_assertion"}
        _, fresh = await steam_round_trip(http, steam, base)
        assert "login_code" in fragment(fresh)  # the same Steam user: the same account
        callback, _ = await steam_round_trip(http, steam, base)
        edited = callback.replace(steam.next_user, "76561197960265728")
        assert fragment(await http.get(edited)) == {"login_error": "invalid_assertion"}
        callback, _ = await steam_round_trip(http, steam, base)
        elsewhere = callback.replace(
            "openid.return_to=http", "openid.return_to=https%3A%2F%2Fevil.example%2F%3Fx%3Dhttp"
        )
        assert fragment(await http.get(elsewhere)) == {"login_error": "invalid_assertion"}
        cancelled = await http.get(
            "/v1/auth/steam/callback",
            params={"openid.ns": "http://specs.openid.net/auth/2.0", "openid.mode": "cancel"},
        )
        assert fragment(cancelled) == {"login_error": "cancelled"}


async def test_sign_in_routes_are_absent_when_not_configured(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    async with serving_play(tmp_path, backends, QUEUES) as (ws_url, _):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base) as http:
            google = await http.post("/v1/auth/google", json={"id_token": "x"})
            steam = await http.get("/v1/auth/steam/start")
            assert (google.status_code, steam.status_code) == (404, 404)


@pytest.mark.parametrize("nonce", ["", "2026-13-40T99:00:00Z", "yesterday"])
def test_a_malformed_or_stale_nonce_is_refused(nonce: str) -> None:
    endpoint = "https://steamcommunity.com/openid/login"
    claimed = "https://steamcommunity.com/openid/id/76561197960287930"
    params = {
        "openid.ns": "http://specs.openid.net/auth/2.0",
        "openid.mode": "id_res",
        "openid.op_endpoint": endpoint,
        "openid.claimed_id": claimed,
        "openid.identity": claimed,
        "openid.return_to": "https://lg.example/cb",
        "openid.response_nonce": nonce,
        "openid.assoc_handle": "1",
        "openid.signed": "signed,op_endpoint,claimed_id,identity,return_to,response_nonce,assoc_handle",
        "openid.sig": "x",
    }
    with pytest.raises(ExternalAuthError, match="stale"):
        check_assertion(params, endpoint, "https://lg.example/cb", time.time())
    fresh = params | {"openid.response_nonce": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    assert check_assertion(fresh, endpoint, "https://lg.example/cb", time.time())[0] == (
        "76561197960287930"
    )
