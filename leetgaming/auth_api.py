"""The identity REST endpoints (``/v1/auth/*``, ``/v1/me``, ``/v1/admin/game-servers``).

Every refusal is problem+json with a stable ``code``. Register and login are rate-limited per
client IP and per account (the account key is a hash of the normalised email, so no address is
kept in Redis keys); a limited request is refused with 429 and ``Retry-After`` before any work
is done. A sign-in that presents the device token of an earlier successful one for the same
address counts against that device's limit instead of the account's and the deployment-wide
budget of untrusted sign-ins (:mod:`leetgaming.device_tokens`), so the owner is not locked out
by someone guessing at the account from many addresses. Tokens travel in JSON bodies and the
``Authorization`` header, never in URLs; token responses carry ``Cache-Control: no-store``.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from leetgaming import device_tokens, security
from leetgaming.external_auth import (
    ExternalAuthError,
    Providers,
    check_assertion,
    steam_login_url,
    steam_verify,
)
from leetgaming.identity import Identity, IdentityError, Session, normalize_email
from leetgaming.problems import problem, rate_limited
from leetgaming.ratelimit import Rate, RateLimiter, key_of
from leetgaming.tokens import AccessClaims

BODY_BYTES_MAX: Final = 16 * 1024
_NO_STORE: Final = {"Cache-Control": "no-store"}


@dataclass(frozen=True, slots=True)
class AuthLimits:
    login_per_ip: Rate = field(default_factory=lambda: Rate(20, 60))
    login_per_account: Rate = field(default_factory=lambda: Rate(10, 600))  # without a device
    login_per_device: Rate = field(default_factory=lambda: Rate(10, 600))  # its device token
    login_untrusted: Rate = field(default_factory=lambda: Rate(600, 60))  # all, no device token
    register_per_ip: Rate = field(default_factory=lambda: Rate(10, 3600))
    register_per_account: Rate = field(default_factory=lambda: Rate(3, 3600))
    token_per_ip: Rate = field(default_factory=lambda: Rate(60, 60))  # refresh, game servers


class Refused(Exception):
    """A request turned down: its problem+json response."""

    def __init__(self, response: Response) -> None:
        self.response = response


async def json_body(request: Request, *names: str) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > BODY_BYTES_MAX:
            raise Refused(
                problem(413, f"bodies are at most {BODY_BYTES_MAX} bytes", code="body_too_large")
            )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Refused(problem(400, "the body is not JSON", code="bad_json")) from None
    if not isinstance(body, dict):
        raise Refused(problem(400, "the body is a JSON object", code="bad_json"))
    unknown = sorted(set(body) - set(names))
    if unknown:
        raise Refused(problem(422, f"unknown fields: {', '.join(unknown)}", code="unknown_field"))
    return body


def _session_body(session: Session, **extra: str) -> JSONResponse:
    return JSONResponse(
        {
            "subject": session.subject,
            "role": session.role,
            "access_token": session.access_token,
            "token_type": "Bearer",
            "expires_in": session.expires_in_s,
            "refresh_token": session.refresh_token,
            **extra,
        },
        headers=_NO_STORE,
    )


_STATUS: Final = {
    "invalid_credentials": 401,
    "invalid_token": 401,
    "invalid_email": 422,
    "invalid_password": 422,
    "invalid_name": 422,
    "account_exists": 409,
    "totp_required": 401,
    "bad_totp": 401,
}


def _refusal(exc: IdentityError) -> Response:
    return problem(_STATUS.get(exc.code, 400), str(exc), code=exc.code)


def bearer(request: Request, identity: Identity) -> AccessClaims | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return identity.verify(token.strip())


def admin_without_mfa(claims: AccessClaims) -> Response | None:
    """The refusal of an admin session that did not begin with a TOTP code, or None."""
    if claims.role == "admin" and not claims.mfa:
        return problem(
            403,
            "admins sign in with a TOTP code: enrol (POST /v1/me/totp), then sign in again "
            "with {email, password, totp}",
            code="admin_mfa_required",
        )
    return None


def unauthorized() -> Response:
    return problem(
        401,
        "send a valid access token as Authorization: Bearer",
        code="unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="leetgaming"'},
    )


def auth_routes(
    identity_of: Callable[[], Identity],
    limiter: RateLimiter,
    clock_ms: Callable[[], int],
    limits: AuthLimits | None = None,
    providers_of: Callable[[], Providers | None] = lambda: None,
    gsi_url: str = "https://accounts.google.com/gsi/client",
) -> list[Route]:
    """The routes; ``identity_of`` gives the running app's identity service (it is opened in
    the app's lifespan, after the routes are made). ``gsi_url``: where the portal loads
    Google's sign-in button from."""
    limits = limits or AuthLimits()

    async def limit(*checks: tuple[str, Rate]) -> None:
        now = clock_ms()
        for key, rate in checks:
            wait_ms = await limiter.hit(key, rate, now)
            if wait_ms:
                raise Refused(rate_limited("too many attempts; try again later", wait_ms))

    def ip(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def account(email: object) -> str:
        try:
            return normalize_email(email)
        except IdentityError:
            return "<invalid>"

    def endpoint(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except Refused as refused:
                return refused.response
            except IdentityError as exc:
                return _refusal(exc)
            except ExternalAuthError as exc:
                status = 503 if exc.code == "provider_unavailable" else 401
                return problem(status, str(exc), code=exc.code)

        return run

    @endpoint
    async def register(request: Request) -> Response:
        body = await json_body(request, "email", "password")
        await limit(
            (f"register:ip:{ip(request)}", limits.register_per_ip),
            (key_of("register:account", account(body.get("email"))), limits.register_per_account),
        )
        await identity_of().register(body.get("email"), body.get("password"))
        return JSONResponse(
            {"status": "check_your_mail", "detail": "a link to continue was sent to the address"},
            status_code=202,
        )

    @endpoint
    async def confirm(request: Request) -> Response:
        body = await json_body(request, "token")
        await limit((f"token:ip:{ip(request)}", limits.token_per_ip))
        return _session_body(await identity_of().confirm(body.get("token")))

    @endpoint
    async def login(request: Request) -> Response:
        body = await json_body(request, "email", "password", "totp", "device_token")
        address = account(body.get("email"))
        key = device_tokens.device_key(identity_of().secret)
        device = device_tokens.check(key, address, body.get("device_token"))
        if device is not None:
            await limit(
                (f"login:ip:{ip(request)}", limits.login_per_ip),
                (f"login:device:{device}", limits.login_per_device),
            )
        else:
            await limit(
                (f"login:ip:{ip(request)}", limits.login_per_ip),
                (key_of("login:account", address), limits.login_per_account),
                ("login:untrusted", limits.login_untrusted),
            )
        network = security.network_of(ip(request))
        try:
            session = await identity_of().login(
                body.get("email"), body.get("password"), body.get("totp")
            )
        except IdentityError as failed:
            security.event(
                "sign_in",
                security.account_hash(address),
                "failed",
                reason=failed.code,
                network=network,
                known_device=device is not None,
            )
            raise
        security.event(
            "sign_in",
            f"{session.role}:{session.subject}",
            "ok",
            method="password",
            network=network,
            known_device=device is not None,
        )
        token = body["device_token"] if device is not None else None
        token = token or device_tokens.issue(key, address, secrets.token_bytes(16))
        return _session_body(session, device_token=token)

    @endpoint
    async def refresh(request: Request) -> Response:
        body = await json_body(request, "refresh_token")
        await limit((f"token:ip:{ip(request)}", limits.token_per_ip))
        return _session_body(await identity_of().refresh(body.get("refresh_token")))

    def configured(name: str) -> Providers:
        providers = providers_of()
        if providers is None or (name == "google" and providers.google is None):
            raise Refused(problem(404, f"sign-in with {name} is not configured", code="not_found"))
        if name == "steam" and providers.steam_endpoint is None:
            raise Refused(problem(404, "sign-in with steam is not configured", code="not_found"))
        return providers

    @endpoint
    async def google(request: Request) -> Response:
        body = await json_body(request, "id_token")
        await limit((f"login:ip:{ip(request)}", limits.login_per_ip))
        verifier = configured("google").google
        assert verifier is not None
        found = await verifier.verify(body.get("id_token"))
        return _session_body(
            await identity_of().external_login("google", found.subject, found.email)
        )

    @endpoint
    async def steam_start(request: Request) -> Response:
        providers = configured("steam")
        assert providers.steam_endpoint is not None
        url = steam_login_url(
            providers.steam_endpoint, providers.steam_return_to, providers.base_url
        )
        return RedirectResponse(url, status_code=302, headers=_NO_STORE)

    async def steam_callback(request: Request) -> Response:
        """Back from Steam: to the portal with a login code, or the reason it failed, in the
        fragment."""
        try:
            providers = configured("steam")
            assert providers.steam_endpoint is not None
            await limit((f"login:ip:{ip(request)}", limits.login_per_ip))
            params = dict(request.query_params)
            steam_id, nonce = check_assertion(
                params, providers.steam_endpoint, providers.steam_return_to, clock_ms() / 1000
            )
            if not await steam_verify(providers.http, providers.steam_endpoint, params):
                raise ExternalAuthError("invalid_assertion", "Steam did not confirm the sign-in")
            if not await identity_of().remember_nonce(f"steam:{nonce}"):
                raise ExternalAuthError("invalid_assertion", "this sign-in was already used")
            session = await identity_of().external_login("steam", steam_id, None)
            fragment = urlencode({"login_code": await identity_of().login_code(session)})
        except Refused as refused:
            return refused.response
        except (ExternalAuthError, IdentityError) as exc:
            fragment = urlencode({"login_error": exc.code})
        base = providers_of()
        home = base.base_url.rstrip("/") if base is not None else ""
        return RedirectResponse(f"{home}/#{fragment}", status_code=303, headers=_NO_STORE)

    async def providers(request: Request) -> Response:
        configured = providers_of()
        google = None if configured is None else configured.google
        return JSONResponse(
            {
                "google": None
                if google is None
                else {"client_id": google.client_id, "gsi_url": gsi_url},
                "steam": configured is not None and configured.steam_endpoint is not None,
            }
        )

    @endpoint
    async def exchange(request: Request) -> Response:
        body = await json_body(request, "code")
        await limit((f"token:ip:{ip(request)}", limits.token_per_ip))
        return _session_body(await identity_of().exchange(body.get("code")))

    @endpoint
    async def logout(request: Request) -> Response:
        body = await json_body(request, "refresh_token")
        await identity_of().logout(body.get("refresh_token"))
        return Response(status_code=204)

    @endpoint
    async def game_server_token(request: Request) -> Response:
        body = await json_body(request, "key")
        await limit((f"token:ip:{ip(request)}", limits.token_per_ip))
        server_id, token, ttl = await identity_of().game_server_token(body.get("key"))
        return JSONResponse(
            {
                "subject": server_id,
                "role": "game_server",
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": ttl,
            },
            headers=_NO_STORE,
        )

    @endpoint
    async def me(request: Request) -> Response:
        claims = bearer(request, identity_of())
        if claims is None:
            return unauthorized()
        if claims.role == "game_server":
            return JSONResponse({"subject": claims.subject, "role": claims.role})
        user = await identity_of().user(claims.subject)
        if user is None:
            return unauthorized()
        return JSONResponse(
            {"subject": claims.subject, "role": user[1], "email": user[0]}, headers=_NO_STORE
        )

    def admin(request: Request) -> AccessClaims | Response:
        claims = bearer(request, identity_of())
        if claims is None:
            return unauthorized()
        if claims.role != "admin":
            return problem(403, "admins only", code="forbidden")
        return admin_without_mfa(claims) or claims

    @endpoint
    async def game_servers(request: Request) -> Response:
        claims = admin(request)
        if isinstance(claims, Response):
            return claims
        if request.method == "GET":
            return JSONResponse({"game_servers": await identity_of().game_servers()})
        body = await json_body(request, "name")
        issued = await identity_of().issue_game_server_key(body.get("name"), claims.subject)
        return JSONResponse(
            {
                "id": issued.id,
                "name": issued.name,
                "key": issued.key,
                "detail": "the key is shown once: store it in the game server's configuration",
            },
            status_code=201,
            headers=_NO_STORE,
        )

    @endpoint
    async def revoke_game_server(request: Request) -> Response:
        claims = admin(request)
        if isinstance(claims, Response):
            return claims
        if not await identity_of().revoke_game_server(request.path_params["server_id"]):
            return problem(404, "no such active game server", code="not_found")
        return Response(status_code=204)

    return [
        Route("/v1/auth/register", register, methods=["POST"]),
        Route("/v1/auth/confirm", confirm, methods=["POST"]),
        Route("/v1/auth/login", login, methods=["POST"]),
        Route("/v1/auth/refresh", refresh, methods=["POST"]),
        Route("/v1/auth/logout", logout, methods=["POST"]),
        Route("/v1/auth/google", google, methods=["POST"]),
        Route("/v1/auth/steam/start", steam_start, methods=["GET"]),
        Route("/v1/auth/steam/callback", steam_callback, methods=["GET"]),
        Route("/v1/auth/exchange", exchange, methods=["POST"]),
        Route("/v1/auth/providers", providers, methods=["GET"]),
        Route("/v1/auth/game-server", game_server_token, methods=["POST"]),
        Route("/v1/me", me, methods=["GET"]),
        Route("/v1/admin/game-servers", game_servers, methods=["GET", "POST"]),
        Route("/v1/admin/game-servers/{server_id}", revoke_game_server, methods=["DELETE"]),
    ]
