"""In Debian's Chromium, the whole way a player goes: signs up, deposits by card in the wallet,
queues, accepts, follows the live score and wins; then enters a paid tournament from its page,
plays its final from the lobby, wins it, and sees the prize arrive in the wallet. The opponent
and the game server are bots on the real protocol; the admin's steps go over REST."""

from __future__ import annotations

import secrets
from pathlib import Path

from playwright.async_api import Page, expect

from realtime.channel import Principal, Role

from ..leetgaming.test_deposits import SK, send_webhooks
from ..leetgaming.test_tournaments_api import QUEUES, fund_players, token
from ..stripe_js import stripe_js
from .conftest import (
    admin_token,
    card_form_settings,
    game_server,
    open_confirmation,
    open_registration,
    open_tournament,
    pay_by_card,
    portal_app,
    screenshot,
    submit_registration,
    win_in_the_lobby,
)

FINAL = {
    "name": "Friday final",
    "queue": "cs2:1v1:eu",
    "team_size": 1,
    "format": {"kind": "single_elimination"},
    "entry_fee": {"asset": "USD", "amount": "500"},
    "prize_asset": "USD",
    "payout_bps": [10000],
    "participants_min": 2,
    "participants_max": 2,
    "rake_bps": 1000,
}


async def test_a_player_deposits_plays_enters_a_tournament_and_is_paid_its_prize(
    tmp_path: Path, page: Page, screenshots: Path, localstripe: str
) -> None:
    async with (
        stripe_js(localstripe, SK) as stripe_base,
        portal_app(tmp_path, QUEUES, **card_form_settings(localstripe, stripe_base)) as (
            base,
            state,
            http,
        ),
    ):
        await send_webhooks(http, localstripe, base)
        address = f"journey{secrets.token_hex(3)}@example.com"
        await open_registration(page, base)
        await submit_registration(page, address)
        await open_confirmation(page, tmp_path / "mail")
        [(me,)] = await state.identity.db.fetch("SELECT id FROM users WHERE email = ?", address)

        # $20.00 by card: 19.50 after the 2.5 % fee
        await pay_by_card(page, "20")
        await expect(page.get_by_test_id("available-USD")).to_have_text("19.50")
        await screenshot(page, screenshots, "journey-1-deposited")

        # a matchmade 1v1 against a bot, won
        server = await game_server(state)
        bot = "bot-rival"
        await page.get_by_role("link", name="Play").click()
        await page.get_by_role("button", name="Find a match").click()
        await expect(page.get_by_text("Searching in cs2:1v1:eu")).to_be_visible()
        await state.play.call(Principal(Role.PLAYER, bot), "queue.join", {"queue": "cs2:1v1:eu"})
        await win_in_the_lobby(page, state, me, bot, server)
        await screenshot(page, screenshots, "journey-2-won-a-match")

        # a paid tournament: the player enters from its page, the bot over REST
        tid = await open_tournament(http, FINAL)
        await page.get_by_role("link", name="Tournaments").click()
        await page.get_by_role("link", name=FINAL["name"]).click()
        entry = page.get_by_role("region", name="Your entry")
        await expect(page.get_by_test_id("balance-after")).to_have_text("14.50 USD")
        await entry.get_by_role("button", name="Register").click()
        await expect(entry).to_contain_text("You are registered.")
        await fund_players(state.ledger, [bot], 500)
        joined = await http.post(f"/v1/tournaments/{tid}/registration", headers=token(bot))
        assert joined.status_code == 201, joined.text
        for action in ("seed", "start"):
            done = await http.post(
                f"/v1/admin/tournaments/{tid}/{action}", json={}, headers=admin_token()
            )
            assert done.status_code == 200, done.text
        await screenshot(page, screenshots, "journey-3-bracket")

        # the final is played from the lobby, like any match
        await page.get_by_role("link", name="Play").click()
        await win_in_the_lobby(page, state, me, bot, server, (screenshots, "journey-4-final"))

        # the prize: both fees less the 10 % rake, paid into the wallet
        await page.get_by_role("link", name="Wallet").click()
        await expect(page.get_by_test_id("available-USD")).to_have_text("23.50")
        history = page.get_by_role("list", name="History")
        await expect(history).to_contain_text("prize")
        await expect(history).to_contain_text("9.00 USD")
        await screenshot(page, screenshots, "journey-5-prize")
        standings = (await http.get(f"/v1/tournaments/{tid}/standings")).json()["standings"]
        assert standings[0]["teams"] == [me]
