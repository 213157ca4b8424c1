"""The ASGI application: wiring of settings, probes, metrics and routes.

Invariants:

- ``create_app`` takes its settings as an argument; the app reads no environment variable.
  Only :func:`create_app_from_environ` (the factory uvicorn's worker processes import) does,
  once, at the start of its process.
- ``GET /healthz`` answers 200 while the process can serve HTTP at all; it checks nothing else.
- ``GET /readyz`` answers 200 only when every probe (the database, and Redis when configured)
  answered within its timeout, else 503 naming the checks that failed. Its body holds check
  names and error classes only, never a URL, a host or an error message.
- Every error the app returns is ``application/problem+json`` (RFC 9457).
- Every HTTP request is counted and timed under its route template, and logged (method, path
  without the query string, route, status, duration); the query string is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from web3 import AsyncHTTPProvider, AsyncWeb3

from ledger import Ledger, open_store
from leetgaming import __version__, openapi, security
from leetgaming.admin_api import admin_routes
from leetgaming.audit import AuditLog
from leetgaming.auth_api import AuthLimits, auth_routes
from leetgaming.chain import Chains, ChainSettingsError, ChainSetup, Node, load_chains
from leetgaming.credits import Credits
from leetgaming.cs2 import Cs2
from leetgaming.cs2_api import cs2_routes
from leetgaming.db import open_database
from leetgaming.demos import Demos
from leetgaming.demos_api import demo_routes
from leetgaming.deposits import Deposits
from leetgaming.external_auth import PROVIDER_TIMEOUT_S, GoogleVerifier, Providers
from leetgaming.health import PROBE_TIMEOUT_S, Probe, database_probe, redis_probe
from leetgaming.httpguard import origin_allowed
from leetgaming.idempotency_store import IdempotencyKeys
from leetgaming.identity import KEYRING_REFRESH_S, Identity
from leetgaming.logs import configure_logging
from leetgaming.mail import Mailer
from leetgaming.metrics import CONTENT_TYPE, UNMATCHED_ROUTE, Metrics
from leetgaming.passwords import Passwords
from leetgaming.play import Play
from leetgaming.play_api import play_routes
from leetgaming.problems import problem, rate_limited
from leetgaming.ratelimit import MemoryRateLimiter, Rate, RateLimiter, RedisRateLimiter
from leetgaming.settings import Settings
from leetgaming.subscriptions import Subscriptions
from leetgaming.subscriptions_api import subscription_routes
from leetgaming.tournaments import Tournaments
from leetgaming.tournaments_api import tournament_routes
from leetgaming.two_factor import TwoFactor
from leetgaming.wallet import Wallet
from leetgaming.wallet_api import wallet_routes
from leetgaming.withdrawals import Withdrawals
from leetgaming.withdrawals_api import withdrawal_routes
from matchmaking.queues import parse_queues
from matchmaking.redis_tickets import RedisTicketStore
from matchmaking.servers import MemoryServerRegistry, RedisServerRegistry, ServerRegistry
from matchmaking.service import Matchmaker, QueueConfig
from matchmaking.tickets import MemoryTicketStore, TicketStore
from realtime.channel import Principal, Role
from realtime.presence import RedisConnectionCounts, RedisPresence
from realtime.server import Credential, HubNode
from realtime.streams import RedisStreams
from realtime.wire import WIRE_SCOPE_KEY, Wire
from replays.blobs import BlobStore, LocalBlobStore, S3BlobStore
from wallet.fees import FeeSchedule
from wallet.stripe_gateway import StripeGateway
from wallet.withdrawals import Limits as WithdrawalLimits

REDIS_CONNECTIONS_MAX: Final = 64  # per process
REDIS_POOL_WAIT_S: Final = 5.0
_TOKEN_ROLES: Final = frozenset({"player", "admin", "game_server"})

# Successful requests to these routes are logged at debug level: orchestrators and scrapers
# poll them every few seconds.
# probes, and game servers' event logs (thousands a second; counted and timed in the metrics,
# logged when refused)
_QUIET_ROUTES: Final = frozenset(
    {"/healthz", "/readyz", "/metrics", "/v1/ingest/cs2/{flavor}/{match}"}
)

# Payment providers' webhooks come from a few addresses of theirs, in bursts, and are
# verified by signature: the per-address limit would only make them retry.
# webhooks (the payment provider's) and game servers' event logs (authenticated per match,
# bounded per match) are not counted per IP
_UNLIMITED_PREFIX: Final = ("/v1/webhooks/", "/v1/ingest/")
# the REST API and its documents; the portal's static files and the probes are not counted
_LIMITED_PREFIXES: Final = ("/v1/", "/openapi.json", "/docs")

log = logging.getLogger("leetgaming.app")
request_log = logging.getLogger("leetgaming.http")


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
    return problem(exc.status_code, detail, headers=exc.headers, instance=request.url.path)


async def _server_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log (redacted there); the client learns nothing about it.
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={"method": request.method, "path": request.url.path},
    )
    return problem(500, instance=request.url.path)


class RequestObserver:
    """ASGI middleware that counts, times and logs every HTTP request, and hands the hub each
    websocket's transport (``WIRE_SCOPE_KEY``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # uvicorn's send is a method of the connection's protocol: through its transport
            # the hub writes frames directly and drops a client that stopped reading.
            wire = Wire.of_send(send)
            if wire is not None:
                scope = {**scope, WIRE_SCOPE_KEY: wire}
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start_s = time.perf_counter()
        status = 500  # what the client gets if the app raises before it starts a response

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            duration_s = time.perf_counter() - start_s
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            method = str(scope["method"])
            self.metrics.observe_request(method, route, status, duration_s)
            if status in (401, 403, 429):
                _denied(scope, method, route, status)
            request_log.log(
                logging.DEBUG if route in _QUIET_ROUTES and status < 400 else logging.INFO,
                "request",
                extra={
                    "method": method,
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration_s * 1000, 3),
                },
            )


def _actor(scope: Scope) -> str | None:
    """Who a request's bearer token names (None: no valid one)."""
    header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
    scheme, _, token = header.decode("latin-1").partition(" ")
    identity = getattr(getattr(scope.get("app"), "state", None), "identity", None)
    if scheme.lower() != "bearer" or not token or identity is None:
        return None
    claims = identity.verify(token.strip())
    return None if claims is None else f"{claims.role}:{claims.subject}"


def _denied(scope: Scope, method: str, route: str, status: int) -> None:
    """A refused REST request as a security event: who, what, from which network."""
    security.event(
        "rate_limited" if status == 429 else "access_denied",
        _actor(scope),
        method=method,
        route=route,
        status=status,
        network=security.network_of_client(scope),
    )


SECURITY_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)
STRIPE_API: Final = "https://api.stripe.com"
STRIPE_FRAMES: Final = "https://hooks.stripe.com"  # 3-D Secure pages Stripe.js opens
STRIPE_JS: Final = "https://js.stripe.com"
STRIPE_JS_FRAMES: Final = "https://*.js.stripe.com"


_HOST: Final = re.compile(r"^[a-z0-9.-]+$")


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, rebuilt from its parts (no credentials, nothing
    that could end a directive of the policy it goes into)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not _HOST.match(host):
        raise ValueError(f"not an origin for a content security policy: {url!r}")
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def websocket_endpoint(settings: Settings, hub: HubNode) -> Callable[[WebSocket], Awaitable[None]]:
    """``/ws``: the hub, behind the Origin check (a refused handshake is answered 403 before
    it is accepted, and logged as a security event)."""
    allowed = frozenset(settings.allowed_origins) | (
        {_origin(settings.public_url)} if settings.public_url else set()
    )

    async def endpoint(websocket: WebSocket) -> None:
        origin = websocket.headers.get("origin")
        if not origin_allowed(origin, websocket.headers.get("host"), allowed):
            security.event(
                "ws_origin_refused",
                None,
                origin=origin or "",
                network=security.network_of_client(websocket.scope),
            )
            await websocket.close(code=1008)  # before accept: uvicorn answers 403
            return
        await hub.serve(websocket)

    return endpoint


def _unique(sources: list[str]) -> list[str]:
    return list(dict.fromkeys(sources))


def content_security_policy(settings: Settings) -> bytes:
    """Only this origin's scripts, styles, images and connections, never framed; with the
    portal's card form on, Stripe.js's script and frames and the Stripe API it calls too, and
    with Google sign-in, Google's button script, its frame and its calls."""
    script, frame, connect, style = ["'self'"], [], ["'self'"], ["'self'", "'unsafe-inline'"]
    if settings.stripe_publishable_key is not None:
        js = _origin(settings.stripe_js_url)
        script.append(js)
        frame += [js, STRIPE_FRAMES]
        if js == STRIPE_JS:  # Stripe's documented sources: its elements' frames too
            script.append(STRIPE_JS_FRAMES)
            frame.append(STRIPE_JS_FRAMES)
        # Stripe.js calls Stripe's API (a stand-in answers on its own origin)
        connect += sorted({js, _origin(settings.stripe_api_base or STRIPE_API)})
    if settings.google_client_id is not None:
        gsi = _origin(settings.google_gsi_url)  # Google's button: its script, frame and calls
        script.append(gsi)
        frame.append(gsi)
        connect.append(gsi)
        style.append(gsi)  # the button's own stylesheet
    script, frame, connect = _unique(script), _unique(frame) or ["'none'"], _unique(connect)
    return (
        "default-src 'self'; "
        + ("" if len(script) == 1 else f"script-src {' '.join(script)}; ")
        + f"style-src {' '.join(_unique(style))}; img-src 'self' data:; "
        + f"connect-src {' '.join(connect)}; frame-src {' '.join(frame)}; "
        + "frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'"
    ).encode()


HSTS: Final = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


class SecurityHeaders:
    """ASGI middleware: every HTTP response says how a browser must treat it (no sniffing, no
    framing, no referrer, a strict content security policy), and, where TLS is terminated
    (an ``https`` request, or a ``public_url`` that is https behind a proxy), HSTS. A header
    the route set itself is left as it is."""

    def __init__(self, app: ASGIApp, tls: bool, csp: bytes) -> None:
        self.app = app
        self.tls = tls
        self.headers = (*SECURITY_HEADERS, (b"content-security-policy", csp))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers + ((HSTS,) if self.tls or scope.get("scheme") == "https" else ())

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in extra if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_secured)


class RestRateLimit:
    """ASGI middleware: at most ``rate`` HTTP requests per client IP (100 a minute by default,
    ``LEETGAMING_REST_REQUESTS_PER_MIN``), shared by every process through Redis when it is
    configured; beyond it a 429 problem with ``Retry-After``. Probes, metrics, the portal's
    static files and websockets are not counted (the hub limits its own messages)."""

    def __init__(
        self, app: ASGIApp, limiter: RateLimiter, rate: Rate, clock_ms: Callable[[], int]
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.rate = rate
        self.clock_ms = clock_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not path.startswith(_LIMITED_PREFIXES)
            or path.startswith(_UNLIMITED_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        wait_ms = await self.limiter.hit(f"rest:ip:{ip}", self.rate, self.clock_ms())
        if wait_ms:
            response = rate_limited(
                f"at most {self.rate.count} requests per {self.rate.per_s} s from one address",
                wait_ms,
                scope["path"],
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _run_check(probe: Probe, timeout_s: float) -> str:
    """``"ok"``, ``"timeout"`` or ``"failed: <ErrorClass>"``; never the error's text."""
    try:
        await asyncio.wait_for(probe.check(), timeout_s)
    except TimeoutError:
        return "timeout"
    except Exception as exc:
        log.warning(
            "readiness check failed",
            extra={"probe": type(probe).__name__, "error": f"{type(exc).__name__}: {exc}"},
        )
        return f"failed: {type(exc).__name__}"
    return "ok"


def create_app(
    settings: Settings,
    *,
    database: Probe | None = None,
    redis: Probe | None = None,
    probe_timeout_s: float = PROBE_TIMEOUT_S,
    passwords: Passwords | None = None,
    mailer: Mailer | None = None,
    auth_limits: AuthLimits | None = None,
    chain_nodes: Mapping[str, AsyncWeb3[Any]] | None = None,
) -> Starlette:
    """Build the app for ``settings``.

    ``database`` and ``redis`` replace the default probes (opened from the settings' URLs);
    the Redis probe exists only when ``settings.redis_url`` is set or one is passed.
    ``passwords``, ``mailer`` and ``auth_limits`` replace the identity defaults (argon2id at
    production cost, mail files under ``settings.mail_dir``, the default rate limits).
    ``chain_nodes`` replace the JSON-RPC connections of the configured chains (a test's
    in-process EVM).
    """
    chain_setups = load_chains(settings.chains_file)
    probes: dict[str, Probe] = {"database": database or database_probe(settings)}
    broker_probe = redis or redis_probe(settings)
    if broker_probe is not None:
        probes["redis"] = broker_probe
    metrics = Metrics()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        names = list(probes)
        results = await asyncio.gather(*(_run_check(probes[n], probe_timeout_s) for n in names))
        checks = dict(zip(names, results, strict=True))
        if all(result == "ok" for result in results):
            return JSONResponse({"status": "ready", "checks": checks})
        return JSONResponse(
            {"status": "unavailable", "checks": checks},
            status_code=503,
            headers={"Cache-Control": "no-store"},
        )

    api_document = openapi.document(__version__)
    api_page = openapi.page(api_document)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(api_document)

    async def docs(request: Request) -> Response:
        return HTMLResponse(api_page)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("starting", extra={"settings": settings.redacted()})
        # The ledger: its schema is brought up to date (idempotent; concurrent starts take
        # turns on an advisory lock) and one batching writer runs in this process.
        store = await open_store(settings.database_url)
        database = await open_database(settings.database_url)
        try:
            await store.migrate()
            identity = Identity.for_settings(settings, database, passwords, mailer)
            await identity.start()
            app.state.identity = identity
            identity.on_session_ended = hub.revoke_session  # its sockets close everywhere
            two_factor = identity.two_factor = TwoFactor(database, identity.secret)
            await two_factor.start()
            provider_http = httpx.AsyncClient(timeout=PROVIDER_TIMEOUT_S)
            app.state.providers = providers = Providers(
                None
                if settings.google_client_id is None
                else GoogleVerifier(
                    settings.google_client_id, settings.google_issuer, provider_http
                ),
                settings.steam_openid_endpoint,
                provider_http,
                settings.base_url,
            )
            play = Play(
                database,
                tickets,
                queues,
                hub.publish,
                time.time,
                servers,
                identity.result_key,
                limiter=limiter,
                publish_many=hub.publish_many,
            )
            await play.start()
            app.state.play = hub.application = play
            cs2 = Cs2(
                database,
                play,
                servers,
                hub.publish,
                time.time,
                settings.base_url,
                functools.partial(identity.external_subject, "steam"),
                hub.publish_many,
                tv_delay_s=settings.cs2_tv_delay_s,
                signing_key=identity.secret,
                delay_min_s=settings.spectator_delay_min_s,
            )
            await cs2.start()
            play.on_allocated.append(cs2.on_allocated)
            play.on_failed.append(cs2.match_ended)
            play.delay_of, play.feed = cs2.delay_of, cs2.feed
            demos = Demos(
                database,
                blob_store(settings),
                time.time,
                cs2.map_stats,
                settings.demo_bytes_max,
                settings.demo_retention_days,
            )
            await demos.start()
            app.state.demos = demos
            app.state.cs2 = cs2
            matchmaker = Matchmaker(tickets, queues, hub.node_id, play.on_event)
            async with Ledger(store) as ledger:
                app.state.ledger = ledger
                audit = two_factor.audit = AuditLog(database, time.time_ns)
                await audit.start()
                keys = IdempotencyKeys(database, claim_ttl_s=settings.idempotency_claim_ttl_s)
                await keys.start()
                credits = Credits(database, ledger, audit)
                await credits.start()
                fees = FeeSchedule(
                    settings.deposit_fee_bps,
                    settings.withdrawal_fee_bps,
                    settings.conversion_fee_bps,
                    settings.pro_deposit_fee_bps,
                    settings.pro_withdrawal_fee_bps,
                )
                wallet = Wallet(database, ledger, audit, fees=fees, lots_of=credits.lots)
                await wallet.start()
                subscriptions = Subscriptions(
                    database, ledger, audit, hub.publish, settings.pro_price_usd_cents
                )
                await subscriptions.start()
                deposits = Deposits(
                    database,
                    ledger,
                    audit,
                    stripe_gateway(settings),
                    fees,
                    hub.publish,
                    wallet.assets,
                    pro_of=subscriptions.is_pro,
                )
                await deposits.start()
                chains = Chains(
                    database,
                    audit,
                    chain_setups,
                    {
                        name: Node(_chain_node(name, setup, chain_nodes))
                        for name, setup in chain_setups.items()
                    },
                    settings.chain_address_seed,
                    settings.chain_hot_wallet_key,
                    deposits.credit_payment,
                    wallet.scales,
                )
                await chains.start()
                withdrawals = Withdrawals(
                    database,
                    ledger,
                    audit,
                    wallet,
                    deposits,
                    fees,
                    hub.publish,
                    WithdrawalLimits(
                        settings.withdrawal_daily_usd_cents,
                        settings.withdrawal_approval_usd_cents,
                        settings.withdrawal_review_score,
                    ),
                    chains=chains,
                    pro_of=subscriptions.is_pro,
                    two_factor=two_factor,
                )
                await withdrawals.start()
                deposits.on_refund_failed = withdrawals.refund_failed
                app.state.chains, app.state.subscriptions = chains, subscriptions
                app.state.audit, app.state.idempotency, app.state.wallet = audit, keys, wallet
                app.state.deposits, app.state.withdrawals = deposits, withdrawals
                app.state.credits = credits
                tournaments = Tournaments(
                    database, ledger, play, hub.publish, time.time, hub.publish_many, audit
                )
                await tournaments.start()
                tournaments.feed = cs2.feed
                app.state.tournaments = tournaments
                metrics.watch_ledger(ledger.stats)
                hub.observe_fanout = metrics.observe_fanout
                await hub.start()
                await matchmaker.start()
                await tournaments.sweep()  # what a crash left in the outboxes
                sweeper = asyncio.create_task(
                    _every(
                        1.0,
                        lambda: sweep_if_leased(
                            tickets,
                            hub.node_id,
                            play,
                            tournaments,
                            keys,
                            withdrawals,
                            credits,
                            subscriptions,
                            cs2,
                            demos,
                        ),
                    )
                )
                keys_reader = asyncio.create_task(_every(KEYRING_REFRESH_S, identity.refresh_keys))
                # every process: the game servers connected to it, back in a Redis that lost them
                reregisterer = asyncio.create_task(_every(SERVERS_REREGISTER_S, play.reregister))
                watchers = [
                    asyncio.create_task(
                        _every(
                            settings.chain_poll_interval_ms / 1000,
                            functools.partial(
                                watch_if_leased,
                                tickets,
                                hub.node_id,
                                chains,
                                withdrawals,
                                name,
                                max(
                                    CHAIN_LEASE_TTL_MIN_S,
                                    3 * settings.chain_poll_interval_ms / 1000,
                                ),
                            ),
                        )
                    )
                    for name in chains.names
                ]
                try:
                    yield
                finally:
                    sweeper.cancel()
                    keys_reader.cancel()
                    reregisterer.cancel()
                    for watcher in watchers:
                        watcher.cancel()
                    for node in chains.nodes.values():
                        with contextlib.suppress(Exception):
                            await node.w3.provider.disconnect()
                    await play.stop()
                    await cs2.stop()
                    await demos.stop()
                    await tournaments.stop()
                    await matchmaker.stop()
                    await hub.stop()
                    if deposits.gateway is not None:
                        await deposits.gateway.close()
                    await providers.close()
                    if redis_client is not None:
                        await redis_client.aclose()
        finally:
            await database.close()
            await store.close()
        log.info("stopped")

    # Who a token belongs to: a player, admin or game server with a valid access token; no
    # token is an anonymous spectator. The signing key is the identity service's.
    async def verify(token: str | None) -> Credential | None:
        if token is None:
            return Credential(Principal(Role.SPECTATOR, ""))
        claims = app.state.identity.verify(token)
        if claims is None or claims.role not in _TOKEN_ROLES:
            return None
        if claims.role == "admin" and not claims.mfa:
            return None  # an admin acts only in a session begun with a TOTP code
        if await app.state.identity.session_ended(claims.session):
            return None  # signed out: its sockets were closed, and it opens no new one
        return Credential(
            Principal(Role(claims.role), claims.subject), claims.expires_at_s, claims.session
        )

    redis_client: aioredis.Redis | None = None
    if settings.redis_url:
        # Several processes: streams in Redis, every frame relayed to every node by pub/sub.
        # A blocking pool: under a burst, a command waits (up to REDIS_POOL_WAIT_S) for one of
        # REDIS_CONNECTIONS_MAX connections instead of failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=REDIS_CONNECTIONS_MAX, timeout=REDIS_POOL_WAIT_S
        )
        client = redis_client = aioredis.Redis.from_pool(pool)  # closes the pool with it
        realtime_prefix = settings.redis_prefix + "rt:"
        node_id = secrets.token_hex(6)
        hub = HubNode(
            verify,
            streams=RedisStreams(client, realtime_prefix),
            relay=client,
            relay_prefix=realtime_prefix,
            presence=RedisPresence(client, realtime_prefix, node_id),
            connection_counts=RedisConnectionCounts(client, realtime_prefix, node_id),
            node_id=node_id,
        )
    else:
        hub = HubNode(verify)
    limiter: RateLimiter = (
        MemoryRateLimiter()
        if redis_client is None
        else RedisRateLimiter(redis_client, settings.redis_prefix + "rl:")
    )
    tickets: TicketStore = (
        MemoryTicketStore()
        if redis_client is None
        else RedisTicketStore(redis_client, settings.redis_prefix + "mm:")
    )
    servers: ServerRegistry = (
        MemoryServerRegistry()
        if redis_client is None
        else RedisServerRegistry(redis_client, settings.redis_prefix + "mm:")
    )
    queues = load_queues(settings)

    routes = [
        WebSocketRoute("/ws", websocket_endpoint(settings, hub)),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        *play_routes(
            lambda: app.state.play, lambda: app.state.identity, lambda: app.state.idempotency
        ),
        *tournament_routes(lambda: app.state.tournaments, lambda: app.state.identity),
        *demo_routes(
            lambda: app.state.demos,
            lambda: app.state.cs2,
            lambda: app.state.identity,
            lambda: app.state.play,
        ),
        *cs2_routes(lambda: app.state.cs2, lambda: app.state.identity, lambda: app.state.audit),
        *admin_routes(
            lambda: app.state.identity,
            lambda: app.state.play,
            lambda: app.state.hub,
            lambda: app.state.ledger.stats(),
        ),
        *wallet_routes(
            lambda: app.state.wallet,
            lambda: app.state.identity,
            lambda: app.state.idempotency,
            lambda: app.state.deposits,
            lambda: app.state.credits,
            chains_of=lambda: app.state.chains,
            card_form=None
            if settings.stripe_publishable_key is None
            else {
                "publishable_key": settings.stripe_publishable_key,
                "js_url": settings.stripe_js_url,
            },
        ),
        *subscription_routes(
            lambda: app.state.subscriptions,
            lambda: app.state.identity,
            lambda: app.state.idempotency,
        ),
        *withdrawal_routes(
            lambda: app.state.withdrawals,
            lambda: app.state.identity,
            lambda: app.state.idempotency,
        ),
        *auth_routes(
            lambda: app.state.identity,
            limiter,
            lambda: int(time.time() * 1000),
            auth_limits,
            lambda: app.state.providers,
            settings.google_gsi_url,
        ),
        *portal_routes(settings),
    ]
    # the routes are tried in order, a regular expression each: the game servers' event log
    # (thousands of requests a second) goes first rather than after 30 others
    routes.sort(key=lambda route: not getattr(route, "path", "").startswith("/v1/ingest/"))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestObserver, metrics=metrics),
            Middleware(
                SecurityHeaders,
                tls=(settings.public_url or "").startswith("https://"),
                csp=content_security_policy(settings),
            ),
            Middleware(
                RestRateLimit,
                limiter=limiter,
                rate=Rate(settings.rest_requests_per_min, 60),
                clock_ms=lambda: int(time.time() * 1000),
            ),
        ],
        exception_handlers={HTTPException: _http_exception, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.hub = hub
    app.state.metrics = metrics
    app.state.probes = probes
    return app


PORTAL_DIR_DEFAULT: Final = Path(__file__).resolve().parent.parent / "frontend" / "dist"
PORTAL_MISSING: Final = """<!doctype html><html lang="en"><meta charset="utf-8">
<title>LeetGaming</title><h1>LeetGaming</h1>
<p>The web portal is not built. Build it with <code>./scripts/build-portal</code> (Node.js 20.19+),
or start the server with <code>./scripts/serve</code>, which builds it. The API is at
<a href="/docs">/docs</a>.</p></html>"""


def blob_store(settings: Settings) -> BlobStore:
    """Demos go to the S3-compatible bucket when one is configured, else to ``blob_dir``."""
    if settings.blob_s3_endpoint is None:
        return LocalBlobStore(settings.blob_dir)
    assert settings.blob_s3_bucket and settings.blob_s3_access_key and settings.blob_s3_secret_key
    return S3BlobStore(
        settings.blob_s3_endpoint,
        settings.blob_s3_bucket,
        settings.blob_s3_access_key,
        settings.blob_s3_secret_key,
        settings.blob_s3_region,
    )


def portal_routes(settings: Settings) -> list[BaseRoute]:
    """The web portal's static files at ``/`` (last, so every API route comes first): the
    built ``frontend/dist``, or a page saying how to build it."""
    folder = Path(settings.portal_dir) if settings.portal_dir else PORTAL_DIR_DEFAULT
    if (folder / "index.html").is_file():

        async def index(request: Request) -> Response:
            return FileResponse(folder / "index.html", headers={"Cache-Control": "no-store"})

        return [
            # a mailed confirmation link (/confirm#token=…) opens the portal, which reads it
            Route("/confirm", index, methods=["GET"]),
            Mount("/", app=StaticFiles(directory=folder, html=True), name="portal"),
        ]

    async def missing(request: Request) -> Response:
        return HTMLResponse(PORTAL_MISSING)

    return [Route("/", missing, methods=["GET"])]


def stripe_gateway(settings: Settings) -> StripeGateway | None:
    """Stripe, when its keys are set (card deposits answer 503 otherwise)."""
    if settings.stripe_secret_key is None or settings.stripe_webhook_secret is None:
        return None
    return StripeGateway(
        settings.stripe_secret_key, settings.stripe_webhook_secret, settings.stripe_api_base
    )


def load_queues(settings: Settings) -> dict[str, QueueConfig]:
    """The configured queues: ``LEETGAMING_QUEUES_FILE``, or the shipped default."""
    if settings.queues_file is not None:
        text = Path(settings.queues_file).read_text()
    else:
        text = resources.files("leetgaming").joinpath("queues.toml").read_text()
    return parse_queues(text)


SWEEP_LEASE: Final = "_sweeper"  # a lease name no queue can have (queues are game:mode:region)
SWEEP_LEASE_TTL_S: Final = 5.0


async def sweep_if_leased(
    tickets: TicketStore,
    owner: str,
    play: Play,
    tournaments: Tournaments | None = None,
    keys: IdempotencyKeys | None = None,
    withdrawals: Withdrawals | None = None,
    credits: Credits | None = None,
    subscriptions: Subscriptions | None = None,
    cs2: Cs2 | None = None,
    demos: Demos | None = None,
    ttl_s: float = SWEEP_LEASE_TTL_S,
) -> bool:
    """Deadlines and server silence are checked, and tournament outboxes left by a crash
    carried out, by one process at a time (the holder of the sweeper's lease; another takes
    over within ``SWEEP_LEASE_TTL_S`` when it dies): compare-and-set on matches and idempotent
    outbox effects make a second sweeper harmless, only wasteful). Whether this process
    swept."""
    if await tickets.acquire(SWEEP_LEASE, owner, ttl_s) is None:
        return False
    if cs2 is not None:
        await cs2.sweep()  # before the silence check: a CS2 server answering is not silent
    if demos is not None:
        await demos.sweep()
    await play.sweep()
    if tournaments is not None:
        await tournaments.sweep()
    if keys is not None:
        await keys.purge(int(time.time()))
    if withdrawals is not None:
        await withdrawals.sweep()
    if credits is not None:
        await credits.expire_due()
    if subscriptions is not None:
        await subscriptions.sweep()
    return True


CHAIN_LEASE_TTL_MIN_S: Final = 5.0


def _chain_node(
    name: str, setup: ChainSetup, given: Mapping[str, AsyncWeb3[Any]] | None
) -> AsyncWeb3[Any]:
    if given is not None and name in given:
        return given[name]
    if setup.rpc_url is None:
        raise ChainSettingsError(f"chains.{name}: rpc_url is not set")
    return AsyncWeb3(AsyncHTTPProvider(setup.rpc_url))


async def watch_if_leased(
    tickets: TicketStore,
    owner: str,
    chains: Chains,
    withdrawals: Withdrawals,
    chain: str,
    ttl_s: float,
) -> bool:
    """One process at a time follows each chain (the holder of its lease) and carries its
    sends forward; whether this process did."""
    if await tickets.acquire(f"_chain:{chain}", owner, ttl_s) is None:
        return False
    await chains.poll(chain)
    await withdrawals.advance_chain_sends(chain)
    return True


SERVERS_REREGISTER_S: Final = 5.0


async def _every(interval_s: float, work: Callable[[], Awaitable[object]]) -> None:
    """Run ``work`` every ``interval_s`` until cancelled; a failure is logged, not fatal."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await work()
        except Exception:
            log.exception("periodic work failed", extra={"work": getattr(work, "__name__", "")})


def create_app_from_environ() -> Starlette:
    """The app of one uvicorn worker process: settings and logging read once, here."""
    settings = Settings.from_env(os.environ)
    configure_logging(settings.log_level)
    return create_app(settings)
