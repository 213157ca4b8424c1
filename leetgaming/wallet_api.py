"""The wallet over REST: balances, history, ledger transfers, the price table, the audit log.

Every route needs an access token; a player reads only their own wallet (the accounts come
from the token's subject, never from the request), admins read any transfer and the audit log
and set prices. Refusals are problem+json with a stable ``code``; a refused request changes
nothing. POSTs that move money go through :func:`idempotent` (``Idempotency-Key``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledger import parse_id
from ledger.reconcile import reconcile
from leetgaming import security
from leetgaming.auth_api import Refused, admin_without_mfa, bearer, json_body, unauthorized
from leetgaming.chain import Chains
from leetgaming.credits import Credits, CreditsRefused
from leetgaming.deposits import DepositRefused, Deposits, RetryLater, deposit_json
from leetgaming.idempotency_store import IdempotencyKeys
from leetgaming.identity import Identity
from leetgaming.problems import problem
from leetgaming.subscriptions import SubscriptionRefused
from leetgaming.tokens import AccessClaims
from leetgaming.two_factor import TwoFactorRefused
from leetgaming.wallet import ConversionRefused, HistoryQuery, UnknownAsset, Wallet
from leetgaming.withdrawals import WithdrawalRefused
from wallet import accounts
from wallet import history as hist
from wallet import idempotency as idem
from wallet.amounts import BadAmount, parse_minor
from wallet.prices import format_price
from wallet.stripe_gateway import BadSignature, GatewayError

_PRIVATE: Final = {"Cache-Control": "private, no-store"}
_PLAYER_ROLES: Final = frozenset({"player", "admin"})
REPLAYED_HEADER: Final = "Idempotent-Replayed"
WEBHOOK_BYTES_MAX: Final = 256 * 1024
DEPOSITS_LISTED_MAX: Final = 50

Handler = Callable[[Request, AccessClaims], Awaitable[Response]]


def _int_param(request: Request, name: str, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Refused(problem(422, f"{name} is a whole number {low}..{high}", code="bad_query"))
    return int(raw)


def guard(
    identity_of: Callable[[], Identity], *roles: str, mfa_exempt: bool = False
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Authenticate with one of ``roles`` and turn the wallet's refusals into problems. An
    admin's session must have begun with a TOTP code, except where ``mfa_exempt`` (enrolment)."""
    allowed = frozenset(roles)

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            claims = bearer(request, identity_of())
            if claims is None:
                return unauthorized()
            if claims.role not in allowed:
                return problem(403, f"{' or '.join(sorted(allowed))} only", code="forbidden")
            if not mfa_exempt and (no_mfa := admin_without_mfa(claims)) is not None:
                return no_mfa
            try:
                return await handler(request, claims)
            except Refused as refused:
                return refused.response
            except UnknownAsset as unknown:
                return problem(422, str(unknown), code="unknown_asset")
            except BadAmount as bad:
                return problem(422, str(bad), code="bad_amount")
            except (
                DepositRefused,
                WithdrawalRefused,
                ConversionRefused,
                CreditsRefused,
                SubscriptionRefused,
                TwoFactorRefused,
            ) as refused:
                # a business operation refused (insufficient funds, own withdrawal, a bad
                # TOTP code, a wrong state): a security event with its actor
                security.operation_refused(
                    request.scope, f"{claims.role}:{claims.subject}", refused.code
                )
                return problem(refused.status, str(refused), code=refused.code)
            except GatewayError as failed:
                return problem(502, str(failed), code="payment_provider_error")

        return run

    return wrap


def wallet_routes(
    wallet_of: Callable[[], Wallet],
    identity_of: Callable[[], Identity],
    keys_of: Callable[[], IdempotencyKeys],
    deposits_of: Callable[[], Deposits],
    credits_of: Callable[[], Credits],
    clock_s: Callable[[], float] = time.time,
    chains_of: Callable[[], Chains | None] = lambda: None,
    card_form: Mapping[str, str] | None = None,
) -> list[Route]:
    def guarded(*roles: str) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
        return guard(identity_of, *roles)

    @guarded(*_PLAYER_ROLES)
    async def get_wallet(request: Request, claims: AccessClaims) -> Response:
        body = await wallet_of().balances(claims.subject)
        return JSONResponse({"player": claims.subject, **body}, headers=_PRIVATE)

    @guarded(*_PLAYER_ROLES)
    async def transactions(request: Request, claims: AccessClaims) -> Response:
        params = request.query_params
        unknown = sorted(set(params) - {"asset", "kind", "since_ns", "until_ns", "cursor", "limit"})
        if unknown:
            raise Refused(
                problem(422, f"unknown parameters: {', '.join(unknown)}", code="bad_query")
            )
        kind = params.get("kind")
        if kind is not None and kind not in accounts.CODE_OF_KIND:
            raise Refused(
                problem(
                    422,
                    f"kind is one of {', '.join(sorted(accounts.CODE_OF_KIND))}",
                    code="bad_query",
                )
            )
        after = None
        if params.get("cursor"):
            try:
                after = hist.Cursor.decode(params["cursor"])
            except hist.BadCursor as bad:
                raise Refused(problem(422, str(bad), code="bad_cursor")) from None
        stamp_max = (1 << 63) - 2
        query = HistoryQuery(
            asset=params.get("asset") or None,
            kind=None if kind is None else accounts.CODE_OF_KIND[kind],
            since_ns=_int_param(request, "since_ns", 0, stamp_max),
            until_ns=_int_param(request, "until_ns", 0, stamp_max),
            after=after,
            rows_max=_int_param(request, "limit", 1, hist.PAGE_ROWS_MAX) or hist.PAGE_ROWS_DEFAULT,
        )
        w = wallet_of()
        rows, following, mine = await w.history(claims.subject, query)
        return JSONResponse(
            {
                "transactions": [await w.transfer_row(mine, r) for r in rows],
                "next_cursor": None if following is None else following.encode(),
            },
            headers=_PRIVATE,
        )

    @guarded(*_PLAYER_ROLES)
    async def transaction(request: Request, claims: AccessClaims) -> Response:
        try:
            transfer_id = parse_id(request.path_params["transfer_id"])
        except ValueError:
            return problem(404, "no such transaction", code="not_found")
        w = wallet_of()
        found = await w.ledger.lookup_transfers([transfer_id])
        if not found:
            return problem(404, "no such transaction", code="not_found")
        record = found[0]
        mine = await w.my_accounts(claims.subject, {record.asset})
        if claims.role != "admin" and not mine & {
            record.debit_account_id,
            record.credit_account_id,
        }:
            # Someone else's transfer is indistinguishable from one that does not exist.
            return problem(404, "no such transaction", code="not_found")
        row = await w.transfer_row(set() if claims.role == "admin" else mine, record)
        owners = {
            a.id: a
            for a in await w.ledger.lookup_accounts(
                [record.debit_account_id, record.credit_account_id]
            )
        }

        def side(account_id: int) -> dict[str, object]:
            a = owners.get(account_id)
            kind = a.kind if a is not None else "unknown"
            if a is not None and claims.role == "admin":
                return {"kind": kind, "owner": a.owner}
            return {"kind": kind, "you": account_id in mine}

        return JSONResponse(
            {
                **row,
                "debit": side(record.debit_account_id),
                "credit": side(record.credit_account_id),
                "metadata": None if record.metadata is None else orjson.loads(record.metadata),
            },
            headers=_PRIVATE,
        )

    async def list_assets(request: Request) -> Response:
        assets = await wallet_of().assets()
        return JSONResponse(
            {
                "assets": [
                    {"asset": a.code, "scale": a.scale, "kind": str(a.kind)}
                    for a in sorted(assets.values(), key=lambda a: a.code)
                ]
            }
        )

    async def payments_config(request: Request) -> Response:
        # What the portal's card form needs: Stripe's publishable key and where Stripe.js is
        # (both public; the card itself goes from the browser to Stripe, never through us)
        chains = chains_of()
        return JSONResponse(
            {
                "card": None if card_form is None else dict(card_form),
                "chains": [] if chains is None or chains.seed is None else list(chains.names),
            }
        )

    async def list_prices(request: Request) -> Response:
        table = await wallet_of().prices()
        return JSONResponse(
            {
                "currency": "USD",
                "prices": [
                    {
                        "asset": p.asset,
                        "price_usd": format_price(p.price_e8),
                        "set_at_s": p.set_at_s,
                    }
                    for p in sorted(table.values(), key=lambda p: p.asset)
                ],
            }
        )

    @guarded("admin")
    async def set_price(request: Request, claims: AccessClaims) -> Response:
        body = await json_body(request, "price_usd")
        try:
            price = await wallet_of().set_price(
                claims.subject, request.path_params["asset"], body.get("price_usd")
            )
        except UnknownAsset:
            raise
        except ValueError as bad:
            return problem(422, str(bad), code="bad_price")
        return JSONResponse(
            {
                "asset": price.asset,
                "price_usd": format_price(price.price_e8),
                "set_at_s": price.set_at_s,
            }
        )

    @guarded("admin")
    async def reconciliation(request: Request, claims: AccessClaims) -> Response:
        # Reads every account and transfer (nothing is written): an operator's check, as
        # ``leetgaming reconcile``; transfers committed during the scan show as differences.
        report = await reconcile(wallet_of().ledger.store)
        return JSONResponse(report.to_json(), headers=_PRIVATE)

    @guarded("admin")
    async def audit_log(request: Request, claims: AccessClaims) -> Response:
        before = None
        raw = request.query_params.get("before")
        if raw:
            stamp, _, entry = raw.partition(":")
            if not stamp.isdigit() or not entry:
                raise Refused(
                    problem(422, "before is a cursor from next_before", code="bad_cursor")
                )
            before = (int(stamp), entry)
        rows_max = _int_param(request, "limit", 1, 200) or 50
        entries = await wallet_of().audit.page(before, rows_max, request.query_params.get("action"))
        last = entries[-1] if len(entries) == rows_max else None
        return JSONResponse(
            {
                "entries": [e.as_json() for e in entries],
                "next_before": None if last is None else f"{last.at_ns}:{last.id}",
            },
            headers=_PRIVATE,
        )

    async def create_deposit(
        request: Request, claims: AccessClaims, body: dict[str, Any], key: str
    ) -> Response:
        if body.get("method") != "card":
            return problem(422, "method is card", code="bad_method")
        if not isinstance(body.get("asset"), str):
            return problem(422, "asset is an asset code", code="bad_asset")
        amount = parse_minor(body.get("amount"))
        row, client_secret = await deposits_of().create_card(
            claims.subject, key, body["asset"], amount
        )
        return JSONResponse(
            {
                **deposit_json(row),
                "client_secret": client_secret,
                "payment_intent": row.provider_ref,
            },
            status_code=201,
            headers=_PRIVATE,
        )

    post_deposit = guarded("player")(
        idempotent(keys_of, clock_s, create_deposit, "method", "asset", "amount")
    )

    async def convert(
        request: Request, claims: AccessClaims, body: dict[str, Any], key: str
    ) -> Response:
        if not isinstance(body.get("from_asset"), str) or not isinstance(body.get("to_asset"), str):
            return problem(422, "from_asset and to_asset are asset codes", code="bad_asset")
        amount = parse_minor(body.get("amount"))
        done = await wallet_of().convert(
            claims.subject, key, body["from_asset"], body["to_asset"], amount
        )
        return JSONResponse(
            {
                "id": done.id,
                "from_asset": done.from_asset,
                "to_asset": done.to_asset,
                "amount": str(done.amount),
                "received": str(done.received),
                "fee": str(done.fee),
            },
            status_code=201,
            headers=_PRIVATE,
        )

    post_conversion = guarded("player")(
        idempotent(keys_of, clock_s, convert, "from_asset", "to_asset", "amount")
    )

    async def grant_credits(
        request: Request, claims: AccessClaims, body: dict[str, Any], key: str
    ) -> Response:
        player, asset = body.get("player"), body.get("asset")
        if not isinstance(player, str) or not 0 < len(player) <= 64 or not player.isprintable():
            return problem(422, "player is a player id", code="bad_player")
        if not isinstance(asset, str):
            return problem(422, "asset is a credit's code", code="bad_asset")
        amount = parse_minor(body.get("amount"))
        grant = await credits_of().grant(
            claims.subject, key, player, asset, amount, body.get("expires_on")
        )
        return JSONResponse(
            {
                "grant": grant,
                "player": player,
                "asset": asset,
                "amount": str(amount),
                "expires_on": body.get("expires_on"),
            },
            status_code=201,
        )

    post_grant = guarded("admin")(
        idempotent(keys_of, clock_s, grant_credits, "player", "asset", "amount", "expires_on")
    )

    async def use_credits(
        request: Request, claims: AccessClaims, body: dict[str, Any], key: str
    ) -> Response:
        if not isinstance(body.get("asset"), str):
            return problem(422, "asset is a credit's code", code="bad_asset")
        amount = parse_minor(body.get("amount"))
        left = await credits_of().use(claims.subject, key, body["asset"], amount)
        return JSONResponse(
            {"asset": body["asset"], "used": str(amount), "left": str(left)},
            status_code=201,
            headers=_PRIVATE,
        )

    post_use = guarded("player")(idempotent(keys_of, clock_s, use_credits, "asset", "amount"))

    @guarded("player")
    async def list_deposits(request: Request, claims: AccessClaims) -> Response:
        rows = await deposits_of().of_player(claims.subject, DEPOSITS_LISTED_MAX)
        return JSONResponse({"deposits": [deposit_json(r) for r in rows]}, headers=_PRIVATE)

    async def deposits(request: Request) -> Response:
        return await (post_deposit if request.method == "POST" else list_deposits)(request)

    @guarded(*_PLAYER_ROLES)
    async def get_deposit(request: Request, claims: AccessClaims) -> Response:
        row = await deposits_of().get(request.path_params["deposit_id"])
        if row is None or (claims.role != "admin" and row.deposit.player != claims.subject):
            return problem(404, "no such deposit", code="not_found")
        return JSONResponse(deposit_json(row), headers=_PRIVATE)

    @guarded("player")
    async def deposit_address(request: Request, claims: AccessClaims) -> Response:
        chains, name = chains_of(), request.path_params["chain"]
        config = None if chains is None else chains.config(name)
        if chains is None or config is None:
            known = ", ".join(chains.names) if chains and chains.names else "none configured"
            return problem(404, f"no chain {name[:40]!r} (chains: {known})", code="not_found")
        address = await chains.address(name, claims.subject)
        incoming = [p for p in await chains.incoming(claims.subject) if p["chain"] == name]
        return JSONResponse(
            {
                "chain": name,
                "chain_id": config.chain_id,
                "address": address,
                "assets": list(config.assets),
                "confirmations": config.confirmations,
                "incoming": incoming,
            },
            headers=_PRIVATE,
        )

    async def stripe_webhook(request: Request) -> Response:
        deposits = deposits_of()
        if deposits.gateway is None:
            return problem(404, "card payments are not configured", code="not_found")
        payload = await request.body()
        if len(payload) > WEBHOOK_BYTES_MAX:
            return problem(413, f"at most {WEBHOOK_BYTES_MAX} bytes", code="body_too_large")
        try:
            outcome = await deposits.on_stripe(payload, request.headers.get("stripe-signature"))
        except BadSignature as bad:
            return problem(400, str(bad), code="bad_signature")
        except RetryLater as later:
            return problem(503, str(later), code="retry_later", headers={"Retry-After": "60"})
        return JSONResponse({"received": True, "outcome": outcome})

    return [
        Route("/v1/deposits", deposits, methods=["GET", "POST"]),
        Route("/v1/conversions", post_conversion, methods=["POST"]),
        Route("/v1/credits/use", post_use, methods=["POST"]),
        Route("/v1/admin/credits", post_grant, methods=["POST"]),
        Route("/v1/deposits/{deposit_id}", get_deposit, methods=["GET"]),
        Route("/v1/deposit-addresses/{chain}", deposit_address, methods=["GET"]),
        Route("/v1/webhooks/stripe", stripe_webhook, methods=["POST"]),
        Route("/v1/wallet", get_wallet, methods=["GET"]),
        Route("/v1/transactions", transactions, methods=["GET"]),
        Route("/v1/transactions/{transfer_id}", transaction, methods=["GET"]),
        Route("/v1/assets", list_assets, methods=["GET"]),
        Route("/v1/payments/config", payments_config, methods=["GET"]),
        Route("/v1/prices", list_prices, methods=["GET"]),
        Route("/v1/admin/prices/{asset}", set_price, methods=["PUT"]),
        Route("/v1/admin/audit", audit_log, methods=["GET"]),
        Route("/v1/admin/reconciliation", reconciliation, methods=["GET"]),
    ]


def idempotent(
    keys_of: Callable[[], IdempotencyKeys],
    clock_s: Callable[[], float],
    handler: Callable[[Request, AccessClaims, dict[str, Any], str], Awaitable[Response]],
    *fields: str,
) -> Handler:
    """Wrap a money POST: read its body, claim its ``Idempotency-Key`` for the caller, run it
    once, save its response, replay it for a retry (see :mod:`wallet.idempotency`). The
    handler gets the key, from which it derives the ids of everything it writes."""

    async def run(request: Request, claims: AccessClaims) -> Response:
        try:
            key = idem.check_key(request.headers.get("idempotency-key"))
        except idem.BadKey as bad:
            return problem(400, str(bad), code="idempotency_key_required")
        body = await json_body(request, *fields)
        fp = idem.fingerprint(request.method, request.url.path, body)
        keys = keys_of()
        claim = await keys.claim(claims.subject, key, fp, int(clock_s()))
        if claim.decision is idem.Decision.REUSED:
            return problem(
                422,
                "this Idempotency-Key was used for a different request",
                code="idempotency_key_reused",
            )
        if claim.decision is idem.Decision.IN_PROGRESS:
            return problem(
                409,
                "a request with this Idempotency-Key is still running; retry later",
                code="idempotency_in_progress",
                headers={"Retry-After": "1"},
            )
        if claim.decision is idem.Decision.REPLAY:
            record = claim.record
            assert record is not None and record.status is not None and record.body is not None
            stored = orjson.loads(record.body)
            return Response(
                stored["content"].encode(),
                status_code=record.status,
                media_type=stored["media_type"],
                headers={REPLAYED_HEADER: "true", **_PRIVATE},
            )
        try:
            response = await handler(request, claims, body, key)
        except Refused as refused:
            response = refused.response
        except BaseException:
            await keys.release(claims.subject, key)
            raise
        content = bytes(response.body).decode()
        saved = orjson.dumps({"content": content, "media_type": response.media_type})
        await keys.finish(claims.subject, key, response.status_code, saved)
        return response

    return run
