"""In Debian's Chromium: a spectator follows a 4-player Swiss to the end; the standings table
(points and Buchholz) moves with every result and ends as the server's final places."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from realtime.channel import Principal, Role

from ..leetgaming.test_tournaments_api import (
    CONFIG,
    QUEUES,
    _key_of,
    play_one_match,
    token,
)
from .conftest import portal_app, screenshot, seeded_tournament


async def test_a_spectator_follows_swiss_standings(
    tmp_path: Path, page: Page, screenshots: Path
) -> None:
    async with portal_app(tmp_path, QUEUES) as (base, state, http):
        admin = token("root", "admin")
        swiss = CONFIG | {"name": "Swiss night", "format": {"kind": "swiss"}}
        tid = await seeded_tournament(http, state, swiss, [f"w{i}" for i in range(4)])
        await page.goto(f"{base}/#/tournaments/{tid}")
        await expect(page.get_by_role("heading", name="Swiss night")).to_be_visible()
        started = await http.post(f"/v1/admin/tournaments/{tid}/start", headers=admin)
        assert started.status_code == 200, started.text
        server, key = "gs-eu-1", "k" * 32
        await state.play.call(
            Principal(Role.GAME_SERVER, server),
            "server.register",
            {"region": "eu", "capacity": 8, "address": "10.0.0.3:27015"},
        )
        state.play.result_key_of = _key_of(server, key)
        table = page.get_by_role("table", name="Standings")
        assert await play_one_match(state, tid, server, key)
        await expect(table).to_be_visible()
        await expect(table).to_contain_text("Buchholz")
        while await play_one_match(state, tid, server, key):
            pass
        final = (await http.get(f"/v1/tournaments/{tid}/standings")).json()["standings"]
        await expect(page.get_by_test_id("phase")).to_have_text("complete")
        rows = table.locator("tbody tr")
        await expect(rows).to_have_count(len(final))
        for n, row in enumerate(final):
            await expect(rows.nth(n)).to_contain_text(", ".join(row["teams"]))
        await screenshot(page, screenshots, "swiss-standings")
