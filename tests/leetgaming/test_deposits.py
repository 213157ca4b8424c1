"""Card deposits end to end: the real app (embedded and distributed), the real ``stripe`` SDK,
and localstripe, a Stripe-compatible server, on 127.0.0.1. localstripe signs and sends
``payment_intent.*`` webhooks itself; refunds and disputes, which it does not announce, are
sent as Stripe would, signed here with the endpoint's secret."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import stripe

from ledger import Transfer, TransferFlags, derive_id, reconcile
from wallet import accounts

from .openapi_check import conforms
from .test_play import event, player, serving_play
from .test_wallet_api import QUEUES, token

SK = "sk_test_leetgaming"
WHSEC = "whsec_leetgaming_test"


def signed(
    event: dict[str, Any], secret: str = WHSEC, at_s: int | None = None
) -> tuple[bytes, str]:
    """A webhook body and its ``Stripe-Signature``, made as Stripe makes them."""
    payload = orjson.dumps(event)
    stamp = int(time.time()) if at_s is None else at_s
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={stamp},v1={mac}"


async def webhook(http: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
    """Deliver ``event`` to the app as Stripe does, signed with the endpoint's secret."""
    payload, signature = signed(event)
    return await http.post(
        "/v1/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature}
    )


async def send_webhooks(http: httpx.AsyncClient, localstripe: str, base: str) -> None:
    """Have localstripe deliver its events to the app at ``base``, signed with WHSEC."""
    hook = await http.post(
        f"{localstripe}/_config/webhooks/leetgaming",
        data={"url": f"{base}/v1/webhooks/stripe", "secret": WHSEC},
    )
    assert hook.status_code == 200, hook.text


def stripe_event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{secrets.token_hex(8)}",
        "object": "event",
        "type": kind,
        "livemode": False,  # a test key's events
        "created": int(time.time()),
        "data": {"object": obj},
    }


async def pay(client: stripe.StripeClient, intent: str, card: str) -> None:
    """What Stripe.js does in the player's browser: a card, then the confirmation."""

    def run() -> None:
        method = client.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": card, "exp_month": 12, "exp_year": 2040, "cvc": "123"},
            }
        )
        client.v1.payment_intents.update(intent, params={"payment_method": method.id})
        with contextlib.suppress(stripe.CardError):  # declined: Stripe tells us by webhook
            client.v1.payment_intents.confirm(intent)

    await asyncio.to_thread(run)


async def state_of(http: httpx.AsyncClient, me: str, deposit: str, want: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        body: dict[str, Any] = (await http.get(f"/v1/deposits/{deposit}", headers=token(me))).json()
        if body["state"] == want:
            return body
        assert time.monotonic() < deadline, f"the deposit stayed {body['state']}"
        await asyncio.sleep(0.1)


async def usd(http: httpx.AsyncClient, me: str) -> dict[str, Any]:
    wallet = (await http.get("/v1/wallet", headers=token(me))).json()
    return next((b for b in wallet["balances"] if b["asset"] == "USD"), {"available": "0"})


async def test_card_deposit_credit_fee_replays_forgeries_refund_and_lost_dispute(
    tmp_path: Path, backends: dict[str, str], localstripe: str
) -> None:
    me = f"d{secrets.token_hex(4)}"
    settings = {
        "stripe_secret_key": SK,
        "stripe_webhook_secret": WHSEC,
        "stripe_api_base": localstripe,
    }
    sdk = stripe.StripeClient(SK, base_addresses={"api": localstripe})
    async with serving_play(tmp_path, backends, QUEUES, **settings) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base) as http:
            doc = (await http.get("/openapi.json")).json()
            hook = await http.post(
                f"{localstripe}/_config/webhooks/leetgaming",
                data={"url": f"{base}/v1/webhooks/stripe", "secret": WHSEC},
            )
            assert hook.status_code == 200

            def deposit(body: dict[str, Any], key: str | None) -> Any:
                headers = token(me) | ({"Idempotency-Key": key} if key else {})
                return http.post("/v1/deposits", json=body, headers=headers)

            card = {"method": "card", "asset": "USD", "amount": "10000"}
            for body, key, status, code in [
                (card, None, 400, "idempotency_key_required"),
                (card | {"amount": "-5"}, "k0", 422, "bad_amount"),
                (card | {"amount": 10.5}, "k0", 422, "bad_amount"),
                (card | {"amount": True}, "k0", 422, "bad_amount"),
                (card | {"amount": "1e3"}, "k0", 422, "bad_amount"),
                (card | {"amount": "99"}, "k0", 422, "amount_out_of_range"),
                (card | {"amount": "1000001"}, "k0", 422, "amount_out_of_range"),
                (card | {"asset": "ETH"}, "k0", 422, "bad_asset"),
                (card | {"method": "cash"}, "k0", 422, "bad_method"),
                (card | {"balance": "1"}, "k0", 422, "unknown_field"),
            ]:
                refused = await deposit(body, key)
                assert (refused.status_code, refused.json()["code"]) == (status, code), body
                conforms(doc, refused)
            assert (await http.post("/v1/deposits", json=card)).status_code == 401

            key = f"dep-{secrets.token_hex(4)}"
            created = await deposit(card, key)
            assert created.status_code == 201, created.text
            conforms(doc, created)
            made = created.json()
            assert (made["state"], made["amount"], made["fee"], made["net"]) == (
                "pending",
                "10000",
                "250",
                "9750",
            )
            assert made["client_secret"].startswith(made["payment_intent"])
            again = await deposit(card, key)
            assert again.status_code == 201 and again.json() == made
            assert again.headers["idempotent-replayed"] == "true"
            other = await deposit(card | {"amount": "20000"}, key)
            assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
            assert (
                await http.get(f"/v1/deposits/{made['id']}", headers=token("x"))
            ).status_code == 404

            ws = await player(ws_url, me)
            await pay(sdk, made["payment_intent"], "4242424242424242")
            credited = await state_of(http, me, made["id"], "succeeded")
            conforms(doc, await http.get(f"/v1/deposits/{made['id']}", headers=token(me)))
            assert credited["net"] == "9750"
            told = await asyncio.wait_for(event(ws, "wallet.deposit"), 10)
            assert told["deposit"]["id"] == made["id"] and told["deposit"]["state"] == "succeeded"
            await ws.close()
            assert (await usd(http, me))["available"] == "9750"
            kinds = [
                (r["kind"], r["amount"])
                for r in (await http.get("/v1/transactions", headers=token(me))).json()[
                    "transactions"
                ]
            ]
            assert kinds == [("deposit_fee", "-250"), ("deposit", "10000")]

            # Stripe delivers the same event again, or someone forges one: nothing moves
            paid = stripe_event(
                "payment_intent.succeeded",
                {
                    "id": made["payment_intent"],
                    "object": "payment_intent",
                    "amount": 10000,
                    "amount_received": 10000,
                    "currency": "usd",
                },
            )
            body, stamp = signed(paid)
            reserialized = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
            live = {**paid, "id": f"evt_{secrets.token_hex(8)}", "livemode": True}
            for payload, signature, status in [
                (body, stamp, 200),
                (*signed(paid, secret="whsec_wrong"), 400),
                (*signed(paid, at_s=int(time.time()) - 301), 400),  # over the 300 s tolerance
                (*signed(paid, at_s=int(time.time()) - 3600), 400),
                (reserialized, stamp, 400),  # the same event, re-serialized
                (orjson.dumps(paid), "", 400),
                (*signed(live), 400),  # a live-mode event at a test-mode endpoint
            ]:
                answer = await http.post(
                    "/v1/webhooks/stripe",
                    content=payload,
                    headers={"Stripe-Signature": signature} if signature else {},
                )
                assert answer.status_code == status, answer.text
            assert (await usd(http, me))["available"] == "9750"

            # a refund of 40.00 (localstripe makes it; the webhook is Stripe's shape)
            await asyncio.to_thread(
                sdk.v1.refunds.create,
                params={"payment_intent": made["payment_intent"], "amount": 4000},
            )
            refund = stripe_event(
                "charge.refunded",
                {
                    "id": "ch_x",
                    "object": "charge",
                    "payment_intent": made["payment_intent"],
                    "amount": 10000,
                    "amount_refunded": 4000,
                },
            )
            for _ in range(2):  # the second delivery (a new event id, same total) adds nothing
                refund["id"] = f"evt_{secrets.token_hex(8)}"
                answer = await webhook(http, refund)
                assert answer.status_code == 200, answer.text
            assert (await usd(http, me))["available"] == "5750"

            # a dispute opens over 20.00: that much is frozen at once (held, not available),
            # and released when the dispute is won
            def dispute(kind: str, dispute_id: str, amount: int, status: str) -> dict[str, Any]:
                return stripe_event(
                    kind,
                    {
                        "id": dispute_id,
                        "object": "dispute",
                        "payment_intent": made["payment_intent"],
                        "amount": amount,
                        "status": status,
                    },
                )

            opened = await webhook(
                http, dispute("charge.dispute.created", "dp_0", 2000, "needs_response")
            )
            assert opened.json()["outcome"] == "frozen", opened.text
            again = await webhook(
                http, dispute("charge.dispute.created", "dp_0", 2000, "needs_response")
            )
            assert again.json()["outcome"] == "already_frozen"
            mine = await usd(http, me)
            assert (mine["available"], mine["held"], mine["total"]) == ("3750", "2000", "5750")
            won = await webhook(http, dispute("charge.dispute.closed", "dp_0", 2000, "won"))
            assert won.json()["outcome"] == "released", won.text
            assert (await usd(http, me))["available"] == "5750"

            # the player enters a tournament with most of it (a held entry fee), then a dispute
            # over the other 60.00 opens (what is left, 7.50, is frozen) and is lost: the wallet
            # gives what it has, the rest is our loss
            ledger = state.ledger
            pool = accounts.prize_pool(f"t-{me}", "USD")
            await ledger.create_accounts([pool])
            [hold] = await ledger.create_transfers(
                [
                    Transfer(
                        derive_id("test.hold", me),
                        accounts.user(me, "USD").id,
                        pool.id,
                        5000,
                        "USD",
                        accounts.Code.ENTRY_FEE,
                        TransferFlags.PENDING,
                    )
                ]
            )
            assert hold.result == "ok"
            opened = await webhook(
                http, dispute("charge.dispute.created", "dp_1", 6000, "needs_response")
            )
            assert opened.json()["outcome"] == "frozen", opened.text
            mine = await usd(http, me)
            assert (mine["available"], mine["held"]) == ("0", "5750")
            answer = await webhook(http, dispute("charge.dispute.closed", "dp_1", 6000, "lost"))
            assert answer.status_code == 200 and answer.json()["outcome"] == "reversed"
            mine = await usd(http, me)
            assert (mine["available"], mine["held"], mine["total"]) == ("0", "5000", "5000")
            final = await state_of(http, me, made["id"], "reversed")
            assert final["reversed"] == "10000"
            expense = accounts.expense("USD").id
            page = await ledger.history(expense, limit=1000, newest_first=True)
            losses = [t for t in page.records if made["id"] in (t.metadata or "")]
            assert [(t.debit_account_id, t.amount) for t in losses] == [(expense, 6000 - 750)]

            # a refund that overtakes its payment is sent back to be delivered later
            early = (await deposit(card, f"early-{secrets.token_hex(4)}")).json()
            overtaking = stripe_event(
                "charge.refunded",
                {
                    "id": "ch_y",
                    "object": "charge",
                    "payment_intent": early["payment_intent"],
                    "amount": 10000,
                    "amount_refunded": 10000,
                },
            )
            answer = await webhook(http, overtaking)
            assert (answer.status_code, answer.json()["code"]) == (503, "retry_later")

            # a declined card: the deposit fails, nothing moves
            declined = (await deposit(card, f"declined-{secrets.token_hex(4)}")).json()
            await pay(sdk, declined["payment_intent"], "4000000000000341")
            await state_of(http, me, declined["id"], "failed")
            assert (await usd(http, me))["total"] == "5000"

            # the audit log holds every step; the ledger reconciles
            log = (await http.get("/v1/admin/audit", headers=token("root", "admin"))).json()
            actions = {e["action"] for e in log["entries"] if e["subject"] == made["id"]}
            assert actions == {
                "deposit.create",
                "deposit.credit",
                "deposit.reverse",
                "deposit.freeze",
                "deposit.release",
            }
            report = await reconcile(ledger.store)
            assert report.ok, report
