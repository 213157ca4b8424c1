"""Sign-in with Google (OpenID Connect ID tokens) and Steam (OpenID 2.0).

**Google.** The browser gets an ID token from Google (the "Sign in with Google" button, or the
authorization-code flow) and posts it to ``POST /v1/auth/google``. We check it against the
provider's published keys: the issuer's discovery document names its JWKS; the token's ``kid``
picks the key (an unknown ``kid`` refetches the set, at most once a minute, so Google's key
rotation is followed); only RS256; ``iss`` is the configured issuer, ``aud`` our client id,
``exp``, ``iat`` and ``sub`` are required, and ``email_verified`` must be true.

**Steam.** ``GET /v1/auth/steam/start`` redirects to Steam's OpenID 2.0 endpoint
(``checkid_setup``, identifier select). Steam sends the browser back to our callback with a
positive assertion, which we do not trust as it stands: the mode, our return URL, Steam's
endpoint and the claimed id (``https://steamcommunity.com/openid/id/<SteamID64>``) must be
right, the response nonce fresh and unseen, and Steam itself must confirm the signature
(``check_authentication``, direct verification). The callback then hands the browser a
one-time login code in the URL fragment (never sent to a server, so never in an access log),
which the page exchanges for a session (``POST /v1/auth/exchange``).
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import httpx
import jwt
from jwt.algorithms import RSAAlgorithm

GOOGLE_ISSUER: Final = "https://accounts.google.com"
STEAM_ENDPOINT: Final = "https://steamcommunity.com/openid/login"
OPENID_NS: Final = "http://specs.openid.net/auth/2.0"
IDENTIFIER_SELECT: Final = "http://specs.openid.net/auth/2.0/identifier_select"
JWKS_REFRESH_MIN_S: Final = 60  # an unknown kid refetches the keys at most this often
JWKS_MAX_AGE_S: Final = 3600
CLOCK_SKEW_S: Final = 60
ID_TOKEN_CHARS_MAX: Final = 8_192
NONCE_AGE_MAX_S: Final = 300  # a Steam assertion older than this is refused
PROVIDER_TIMEOUT_S: Final = 10.0
_RESPONSE_NONCE: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z.{0,200}")


class ExternalAuthError(Exception):
    """Refused: ``code`` is stable, the message says why (never echoes a token)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class GoogleIdentity:
    subject: str
    email: str


class GoogleVerifier:
    def __init__(
        self,
        client_id: str,
        issuer: str = GOOGLE_ISSUER,
        http: httpx.AsyncClient | None = None,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.issuer = issuer.rstrip("/")
        self.http = http or httpx.AsyncClient(timeout=PROVIDER_TIMEOUT_S)
        self.clock_s = clock_s
        self._keys: dict[str, Any] = {}
        self._fetched_s = -float("inf")
        self.refresh_min_s: float = JWKS_REFRESH_MIN_S

    @property
    def issuers(self) -> list[str]:
        # Google's tokens name their issuer with or without the scheme
        if self.issuer == GOOGLE_ISSUER:
            return [GOOGLE_ISSUER, "accounts.google.com"]
        return [self.issuer]

    async def close(self) -> None:
        await self.http.aclose()

    async def _refresh(self) -> None:
        try:
            discovery = await self.http.get(f"{self.issuer}/.well-known/openid-configuration")
            discovery.raise_for_status()
            jwks = await self.http.get(discovery.json()["jwks_uri"])
            jwks.raise_for_status()
            keys = {
                str(k["kid"]): RSAAlgorithm.from_jwk(k)
                for k in jwks.json()["keys"]
                if k.get("kty") == "RSA" and "kid" in k and k.get("use", "sig") == "sig"
            }
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            raise ExternalAuthError(
                "provider_unavailable", f"Google's keys could not be read: {type(exc).__name__}"
            ) from None
        self._keys, self._fetched_s = keys, self.clock_s()

    async def _key(self, kid: str) -> Any:
        now = self.clock_s()
        age_s = now - self._fetched_s
        if (kid not in self._keys and age_s >= self.refresh_min_s) or age_s >= JWKS_MAX_AGE_S:
            await self._refresh()
        key = self._keys.get(kid)
        if key is None:
            raise ExternalAuthError("invalid_id_token", "the token is signed by an unknown key")
        return key

    async def verify(self, token: object) -> GoogleIdentity:
        bad = ExternalAuthError("invalid_id_token", "the ID token is not valid")
        if not isinstance(token, str) or not 0 < len(token) <= ID_TOKEN_CHARS_MAX:
            raise bad
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise bad from None
        if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
            raise ExternalAuthError("invalid_id_token", "the token is not signed with RS256")
        key = await self._key(header["kid"])
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.client_id,
                issuer=self.issuers,
                leeway=CLOCK_SKEW_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise ExternalAuthError("invalid_id_token", "the ID token has expired") from None
        except jwt.PyJWTError as exc:
            raise ExternalAuthError(
                "invalid_id_token", f"the ID token is not valid ({type(exc).__name__})"
            ) from None
        email = claims.get("email")
        if claims.get("email_verified") is not True or not isinstance(email, str):
            raise ExternalAuthError("email_not_verified", "Google has not verified this email")
        subject = claims["sub"]
        if not isinstance(subject, str) or not 0 < len(subject) <= 255:
            raise bad
        return GoogleIdentity(subject, email)


# -- Steam (OpenID 2.0) --------------------------------------------------------------------


def steam_login_url(endpoint: str, return_to: str, realm: str) -> str:
    """Where to send the browser to sign in with Steam."""
    return (
        endpoint
        + "?"
        + urlencode(
            {
                "openid.ns": OPENID_NS,
                "openid.mode": "checkid_setup",
                "openid.return_to": return_to,
                "openid.realm": realm,
                "openid.identity": IDENTIFIER_SELECT,
                "openid.claimed_id": IDENTIFIER_SELECT,
            }
        )
    )


def _nonce_time_s(nonce: str) -> int | None:
    match = _RESPONSE_NONCE.fullmatch(nonce)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    try:
        return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        return None


def check_assertion(
    params: Mapping[str, str], endpoint: str, return_to: str, now_s: float
) -> tuple[str, str]:
    """The SteamID64 a positive assertion claims and its response nonce, once its fields are
    right (the signature is checked by :func:`steam_verify`), or :class:`ExternalAuthError`."""

    def refuse(why: str) -> ExternalAuthError:
        return ExternalAuthError("invalid_assertion", f"the Steam sign-in is not valid: {why}")

    if params.get("openid.mode") == "cancel":
        raise ExternalAuthError("cancelled", "the Steam sign-in was cancelled")
    if params.get("openid.ns") != OPENID_NS or params.get("openid.mode") != "id_res":
        raise refuse("not a positive OpenID 2.0 assertion")
    if params.get("openid.op_endpoint") != endpoint:
        raise refuse("not from Steam's endpoint")
    if params.get("openid.return_to") != return_to:
        raise refuse("not for this site")
    claimed = params.get("openid.claimed_id", "")
    prefix = endpoint.rsplit("/openid/", 1)[0] + "/openid/id/"
    steam_id = claimed.removeprefix(prefix)
    if (
        not claimed.startswith(prefix)
        or not re.fullmatch(r"7656\d{13}", steam_id)
        or params.get("openid.identity") != claimed
    ):
        raise refuse("no SteamID64 claimed")
    signed = params.get("openid.signed", "").split(",")
    needed = {
        "op_endpoint",
        "claimed_id",
        "identity",
        "return_to",
        "response_nonce",
        "assoc_handle",
    }
    if not needed <= set(signed) or not params.get("openid.sig"):
        raise refuse("the assertion does not sign what it claims")
    nonce = params.get("openid.response_nonce", "")
    issued = _nonce_time_s(nonce)
    if issued is None or abs(now_s - issued) > NONCE_AGE_MAX_S:
        raise refuse("the assertion is stale")
    return steam_id, nonce


def parse_key_values(body: str) -> dict[str, str]:
    """OpenID's key-value form: ``key:value`` lines."""
    out = {}
    for line in body.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


async def steam_verify(http: httpx.AsyncClient, endpoint: str, params: Mapping[str, str]) -> bool:
    """Ask Steam whether it signed the assertion (direct verification)."""
    body = {k: v for k, v in params.items() if k.startswith("openid.")}
    body["openid.mode"] = "check_authentication"
    try:
        answer = await http.post(endpoint, data=body)
    except httpx.HTTPError as exc:
        raise ExternalAuthError(
            "provider_unavailable", f"Steam could not be asked: {type(exc).__name__}"
        ) from None
    if answer.status_code != 200:
        return False
    fields = parse_key_values(answer.text)
    return fields.get("ns") == OPENID_NS and fields.get("is_valid") == "true"


@dataclass
class Providers:
    """The sign-in providers configured for this process."""

    google: GoogleVerifier | None
    steam_endpoint: str | None
    http: httpx.AsyncClient
    base_url: str  # ours: Steam's return_to and realm

    @property
    def steam_return_to(self) -> str:
        return f"{self.base_url.rstrip('/')}/v1/auth/steam/callback"

    async def close(self) -> None:
        await self.http.aclose()  # the Google verifier's client too
