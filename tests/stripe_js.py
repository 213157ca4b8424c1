"""A stand-in for Stripe's browser side, for the browser tests: Stripe.js cannot be loaded here
(no network beyond the package registries), and localstripe's own copy only completes 3-D
Secure on an intent that already has its card.

It serves the part of Stripe.js the portal uses: ``Stripe(publishableKey)``,
``elements().create("card").mount(element)`` (plain labelled inputs where Stripe mounts its
iframe) and ``confirmCardPayment(clientSecret, {payment_method: {card}})``. That sends what
Stripe.js sends, ``POST /v1/payment_intents/{id}/confirm`` with the publishable ``key``, the
``client_secret`` and ``payment_method_data[card][…]``, to this server, which plays Stripe's
API for browsers: it checks the client secret against the intent and pays it at localstripe
with the secret key (localstripe takes only secret keys there). The payment then goes on as
any other: localstripe posts its signed webhook to the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .ws import serving

STRIPE_JS = r"""
(function () {
  const API = new URL(document.currentScript.src).origin;
  window.Stripe = function (key) {
    if (!/^pk_/.test(key)) throw new Error("Stripe(): a publishable key (pk_...)");
    return {
      elements() {
        return {
          create(type) {
            if (type !== "card") throw new Error("this Stripe.js stand-in has card elements only");
            const inputs = {};
            return {
              mount(target) {
                target.replaceChildren();
                for (const [name, label, hint] of [
                  ["number", "Card number", "4242 4242 4242 4242"],
                  ["expiry", "Expiry (MM / YY)", "12 / 34"],
                  ["cvc", "CVC", "123"],
                ]) {
                  const wrap = document.createElement("label");
                  wrap.textContent = label;
                  const input = document.createElement("input");
                  input.name = "cardnumber-" + name;
                  input.autocomplete = "off";
                  input.inputMode = "numeric";
                  input.placeholder = hint;
                  wrap.appendChild(input);
                  target.appendChild(wrap);
                  inputs[name] = input;
                }
              },
              _card() {
                const [month, year] = inputs.expiry.value.split("/").map((s) => s.trim());
                return {
                  number: inputs.number.value.replace(/\s+/g, ""),
                  exp_month: month,
                  exp_year: year && year.length === 2 ? "20" + year : year,
                  cvc: inputs.cvc.value.trim(),
                };
              },
            };
          },
        };
      },
      async confirmCardPayment(clientSecret, data) {
        const intent = clientSecret.split("_secret_")[0];
        const card = data.payment_method.card._card();
        const body = new URLSearchParams({ key, client_secret: clientSecret, "payment_method_data[type]": "card" });
        for (const [k, v] of Object.entries(card)) body.set(`payment_method_data[card][${k}]`, v || "");
        const response = await fetch(`${API}/v1/payment_intents/${intent}/confirm`, { method: "POST", body });
        const answer = await response.json();
        return response.ok ? { paymentIntent: answer } : { error: answer.error };
      },
    };
  };
})();
"""

_CORS = {"Access-Control-Allow-Origin": "*"}


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status, headers=_CORS)


def stripe_browser_side(localstripe: str, secret_key: str) -> Starlette:
    async def script(request: Request) -> Response:
        return Response(STRIPE_JS, media_type="application/javascript", headers=_CORS)

    async def confirm(request: Request) -> Response:
        # Stripe.js posts a form: application/x-www-form-urlencoded
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
        intent_id = request.path_params["intent"]
        if not str(form.get("key", "")).startswith("pk_"):
            return _error(401, "invalid_request_error", "a publishable key is needed")
        card = {k: str(form.get(f"payment_method_data[card][{k}]", "")) for k in _CARD_FIELDS}
        auth = {"Authorization": f"Bearer {secret_key}"}
        async with httpx.AsyncClient(base_url=localstripe, headers=auth, timeout=30) as stripe:
            intent = await stripe.get(f"/v1/payment_intents/{intent_id}")
            if intent.status_code != 200 or intent.json().get("client_secret") != form.get(
                "client_secret"
            ):
                return _error(400, "invalid_request_error", "no such payment intent")
            method = await stripe.post(
                "/v1/payment_methods",
                data={"type": "card", **{f"card[{k}]": v for k, v in card.items()}},
            )
            if method.status_code != 200:
                return _error(402, "card_error", _message(method.json(), "the card is invalid"))
            await stripe.post(
                f"/v1/payment_intents/{intent_id}", data={"payment_method": method.json()["id"]}
            )
            paid = await stripe.post(f"/v1/payment_intents/{intent_id}/confirm")
        if paid.status_code != 200:
            return _error(402, "card_error", _message(paid.json(), "your card was declined"))
        return JSONResponse(paid.json(), headers=_CORS)

    return Starlette(
        routes=[
            Route("/v3/", script, methods=["GET"]),
            Route("/v1/payment_intents/{intent}/confirm", confirm, methods=["POST"]),
        ]
    )


_CARD_FIELDS = ("number", "exp_month", "exp_year", "cvc")


def _message(body: Any, fallback: str) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message") or fallback) if isinstance(error, dict) else fallback


@asynccontextmanager
async def stripe_js(localstripe: str, secret_key: str) -> AsyncIterator[str]:
    """The stand-in on a free port: its base URL (Stripe.js is at ``/v3/``)."""
    async with serving(stripe_browser_side(localstripe, secret_key)) as port:
        yield f"http://127.0.0.1:{port}"
