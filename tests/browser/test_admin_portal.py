"""In Debian's Chromium, the admin portal: the overview's live figures, a tournament created in
the form (bad input first), opened, seeded and started from its page, a disputed result
resolved and then corrected, each in the audit log, and a clean reconciliation report."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from ..leetgaming.test_tournaments_api import QUEUES, fund_players, play_one_match, token
from .conftest import game_server, portal_app, screenshot, sign_in_as_admin


async def test_an_admin_runs_a_tournament_settles_a_dispute_and_reconciles(
    tmp_path: Path, page: Page, screenshots: Path
) -> None:
    async with portal_app(tmp_path, QUEUES) as (base, state, http):
        await sign_in_as_admin(page, base, state, http)
        figures = page.get_by_role("region", name="Live figures")
        await expect(figures.get_by_test_id("connections")).not_to_have_text("0")  # the admin's
        await expect(figures.get_by_role("table", name="Queues")).to_contain_text("cs2:1v1:eu")
        await expect(figures.get_by_test_id("ledger-rate")).not_to_have_text("…")
        await screenshot(page, screenshots, "admin-portal-1-overview")

        # a tournament from the form: bad input is named inline and nothing is created
        await (
            page.get_by_role("navigation", name="Admin")
            .get_by_role("link", name="Tournaments")
            .click()
        )
        create = page.get_by_role("form", name="New tournament")
        await create.get_by_label("Prize split (%, best first)").fill("60, 30")
        await create.get_by_label("Entry fee (USD)").fill("5.555")
        await create.get_by_role("button", name="Create").click()
        await expect(create.get_by_text("a tournament has a name")).to_be_visible()
        await expect(create.get_by_text("adding up to 100")).to_be_visible()
        await expect(create.get_by_text("at most 2 decimals")).to_be_visible()
        await screenshot(page, screenshots, "admin-portal-2-create-errors")
        assert (await http.get("/v1/tournaments")).json()["tournaments"] == []
        await create.get_by_label("Name").fill("Admin cup")
        await create.get_by_label("Format").select_option("single_elimination")
        await create.get_by_label("Players at most").fill("4")
        await create.get_by_label("Entry fee (USD)").fill("5")
        await create.get_by_label("Prize split (%, best first)").fill("70, 30")
        await create.get_by_role("button", name="Create").click()

        # its page: the organizer's panel moves it on
        await expect(page.get_by_role("heading", name="Admin cup")).to_be_visible()
        organizer = page.get_by_role("region", name="Organizer")
        await expect(page.get_by_test_id("phase")).to_have_text("draft")
        await organizer.get_by_role("button", name="open registration").click()
        await expect(page.get_by_test_id("phase")).to_have_text("registration")
        [listed] = (await http.get("/v1/tournaments")).json()["tournaments"]
        tid, players = listed["id"], ["ann", "bob", "cat", "dan"]
        await fund_players(state.ledger, players, 500)
        for p in players:
            joined = await http.post(f"/v1/tournaments/{tid}/registration", headers=token(p))
            assert joined.status_code == 201, joined.text
        await organizer.get_by_role("button", name="seed").click()
        await expect(page.get_by_test_id("phase")).to_have_text("seeded")
        await organizer.get_by_role("button", name="start").click()
        await expect(page.get_by_test_id("phase")).to_have_text("running")

        # a semi-final is played; its loser disputes; the admin gives it to the loser
        server, key = await game_server(state)
        assert await play_one_match(state, tid, server, key)
        bracket = (await http.get(f"/v1/tournaments/{tid}/bracket")).json()
        [(semi, played)] = [(m, e) for m, e in bracket["matches"].items() if e["decided"]]
        winner, loser = played["sides"][played["result"]], played["sides"][1 - played["result"]]
        disputed = await http.post(
            f"/v1/tournaments/{tid}/matches/{semi}/dispute",
            json={"reason": "he used a wallhack"},
            headers=token(loser),
        )
        assert disputed.status_code == 201, disputed.text
        waiting = organizer.get_by_role("list", name="Matches to resolve")
        await expect(waiting).to_contain_text(f"{semi}: ")
        await expect(waiting).to_contain_text("(disputed)")
        await screenshot(page, screenshots, "admin-portal-3-dispute")
        await waiting.get_by_role("button", name=f"{loser} wins").click()
        await expect(waiting).to_have_count(0)
        side = page.locator(f'[data-match="{semi}"] .won')
        await expect(side).to_contain_text(loser)

        # and corrects it back: a reversal, in the audit log
        correct = organizer.get_by_role("form", name="Correct a result")
        await correct.get_by_label("Match").select_option(semi)
        await correct.get_by_role("button", name="Correct").click()
        await expect(organizer.get_by_role("alert")).to_contain_text("choose the winner")
        await correct.get_by_label("Winner").select_option(winner)
        await correct.get_by_role("button", name="Correct").click()
        await expect(side).to_contain_text(winner)

        await page.get_by_role("link", name="Admin", exact=True).click()
        await (
            page.get_by_role("navigation", name="Admin")
            .get_by_role("link", name="Audit log")
            .click()
        )
        audit = page.get_by_role("table", name="Audit entries")
        await expect(audit).to_contain_text("match.resolve")
        await expect(audit).to_contain_text("tournament.start")
        await page.get_by_label("Action (e.g. withdrawal.approve)").fill("match.correct")
        await page.get_by_role("button", name="Filter").click()
        await expect(audit.locator("tbody tr")).to_have_count(1)
        await expect(audit).to_contain_text(tid)
        await screenshot(page, screenshots, "admin-portal-4-audit")

        await (
            page.get_by_role("navigation", name="Admin")
            .get_by_role("link", name="Reconciliation")
            .click()
        )
        await page.get_by_role("button", name="Reconcile the ledger").click()
        await expect(page.get_by_test_id("reconciliation")).to_contain_text("Clean")
        await expect(page.get_by_role("table", name="Sums per asset")).to_contain_text("USD")
        await screenshot(page, screenshots, "admin-portal-5-reconciliation")
