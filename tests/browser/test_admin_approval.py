"""In Debian's Chromium: an admin signs in to the portal with password and TOTP code (the form
asks for the code when the server requires it) and approves a player's $1,500 withdrawal that
waited for an admin; it is refunded to the card at localstripe and leaves the queue."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import stripe
from playwright.async_api import Page, expect

from leetgaming import totp

from ..leetgaming.test_deposits import SK, send_webhooks
from ..leetgaming.test_play import serving_play
from ..leetgaming.test_wallet_api import QUEUES, token
from ..leetgaming.test_withdrawals import deposited, stripe_settings
from .conftest import screenshot, sign_in_as_admin

PASSWORD = "correct horse battery staple"


async def test_an_admin_signs_in_with_totp_and_approves_a_large_withdrawal(
    tmp_path: Path, page: Page, screenshots: Path, localstripe: str
) -> None:
    backends = {"LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    sdk = stripe.StripeClient(SK, base_addresses={"api": localstripe})
    me = f"w{secrets.token_hex(4)}"
    async with serving_play(tmp_path, backends, QUEUES, **stripe_settings(localstripe)) as (
        ws_url,
        state,
    ):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await send_webhooks(http, localstripe, base)
            # the player: $2,000 in by card, TOTP on, $1,500 out: waits for an admin
            card = await deposited(http, sdk, me, 200_000)
            secret = (await http.post("/v1/me/totp", headers=token(me))).json()["secret"]
            now = time.time()
            await http.post(
                "/v1/me/totp/confirm", json={"code": totp.code_at(secret, now)}, headers=token(me)
            )
            asked = await http.post(
                "/v1/withdrawals",
                json={
                    "asset": "USD",
                    "amount": "150000",
                    "rail": "card_refund",
                    "destination": card["id"],
                },
                headers=token(me) | {"Idempotency-Key": "big"},
            )
            wid = asked.json()["id"]
            confirmed = await http.post(
                f"/v1/withdrawals/{wid}/confirm",
                json={"code": totp.code_at(secret, now + totp.STEP_S)},
                headers=token(me),
            )
            assert confirmed.json()["state"] == "awaiting_approval", confirmed.text

            # the admin: made by the operator, signs in with password and TOTP code
            admin_id = await sign_in_as_admin(
                page, base, state, http, (screenshots, "admin-1-totp-asked")
            )
            await expect(page.get_by_role("heading", name="Withdrawals to approve")).to_be_visible()
            row = page.locator(f'[data-withdrawal="{wid}"]')
            await expect(row).to_contain_text("1,500.00 USD")
            await expect(row).to_contain_text("awaiting approval")
            await screenshot(page, screenshots, "admin-2-queue")

            await page.get_by_role("button", name=f"Approve {wid}").click()
            await expect(page.get_by_role("status").filter(has_text=wid)).to_contain_text("is sent")
            await expect(page.get_by_text("Connection lost")).to_have_count(0)
            await expect(row).to_have_count(0)
            await expect(page.get_by_text("Nothing is waiting.")).to_be_visible()
            await screenshot(page, screenshots, "admin-3-approved")
            done = (await http.get(f"/v1/withdrawals/{wid}", headers=token(me))).json()
            assert (done["state"], done["approved_by"]) == ("sent", admin_id)
            refunds = sdk.v1.refunds.list(params={"payment_intent": card["payment_intent"]})
            assert [r.amount for r in refunds.data] == [150_000 - 4_500]  # less the 3 % fee
