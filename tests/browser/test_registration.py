"""In Debian's Chromium: a signed-in player opens a paid tournament, sees the entry fee and
what their balance will be after it, registers, and checks in when the admin opens the
check-in, each step arriving on the page through the bracket's live deltas."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

from playwright.async_api import Page, expect

from realtime.channel import Principal, Role
from wallet import accounts

from ..leetgaming.test_tournaments_api import CONFIG, QUEUES, TEAM_QUEUES, fund_players, token
from .conftest import (
    open_confirmation,
    open_registration,
    open_tournament,
    portal_app,
    screenshot,
    submit_registration,
)


async def test_a_player_registers_and_checks_in_from_the_tournament_page(
    tmp_path: Path, page: Page, screenshots: Path
) -> None:
    async with portal_app(tmp_path, QUEUES) as (base, state, http):
        admin = token("root", "admin")
        tid = await open_tournament(http, CONFIG | {"check_in_s": 600})

        address = f"entrant{secrets.token_hex(3)}@example.com"
        await open_registration(page, base)
        await submit_registration(page, address)
        await open_confirmation(page, tmp_path / "mail")
        [(me,)] = await state.identity.db.fetch("SELECT id FROM users WHERE email = ?", address)
        await fund_players(state.ledger, [me], 2_500)

        await page.get_by_role("link", name="Tournaments").click()
        await page.get_by_role("link", name=CONFIG["name"]).click()
        entry = page.get_by_role("region", name="Your entry")
        await expect(entry).to_contain_text("Entry fee: 10.00 USD")
        await expect(page.get_by_test_id("balance-after")).to_have_text("15.00 USD")
        await screenshot(page, screenshots, "entry-1-fee")
        await entry.get_by_role("button", name="Register").click()
        await expect(entry).to_contain_text("You are registered.")
        # the fee is held (by the registration's outbox, just after the entry is recorded)
        deadline = time.monotonic() + 20
        while True:
            [wallet] = await state.ledger.lookup_accounts([accounts.user(me, "USD").id])
            if wallet.balance.available == 1_500 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert (wallet.balance.available, wallet.balance.debits_pending) == (1_500, 1_000)

        opened = await http.post(f"/v1/admin/tournaments/{tid}/open-check-in", headers=admin)
        assert opened.status_code == 200, opened.text
        await expect(page.get_by_test_id("phase")).to_have_text("check_in")
        await entry.get_by_role("button", name="Check in").click()
        await expect(entry).to_contain_text("You are checked in.")
        await screenshot(page, screenshots, "entry-2-checked-in")
        snapshot = (await http.get(f"/v1/tournaments/{tid}/bracket")).json()
        assert [e["checked_in"] for e in snapshot["entries"].values()] == [[me]]


async def test_a_party_registers_as_a_team_and_each_member_pays_their_fee(
    tmp_path: Path, page: Page, screenshots: Path
) -> None:
    async with portal_app(tmp_path, TEAM_QUEUES) as (base, state, http):
        config = CONFIG | {"name": "Duo cup", "queue": "cs2:2v2:eu", "team_size": 2}
        tid = await open_tournament(http, config)
        address = f"captain{secrets.token_hex(3)}@example.com"
        await open_registration(page, base)
        await submit_registration(page, address)
        await open_confirmation(page, tmp_path / "mail")
        [(me,)] = await state.identity.db.fetch("SELECT id FROM users WHERE email = ?", address)
        mate = f"mate{secrets.token_hex(3)}"
        await fund_players(state.ledger, [me, mate], 2_500)

        # without a party, the page says how a team registers
        await page.goto(f"{base}/#/tournaments/{tid}")
        team = page.get_by_role("form", name="Register a team")
        await team.get_by_label("Team name").fill("Wolves")
        await team.get_by_role("button", name="Register the team").click()
        await expect(page.get_by_role("alert")).to_contain_text("registers as a party")

        # the party, made on the Play page; the teammate (a bot) joins it
        await page.get_by_role("link", name="Play").click()
        party = page.get_by_role("region", name="Party")
        await party.get_by_role("button", name="Create a party").click()
        await party.get_by_label("Invite a player (their id)").fill(mate)
        await party.get_by_role("button", name="Invite").click()
        await expect(party.get_by_role("button", name="Invite")).to_be_enabled()
        [(party_id,)] = await state.play.db.fetch("SELECT id FROM parties WHERE leader = ?", me)
        await state.play.call(Principal(Role.PLAYER, mate), "party.join", {"party": party_id})
        await expect(party.get_by_role("list", name="Party members")).to_contain_text(mate)

        await page.get_by_role("link", name="Tournaments").click()
        await page.get_by_role("link", name="Duo cup").click()
        await expect(page.get_by_test_id("party-roster")).to_contain_text(mate)
        await team.get_by_label("Team name").fill("Wolves")
        await team.get_by_role("button", name="Register the team").click()
        entry = page.get_by_role("region", name="Your entry")
        await expect(entry).to_contain_text("You are registered.")
        await screenshot(page, screenshots, "entry-3-team")
        snapshot = (await http.get(f"/v1/tournaments/{tid}/bracket")).json()
        assert sorted(snapshot["entries"]["Wolves"]["roster"]) == sorted([me, mate])
        deadline = time.monotonic() + 20
        while True:  # each member's own fee is held
            wallets = await state.ledger.lookup_accounts(
                [accounts.user(p, "USD").id for p in (me, mate)]
            )
            if all(w.balance.available == 1_500 for w in wallets) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert [w.balance.available for w in wallets] == [1_500, 1_500]
