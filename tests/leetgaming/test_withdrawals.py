"""Withdrawals end to end on the real app (embedded and distributed), refunded to the card
through localstripe with the real ``stripe`` SDK: holds, fees, the daily limit, TOTP and an
admin above the threshold, risk review, cancellation, a race for the last funds, the audit log
and a ledger that reconciles."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import stripe

from ledger import Transfer, TransferFlags, derive_id, reconcile
from leetgaming import totp
from wallet import accounts
from wallet import withdrawals as wd

from .openapi_check import conforms
from .test_deposits import SK, WHSEC, pay, send_webhooks, state_of, stripe_event, usd, webhook
from .test_play import serving_play
from .test_wallet_api import QUEUES, token


def stripe_settings(localstripe: str) -> dict[str, str]:
    """The app on localstripe, with no REST limit in the way of a test's many requests."""
    return {
        "stripe_secret_key": SK,
        "stripe_webhook_secret": WHSEC,
        "stripe_api_base": localstripe,
        "rest_requests_per_min": "100000",
    }


async def deposited(
    http: httpx.AsyncClient, sdk: stripe.StripeClient, me: str, amount: int
) -> dict[str, Any]:
    made = await http.post(
        "/v1/deposits",
        json={"method": "card", "asset": "USD", "amount": str(amount)},
        headers=token(me) | {"Idempotency-Key": secrets.token_hex(8)},
    )
    assert made.status_code == 201, made.text
    await pay(sdk, made.json()["payment_intent"], "4242424242424242")
    return await state_of(http, me, made.json()["id"], "succeeded") | {
        "payment_intent": made.json()["payment_intent"]
    }


async def test_withdrawals_limits_two_factor_approval_review_and_races(
    tmp_path: Path, backends: dict[str, str], localstripe: str
) -> None:
    me, other = f"w{secrets.token_hex(4)}", f"w{secrets.token_hex(4)}"
    settings = stripe_settings(localstripe)
    sdk = stripe.StripeClient(SK, base_addresses={"api": localstripe})
    async with serving_play(tmp_path, backends, QUEUES, **settings) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            doc = (await http.get("/openapi.json")).json()
            await send_webhooks(http, localstripe, base)
            small = await deposited(http, sdk, me, 50_000)  # $500: $487.50 after the fee
            big = await deposited(http, sdk, me, 1_000_000)  # $10,000: $9,750 after the fee
            assert (await usd(http, me))["available"] == str(48_750 + 975_000)
            admin = token("root", "admin")

            def withdraw(
                amount: int, destination: str, who: str = me, key: str | None = None
            ) -> Any:
                return http.post(
                    "/v1/withdrawals",
                    json={
                        "asset": "USD",
                        "amount": str(amount),
                        "rail": "card_refund",
                        "destination": destination,
                    },
                    headers=token(who) | {"Idempotency-Key": key or secrets.token_hex(8)},
                )

            # refused before anything moves
            for amount, dest, who, status, code in [
                (10_000, "dep_nope", me, 422, "bad_destination"),
                (10_000, small["id"], other, 422, "bad_destination"),  # someone else's deposit
                (60_000, small["id"], me, 422, "exceeds_destination"),
                (99, small["id"], me, 409, "amount_too_small"),
            ]:
                refused = await withdraw(amount, dest, who)
                assert (refused.status_code, refused.json()["code"]) == (status, code), refused.text
                conforms(doc, refused)
            assert (await usd(http, me))["available"] == str(48_750 + 975_000)

            # $100 to the small deposit's card: low risk, sent at once
            sent = await withdraw(10_000, small["id"])
            assert sent.status_code == 201, sent.text
            conforms(doc, sent)
            body = sent.json()
            assert (body["state"], body["fee"], body["payout"]) == ("sent", "300", "9700")
            assert body["risk_reasons"] == ["new_account"]  # the test player has no account row
            assert (await usd(http, me))["available"] == str(48_750 + 975_000 - 10_000)
            refunds = await asyncio.to_thread(
                sdk.v1.refunds.list, params={"payment_intent": small["payment_intent"]}
            )
            assert [r.amount for r in refunds.data] == [9_700]
            # Stripe then reports the refund it made for us: not a reversal of the deposit
            report = stripe_event(
                "charge.refunded",
                {
                    "id": "ch_s",
                    "object": "charge",
                    "payment_intent": small["payment_intent"],
                    "amount": 50_000,
                    "amount_refunded": 9_700,
                },
            )
            answer = await webhook(http, report)
            assert answer.json()["outcome"] == "already_reversed"
            after_first = 48_750 + 975_000 - 10_000
            assert (await usd(http, me))["available"] == str(after_first)

            # $1,500: TOTP, then an admin
            large = (await withdraw(150_000, big["id"])).json()
            assert large["state"] == "awaiting_totp" and large["needs_approval"]
            mine = await usd(http, me)
            assert (mine["available"], mine["held"]) == (str(after_first - 150_000), "150000")
            confirm = f"/v1/withdrawals/{large['id']}/confirm"
            no_totp = await http.post(confirm, json={"code": "123456"}, headers=token(me))
            assert (no_totp.status_code, no_totp.json()["code"]) == (403, "totp_required")
            enrolled = await http.post("/v1/me/totp", headers=token(me))
            assert enrolled.status_code == 201
            secret = enrolled.json()["secret"]
            now = time.time()
            ok = await http.post(
                "/v1/me/totp/confirm", json={"code": totp.code_at(secret, now)}, headers=token(me)
            )
            assert ok.status_code == 200, ok.text
            reused = await http.post(
                confirm, json={"code": totp.code_at(secret, now)}, headers=token(me)
            )
            assert (reused.status_code, reused.json()["code"]) == (403, "bad_totp")
            confirmed = await http.post(
                confirm, json={"code": totp.code_at(secret, now + 30)}, headers=token(me)
            )
            assert confirmed.status_code == 200 and confirmed.json()["state"] == "awaiting_approval"
            decide = f"/v1/admin/withdrawals/{large['id']}"
            assert (await http.post(f"{decide}/approve", headers=token(me))).status_code == 403
            waiting = (await http.get("/v1/admin/withdrawals", headers=admin)).json()
            assert large["id"] in [w["id"] for w in waiting["withdrawals"]]
            approved = await http.post(f"{decide}/approve", headers=admin)
            assert approved.status_code == 200, approved.text
            assert (approved.json()["state"], approved.json()["approved_by"]) == ("sent", "root")
            again = await http.post(f"{decide}/approve", headers=admin)
            assert (again.status_code, again.json()["code"]) == (409, "wrong_state")
            after_large = after_first - 150_000
            mine = await usd(http, me)
            assert (mine["available"], mine["held"]) == (str(after_large), "0")

            # the daily limit: $100 + $1,500 today, so $8,400 is left
            over = await withdraw(840_001, big["id"])
            assert (over.status_code, over.json()["code"]) == (409, "daily_limit")

            # a fourth withdrawal in a day on a new account: reviewed, and rejected
            await withdraw(1_000, big["id"])  # the third
            reviewed = (await withdraw(2_000, big["id"])).json()
            assert reviewed["state"] == "in_review" and "velocity" in reviewed["risk_reasons"]
            rejected = await http.post(
                f"/v1/admin/withdrawals/{reviewed['id']}/reject", headers=admin
            )
            assert rejected.json()["state"] == "rejected"
            after_review = after_large - 1_000
            assert (await usd(http, me))["available"] == str(after_review)

            # cancelled by the player while it waits for the code; invisible to others
            waiting_one = (await withdraw(120_000, big["id"])).json()
            link = f"/v1/withdrawals/{waiting_one['id']}"
            assert (await http.get(link, headers=token(other))).status_code == 404
            assert (await http.post(f"{link}/cancel", headers=token(other))).status_code == 404
            cancelled = await http.post(f"{link}/cancel", headers=token(me))
            assert cancelled.json()["state"] == "cancelled"
            assert (await usd(http, me))["available"] == str(after_review)

            # the last funds: an entry fee takes nearly all; 8 withdrawals race for the rest
            ledger = state.ledger
            pool = accounts.prize_pool(f"t-{me}", "USD")
            await ledger.create_accounts([pool])
            leave = 5_000
            [hold] = await ledger.create_transfers(
                [
                    Transfer(
                        derive_id("test.hold", me),
                        accounts.user(me, "USD").id,
                        pool.id,
                        after_review - leave,
                        "USD",
                        accounts.Code.ENTRY_FEE,
                        TransferFlags.PENDING,
                    )
                ]
            )
            assert hold.result == "ok"
            raced = await asyncio.gather(*(withdraw(leave, big["id"]) for _ in range(8)))
            codes = sorted(r.json().get("code", "held") for r in raced)
            assert codes == ["held"] + ["insufficient_funds"] * 7, codes
            final = await usd(http, me)
            assert final["available"] == "0"

            log = (await http.get("/v1/admin/audit", params={"limit": "200"}, headers=admin)).json()
            steps = [
                (e["action"], e["actor"]) for e in log["entries"] if e["subject"] == large["id"]
            ]
            assert ("withdrawal.approve", "root") in steps
            assert ("withdrawal.confirm_totp", me) in steps
            assert ("withdrawal.send", "system") in steps
            assert (await reconcile(ledger.store)).ok


class Crash(BaseException):
    """The process dies here (not an error the code could handle)."""


async def test_a_crash_while_sending_is_finished_once_and_a_failed_refund_returned(
    tmp_path: Path, backends: dict[str, str], localstripe: str
) -> None:
    me = f"c{secrets.token_hex(4)}"
    settings = stripe_settings(localstripe)
    sdk = stripe.StripeClient(SK, base_addresses={"api": localstripe})
    async with serving_play(tmp_path, backends, QUEUES, **settings) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await send_webhooks(http, localstripe, base)
            card = await deposited(http, sdk, me, 50_000)
            gateway = state.deposits.gateway
            real_refund = gateway.refund

            async def crash_after_refund(intent: str, amount: int, key: str) -> str:
                await real_refund(intent, amount, key)
                raise Crash  # Stripe refunded; the holds were never posted

            gateway.refund = crash_after_refund
            try:
                with contextlib.suppress(httpx.HTTPError):
                    await http.post(
                        "/v1/withdrawals",
                        json={
                            "asset": "USD",
                            "amount": "10000",
                            "rail": "card_refund",
                            "destination": card["id"],
                        },
                        headers=token(me) | {"Idempotency-Key": "crash"},
                    )
            finally:
                gateway.refund = real_refund
            withdrawals = state.withdrawals
            [wid] = [
                r[0]
                for r in await withdrawals.db.fetch(
                    "SELECT id FROM withdrawals WHERE player = ?", me
                )
            ]
            stuck, held, _ = await withdrawals.get(wid)
            assert (stuck.state, held) == (wd.State.SENDING, True)
            mine = await usd(http, me)
            assert (mine["available"], mine["held"]) == (str(48_750 - 10_000), "10000")
            await withdrawals.sweep()  # too soon: its own request may still be finishing
            assert (await withdrawals.get(wid))[0].state is wd.State.SENDING
            withdrawals.clock_s = lambda: time.time() + 60
            await withdrawals.sweep()
            await withdrawals.sweep()
            done = (await withdrawals.get(wid))[0]
            assert done.state is wd.State.SENT
            mine = await usd(http, me)
            assert (mine["available"], mine["held"]) == (str(48_750 - 10_000), "0")
            # Stripe had refunded before the crash: the sweeper found that refund (by its
            # metadata) instead of asking again
            refunds = await asyncio.to_thread(
                sdk.v1.refunds.list, params={"payment_intent": card["payment_intent"]}
            )
            assert [(r.amount, r.metadata["withdrawal"]) for r in refunds.data] == [(9_700, wid)]
            assert (await reconcile(state.ledger.store)).ok

            # days later the card's bank refuses the refund: the withdrawal comes back, once
            refund = {
                "id": refunds.data[0].id,
                "object": "refund",
                "status": "failed",
                "amount": 9_700,
                "payment_intent": card["payment_intent"],
                "metadata": {"withdrawal": wid},
            }
            other = await webhook(http, stripe_event("refund.failed", refund | {"id": "re_x"}))
            assert other.json()["outcome"] == "mismatch"  # not the refund this withdrawal made
            assert (await usd(http, me))["available"] == str(48_750 - 10_000)
            answer = await webhook(http, stripe_event("refund.failed", refund))
            assert answer.json()["outcome"] == "returned"
            again = await webhook(http, stripe_event("refund.updated", refund))
            assert again.json()["outcome"] == "already_returned"
            assert (await usd(http, me))["available"] == str(48_750)  # payout and fee back
            body = (await http.get(f"/v1/withdrawals/{wid}", headers=token(me))).json()
            assert body["state"] == "returned"
            back = (
                await http.get("/v1/transactions?kind=withdrawal_return", headers=token(me))
            ).json()["transactions"]
            assert sorted(int(t["amount"]) for t in back) == [300, 9_700]
            assert (await reconcile(state.ledger.store)).ok


async def test_approve_and_cancel_racing_end_one_way_with_the_money_to_match(
    tmp_path: Path, backends: dict[str, str], localstripe: str
) -> None:
    """Item 13 of the security issue: an admin approves while the player cancels, over REST
    at the same moment, many times. Each withdrawal ends either sent (refunded to the card
    once, the money gone) or cancelled (nothing sent, the hold released), never both, and the
    audit log says who did what."""
    me = f"r{secrets.token_hex(4)}"
    settings = stripe_settings(localstripe)
    sdk = stripe.StripeClient(SK, base_addresses={"api": localstripe})
    async with serving_play(tmp_path, backends, QUEUES, **settings) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await send_webhooks(http, localstripe, base)
            card = await deposited(http, sdk, me, 50_000)
            admin = token("root", "admin")

            async def withdraw(amount: int) -> dict[str, Any]:
                made = await http.post(
                    "/v1/withdrawals",
                    json={
                        "asset": "USD",
                        "amount": str(amount),
                        "rail": "card_refund",
                        "destination": card["id"],
                    },
                    headers=token(me) | {"Idempotency-Key": secrets.token_hex(8)},
                )
                assert made.status_code == 201, made.text
                body: dict[str, Any] = made.json()
                return body

            for _ in range(3):  # a new account's first three in a day go out at once
                assert (await withdraw(100))["state"] == "sent"
            balance = 48_750 - 300
            rounds, ends = 10, []
            for n in range(rounds):
                w = await withdraw(200)
                assert w["state"] == "in_review", w  # the fourth and later: an admin decides
                link = f"/v1/withdrawals/{w['id']}"

                async def cancel(delay_s: float, link: str = link) -> httpx.Response:
                    await asyncio.sleep(delay_s)
                    return await http.post(f"{link}/cancel", headers=token(me))

                # the cancel leaves 0 to 18 ms after the approval: it lands before the approval,
                # between the approval and the send (approved -> cancelled), or after the send
                answers = await asyncio.gather(
                    http.post(f"/v1/admin/withdrawals/{w['id']}/approve", headers=admin),
                    cancel(n * 0.002),
                )
                for a in answers:
                    assert a.status_code in (200, 409), a.text
                    if a.status_code == 409:
                        assert a.json()["code"] == "wrong_state", a.text
                end = (await http.get(link, headers=token(me))).json()["state"]
                assert end in ("sent", "cancelled"), end
                ends.append(end)
                balance -= 200 if end == "sent" else 0
                mine = await usd(http, me)
                assert (mine["available"], mine["held"]) == (str(balance), "0"), (n, end)
                entries = (
                    await http.get("/v1/admin/audit", params={"limit": "200"}, headers=admin)
                ).json()["entries"]
                actions = {e["action"] for e in entries if e["subject"] == w["id"]}
                assert ("withdrawal.send" in actions) == (end == "sent"), actions
                assert ("withdrawal.cancel" in actions) == (end == "cancelled"), actions
            refunds = await asyncio.to_thread(
                sdk.v1.refunds.list, params={"payment_intent": card["payment_intent"], "limit": 100}
            )
            assert len(refunds.data) == 3 + ends.count("sent"), ends
            assert (await reconcile(state.ledger.store)).ok
