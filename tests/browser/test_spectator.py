"""In Debian's Chromium (headless, driven by Playwright): a spectator without an account opens
a double-elimination bracket in the web portal and watches it update live while bots play it
to the end, through a lost connection (a banner, then recovery without a reload): every result
the server has is on the page."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Page, WebSocketRoute, expect

from realtime.channel import Principal, Role

from ..leetgaming.test_tournaments_api import (
    CONFIG,
    QUEUES,
    _key_of,
    play_one_match,
    token,
)
from .conftest import portal_app, screenshot, seeded_tournament


async def shown_version(page: Page) -> int:
    return int(await page.get_by_test_id("version").inner_text())


async def test_a_spectator_watches_a_double_elimination_bracket_fill_up_live(
    tmp_path: Path, page: Page, screenshots: Path
) -> None:
    async with portal_app(tmp_path, QUEUES) as (base, state, http):
        admin = token("root", "admin")
        tid = await seeded_tournament(http, state, CONFIG, [f"s{i}" for i in range(4)])

        # the page's websocket goes through a switch the test can turn off
        network = {"down": False}
        sockets: list[WebSocketRoute] = []

        async def through(route: WebSocketRoute) -> None:
            if network["down"]:
                await route.close(code=4000, reason="network lost")
                return
            route.connect_to_server()
            sockets.append(route)

        await page.route_web_socket(re.compile(r".*/ws$"), through)

        # the spectator arrives from the list, with no account
        await page.goto(f"{base}/#/tournaments")
        await page.get_by_role("link", name=CONFIG["name"]).click()
        await expect(page.get_by_role("heading", name=CONFIG["name"])).to_be_visible()
        await screenshot(page, screenshots, "spectator-1-seeded")

        started = await http.post(f"/v1/admin/tournaments/{tid}/start", headers=admin)
        assert started.status_code == 200, started.text
        await expect(page.get_by_test_id("phase")).to_have_text("running")
        server, key = "gs-eu-1", "k" * 32
        await state.play.call(
            Principal(Role.GAME_SERVER, server),
            "server.register",
            {"region": "eu", "capacity": 8, "address": "10.0.0.2:27015"},
        )
        state.play.result_key_of = _key_of(server, key)
        played = 0
        while await play_one_match(state, tid, server, key):
            played += 1
            fresh = (await http.get(f"/v1/tournaments/{tid}/bracket")).json()
            await expect(page.get_by_test_id("version")).to_have_text(str(fresh["version"]))
            if played == 2:
                await screenshot(page, screenshots, "spectator-2-running")
                # the connection drops: a banner says so; a match ends meanwhile; back
                # online, the page recovers what it missed without a reload
                network["down"] = True
                for route in list(sockets):
                    await route.close(code=4000, reason="network lost")
                banner = page.get_by_role("status")
                await expect(banner).to_contain_text("Reconnecting")
                await screenshot(page, screenshots, "spectator-2b-offline")
                assert await play_one_match(state, tid, server, key)
                played += 1
                network["down"] = False
                await expect(banner).to_have_count(0, timeout=30_000)
                fresh = (await http.get(f"/v1/tournaments/{tid}/bracket")).json()
                await expect(page.get_by_test_id("version")).to_have_text(str(fresh["version"]))
        assert played >= 6  # 4 players, double elimination: 6 or 7 matches

        fresh = (await http.get(f"/v1/tournaments/{tid}/bracket")).json()
        assert fresh["phase"] == "complete"
        await expect(page.get_by_test_id("phase")).to_have_text("complete")
        await expect(page.get_by_role("list", name="Final places")).to_be_visible()
        for match_id, m in fresh["matches"].items():
            if m["result"] in (0, 1):
                winner = page.locator(f'[data-match="{match_id}"] .side.won')
                await expect(winner).to_contain_text(m["sides"][m["result"]])
        assert await shown_version(page) == fresh["version"]
        await screenshot(page, screenshots, "spectator-3-complete")
        # and on a phone-sized screen the bracket is still there, scrolled sideways
        await page.set_viewport_size({"width": 390, "height": 844})
        await expect(page.get_by_role("list", name="Bracket")).to_be_visible()
        await screenshot(page, screenshots, "spectator-4-phone")
