"""In Debian's Chromium: a player signs up through the portal's form (inline messages for bad
input first), confirms through the mailed link, lands in their wallet, and sees a card deposit
(paid at localstripe, credited by Stripe's signed webhook) arrive live, with its fee in the
history: no reload."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import stripe
from playwright.async_api import Page, expect

from ..leetgaming.test_deposits import SK, send_webhooks
from ..leetgaming.test_play import serving_play
from ..leetgaming.test_wallet_api import QUEUES
from ..leetgaming.test_withdrawals import deposited, stripe_settings
from .conftest import open_confirmation, open_registration, screenshot, submit_registration


async def test_a_player_signs_up_confirms_and_watches_a_deposit_arrive(
    tmp_path: Path, page: Page, screenshots: Path, localstripe: str
) -> None:
    backends = {"LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    settings = stripe_settings(localstripe)
    sdk = stripe.StripeClient(SK, base_addresses={"api": localstripe})
    address = f"player{secrets.token_hex(3)}@example.com"
    async with serving_play(tmp_path, backends, QUEUES, **settings) as (ws_url, state):
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
            row = await state.identity.db.fetchone("SELECT id FROM users WHERE email = ?", address)
            assert row is not None

            # a $100 card deposit: the page shows it arrive, less the 2.5 % fee
            await deposited(http, sdk, str(row[0]), 10_000)
            await expect(page.get_by_test_id("available-USD")).to_have_text("97.50")
            history = page.get_by_role("list", name="History")
            await expect(history).to_contain_text("deposit fee")
            await expect(history).to_contain_text("100.00 USD")
            await screenshot(page, screenshots, "player-3-deposit-arrived")

            # a reload keeps the tab's session (the refresh token in sessionStorage)
            await page.reload()
            await expect(page.get_by_test_id("available-USD")).to_have_text("97.50")
