"""Card payments through Stripe: PaymentIntents for deposits, refunds and payouts for
withdrawals, and webhook events checked against Stripe's signature.

The official ``stripe`` SDK does the talking (async, over aiohttp), so the same code runs against
api.stripe.com and against a Stripe-compatible server in tests (``api_base``). Every call that
creates something carries an idempotency key derived from our own id, so a retry after a
timeout never creates a second PaymentIntent, refund or payout. The secret key and the webhook
secret are held here and never logged or repeated in an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
import stripe

SIGNATURE_TOLERANCE_S: Final = 300  # Stripe's default: older signed events are refused
REQUEST_TIMEOUT_S: Final = 20.0


class BadSignature(ValueError):
    """The webhook was not signed by Stripe with our secret (or too long ago)."""


class GatewayError(RuntimeError):
    """Stripe refused or could not be reached; the text is safe to log (no secret in it)."""


@dataclass(frozen=True, slots=True)
class Intent:
    id: str
    client_secret: str
    status: str


class StripeGateway:
    def __init__(self, secret_key: str, webhook_secret: str, api_base: str | None = None) -> None:
        # aiohttp: the SDK's httpx client cost about a fifth of a worker's CPU under load
        # (httpcore looks for an async library on every request, a failed import each time)
        self._http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
        options: dict[str, Any] = {
            "http_client": self._http,
            "max_network_retries": 2,
        }
        if api_base:
            options["base_addresses"] = {"api": api_base}
        self._client = stripe.StripeClient(secret_key, **options)
        # a live key takes live events only, a test key test events only: a test-mode event
        # (free to make in Stripe's dashboard) must never credit real money
        self.live = secret_key.startswith(("sk_live_", "rk_live_"))
        self._webhook_secret = webhook_secret

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        return "StripeGateway(<secrets hidden>)"

    async def create_intent(
        self, amount: int, currency: str, idempotency_key: str, metadata: dict[str, str]
    ) -> Intent:
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params={
                    "amount": amount,
                    "currency": currency.lower(),
                    "metadata": metadata,
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise GatewayError(f"Stripe refused the PaymentIntent: {type(exc).__name__}") from None
        return Intent(intent.id, str(intent.client_secret), str(intent.status))

    async def refund(self, payment_intent: str, amount: int, idempotency_key: str) -> str:
        """A refund of ``amount``; its metadata names ``idempotency_key`` (our withdrawal id),
        so :meth:`find_refund` finds it again after the key has expired at Stripe (24 h)."""
        try:
            refund = await self._client.v1.refunds.create_async(
                params={
                    "payment_intent": payment_intent,
                    "amount": amount,
                    "metadata": {"withdrawal": idempotency_key},
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise GatewayError(f"Stripe refused the refund: {type(exc).__name__}") from None
        return str(refund.id)

    async def find_refund(self, payment_intent: str, withdrawal: str) -> str | None:
        """The refund made for ``withdrawal`` on ``payment_intent``, if there is one."""
        try:
            page = await self._client.v1.refunds.list_async(
                params={"payment_intent": payment_intent, "limit": 100}
            )
        except stripe.StripeError as exc:
            raise GatewayError(f"Stripe refused the refund lookup: {type(exc).__name__}") from None
        for refund in page.data:  # a PaymentIntent with over 100 refunds is not one of ours
            metadata = refund.to_dict().get("metadata") or {}
            if metadata.get("withdrawal") == withdrawal:
                return str(refund.id)
        return None

    def event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event of a webhook delivery, once its signature checks out."""
        if not signature:
            raise BadSignature("no Stripe-Signature header")
        try:
            stripe.WebhookSignature.verify_header(
                payload, signature, self._webhook_secret, SIGNATURE_TOLERANCE_S
            )
        except stripe.SignatureVerificationError:
            raise BadSignature("the Stripe-Signature does not match this payload") from None
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise BadSignature("the payload is not JSON") from None
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise BadSignature("the payload is not a Stripe event")
        if event.get("livemode") is not self.live:
            mode = "live" if self.live else "test"
            raise BadSignature(f"not a {mode}-mode event, and this endpoint takes {mode} mode only")
        return event
