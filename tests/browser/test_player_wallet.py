"""In Debian's Chromium: a player signs up through the portal's form (inline messages for bad
input first), confirms through the mailed link, lands in their wallet, and deposits by card in
the wallet's form (Stripe.js, a stand-in that pays at localstripe; credited by Stripe's signed
webhook): bad amounts and a declined card get inline messages and move nothing; the deposit
arrives live, with its fee in the history, with no reload."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from leetgaming import totp

from ..leetgaming.test_deposits import SK, send_webhooks
from ..leetgaming.test_play import serving_play
from ..leetgaming.test_wallet_api import QUEUES
from ..stripe_js import stripe_js
from .conftest import (
    card_form_settings,
    open_confirmation,
    open_registration,
    pay_by_card,
    screenshot,
    submit_registration,
)


async def test_a_player_signs_up_confirms_and_watches_a_deposit_arrive(
    tmp_path: Path, page: Page, screenshots: Path, localstripe: str
) -> None:
    backends = {"LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    address = f"player{secrets.token_hex(3)}@example.com"
    async with (
        stripe_js(localstripe, SK) as stripe_base,
        serving_play(
            tmp_path,
            backends,
            QUEUES,
            **card_form_settings(localstripe, stripe_base),
            withdrawal_approval_usd_cents="2500",  # above $25: TOTP and an admin
        ) as (ws_url, _state),
    ):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await send_webhooks(http, localstripe, base)
            await open_registration(page, base)
            await page.get_by_label("Email").fill("not-an-email")
            await page.get_by_label("Password").fill("short")
            await page.get_by_role("button", name="Create account").click()
            await expect(page.get_by_text("Enter an email address")).to_be_visible()
            await expect(page.get_by_text("At least 10 characters")).to_be_visible()
            await expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
            await screenshot(page, screenshots, "player-1-signup-errors")
            assert not list((tmp_path / "mail").glob("*.eml"))  # nothing was sent

            await submit_registration(page, address)
            await open_confirmation(page, tmp_path / "mail")
            await expect(page.get_by_role("heading", name="Wallet")).to_be_visible()
            await expect(page.get_by_text("No transactions yet.")).to_be_visible()
            await screenshot(page, screenshots, "player-2-wallet-empty")

            # bad amounts: inline messages, nothing asked of Stripe
            await pay_by_card(page, "abc")
            await expect(page.get_by_text("an amount is digits")).to_be_visible()
            await pay_by_card(page, "0.50")
            await expect(
                page.get_by_text("a card deposit is 1.00 to 10,000.00 USD")
            ).to_be_visible()
            amount = page.get_by_role("form", name="By card").get_by_label("Amount (USD)")
            await expect(amount).to_have_attribute("aria-invalid", "true")
            await screenshot(page, screenshots, "player-3-card-errors")
            # a declined card: the form says so, and nothing is credited
            await pay_by_card(page, "100", "4000 0000 0000 0341")
            await expect(page.get_by_role("alert")).to_contain_text("declined")
            # a $100 card deposit: the page shows it arrive, less the 2.5 % fee
            await pay_by_card(page, "100")
            await expect(page.get_by_text("Paid. Your deposit appears")).to_be_visible()
            await expect(page.get_by_test_id("available-USD")).to_have_text("97.50")
            history = page.get_by_role("list", name="History")
            await expect(history).to_contain_text("deposit fee")
            await expect(history).to_contain_text("100.00 USD")
            await screenshot(page, screenshots, "player-4-deposit-arrived")

            # a withdrawal back to that card: a bad amount first, then $20.00 less the 3 % fee
            withdraw = page.get_by_role("region", name="Withdraw")
            await withdraw.get_by_label("Amount (USD)").fill("2.555")
            await withdraw.get_by_role("button", name="Withdraw").click()
            await expect(withdraw.get_by_text("at most 2 decimals")).to_be_visible()
            await withdraw.get_by_label("Amount (USD)").fill("20")
            await withdraw.get_by_role("button", name="Withdraw").click()
            shown = page.get_by_test_id("withdrawal")
            await expect(shown).to_contain_text("Withdrawal of 20.00 USD")
            await expect(shown).to_contain_text("you receive 19.40 after the fee")
            await expect(page.get_by_test_id("available-USD")).to_have_text("77.50")
            await expect(history).to_contain_text("withdrawal fee")
            await expect(history).not_to_contain_text("code")  # a posted hold says what it was
            await screenshot(page, screenshots, "player-5-withdrawal")

            # two-factor on, in the wallet: the key shown, a first code turns it on
            await withdraw.get_by_role("button", name="Set up an authenticator app").click()
            secret = await page.get_by_test_id("totp-secret").inner_text()
            await withdraw.get_by_label("First code").fill(totp.code_at(secret, time.time()))
            await withdraw.get_by_role("button", name="Turn on").click()
            await expect(withdraw.get_by_text("Two-factor authentication is on.")).to_be_visible()
            # $30.00: above this server's approval threshold, so the code is asked for
            await withdraw.get_by_label("Amount (USD)").fill("30")
            await withdraw.get_by_role("button", name="Withdraw").click()
            await expect(shown).to_contain_text("waiting for your TOTP code")
            await withdraw.get_by_label("TOTP code").fill("12345")
            await withdraw.get_by_role("button", name="Confirm").click()
            await expect(withdraw.get_by_text("the code is 6 digits")).to_be_visible()
            # the next step's code (the one that turned two-factor on may not be used again)
            await withdraw.get_by_label("TOTP code").fill(
                totp.code_at(secret, time.time() + totp.STEP_S)
            )
            await withdraw.get_by_role("button", name="Confirm").click()
            await expect(shown).to_contain_text("waiting for an admin's approval")
            await expect(page.get_by_test_id("available-USD")).to_have_text("47.50")  # held
            await screenshot(page, screenshots, "player-6-withdrawal-totp")
            await withdraw.get_by_role("button", name="Cancel the withdrawal").click()
            await expect(shown).to_contain_text("cancelled")
            await expect(page.get_by_test_id("available-USD")).to_have_text("77.50")

            # Pro: $9.99 from the balance, and it says until when
            pro = page.get_by_role("region", name="Pro")
            await pro.get_by_role("button", name="Subscribe to Pro").click()
            await expect(page.get_by_test_id("pro-state")).to_contain_text("Pro renews on")
            await expect(page.get_by_test_id("available-USD")).to_have_text("67.51")
            await pro.get_by_role("button", name="Cancel Pro").click()
            await expect(page.get_by_test_id("pro-state")).to_contain_text("Pro ends on")

            # a reload keeps the tab's session (the refresh token in sessionStorage)
            await page.reload()
            await expect(page.get_by_test_id("available-USD")).to_have_text("67.51")
