"""In Debian's Chromium: every page of the portal passes axe-core's WCAG 2.1 A and AA rules
(labels, names, contrast, landmarks, keyboard focus) for a visitor, a player and an admin, and
fits a phone's width (390 px) without scrolling sideways (a bracket scrolls inside its own
box); the skip link and the main navigation work from the keyboard."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, expect

from ..leetgaming.test_tournaments_api import CONFIG, QUEUES, fund_players, token
from .conftest import (
    ROOT,
    open_confirmation,
    open_registration,
    portal_app,
    screenshot,
    seeded_tournament,
    sign_in_as_admin,
    submit_registration,
)

AXE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PHONE = {"width": 390, "height": 844}


async def violations(page: Page) -> list[str]:
    """axe-core's WCAG A/AA violations on the page as it is now, one line each."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        # evaluated by the test's driver: the pages' CSP (rightly) refuses an injected script
        await page.evaluate(AXE.read_text() + "\n;true")
    result: dict[str, Any] = await page.evaluate(
        "async (tags) => { const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}});"
        " return {passes: r.passes.length, violations: r.violations.map(v => ({id: v.id,"
        " impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))}; }",
        WCAG,
    )
    assert result["passes"] >= 5, result  # the rules ran (a page has names, landmarks, contrast)
    return [f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}" for v in result["violations"]]


async def audit(page: Page, name: str, screenshots: Path) -> None:
    await page.wait_for_load_state("networkidle")
    found = await violations(page)
    assert not found, f"{name}: {found}"
    await screenshot(page, screenshots, f"a11y-{name}")


async def fits(page: Page, name: str) -> None:
    wide = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wide <= 0, f"{name} is {wide} px wider than the phone's screen"


async def test_every_page_is_accessible_and_fits_a_phone(
    tmp_path: Path, page: Page, browser: Browser, screenshots: Path
) -> None:
    async with portal_app(tmp_path, QUEUES) as (base, state, http):
        tid = await seeded_tournament(http, state, CONFIG, [f"a{i}" for i in range(4)])
        admin = token("root", "admin")
        started = await http.post(f"/v1/admin/tournaments/{tid}/start", headers=admin)
        assert started.status_code == 200, started.text

        visitor_pages = {
            "tournaments": "/#/tournaments",
            "bracket": f"/#/tournaments/{tid}",
            "play-visitor": "/#/play",
            "signin": "/#/signin",
        }
        for name, path in visitor_pages.items():
            await page.goto(f"{base}{path}")
            await expect(page.get_by_role("main")).not_to_be_empty()
            await audit(page, name, screenshots)

        # the audit can fail: an input without a label is caught
        planted = "document.querySelector('main').appendChild(document.createElement('input'))"
        await page.evaluate(f"window.planted = {planted}")
        assert any(v.startswith("label ") for v in await violations(page))
        await page.evaluate("window.planted.remove()")

        # the keyboard: the skip link comes first and moves to the content
        await page.goto(f"{base}/#/tournaments")
        await page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to content")
        await expect(skip).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.locator("#main")).to_be_focused()

        address = f"a11y{secrets.token_hex(3)}@example.com"
        await open_registration(page, base)
        await audit(page, "signup", screenshots)
        await submit_registration(page, address)
        await open_confirmation(page, tmp_path / "mail")
        [(me,)] = await state.identity.db.fetch("SELECT id FROM users WHERE email = ?", address)
        await fund_players(state.ledger, [me], 2_000)
        for name, path in {"wallet": "/#/wallet", "play": "/#/play"}.items():
            await page.goto(f"{base}{path}")
            await expect(page.get_by_role("main")).not_to_be_empty()
            await audit(page, name, screenshots)
        await page.get_by_role("button", name="Sign out").click()

        await sign_in_as_admin(page, base, state, http)
        for name, path in {
            "admin": "/#/admin",
            "admin-tournaments": "/#/admin/tournaments",
            "admin-audit": "/#/admin/audit",
            "admin-reconciliation": "/#/admin/reconciliation",
            "organizer": f"/#/tournaments/{tid}",
        }.items():
            await page.goto(f"{base}{path}")
            await expect(page.get_by_role("main")).not_to_be_empty()
            await audit(page, name, screenshots)

        # a phone: nothing wider than the screen
        phone = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        try:
            small = await phone.new_page()
            for name, path in visitor_pages.items():
                await small.goto(f"{base}{path}")
                await expect(small.get_by_role("main")).not_to_be_empty()
                await small.wait_for_load_state("networkidle")
                await fits(small, name)
                await small.screenshot(path=str(screenshots / f"phone-{name}.png"))
        finally:
            await phone.close()
