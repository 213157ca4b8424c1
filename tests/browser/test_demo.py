"""In Debian's Chromium, what a newcomer sees after ``leetgaming serve --demo`` (the README's
first command): the queues live in the lobby with the bots' chat, and a tournament's
bracket, played by bot players on bot game servers, filling up to its final places and its
prizes, without an account and without a reload."""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.async_api import Page, expect

from ..leetgaming.test_cli import environment_without_settings, running_server, stop
from ..ws import unused_port
from .conftest import screenshot

DEMO_TOURNAMENT_S = 150  # a demo tournament (8 players, double elimination) ends within
IN_PLAY_WAIT_S = 60  # the demo opens its next tournament within (one every 20 s, one at a time)


async def open_a_tournament_in_play(page: Page) -> None:
    """Open the newest tournament still registering or running. The list is read once per
    visit, and on a loaded machine the first tournament can be over by the time the lobby
    checks are done (the demo goes on with the next one), so look again until one is."""
    cards = page.locator("li.card")
    in_play = cards.filter(has_text=re.compile(r"· (registration|running) ·"))
    deadline = time.monotonic() + IN_PLAY_WAIT_S
    while await in_play.count() == 0:
        assert time.monotonic() < deadline, "no tournament in play in the demo"
        await page.wait_for_timeout(1_000)
        await page.reload()
        await cards.or_(page.get_by_text("No tournaments yet.")).first.wait_for()
    await in_play.first.get_by_role("link").click()


async def test_the_demo_shows_live_queues_chat_and_a_bracket_filling_up(
    tmp_path: Path, page: Page, screenshots: Path
) -> None:
    port = unused_port()
    env = environment_without_settings() | {"LEETGAMING_PORT": str(port)}
    with running_server(tmp_path, env, ("--demo",)) as server:
        base = f"http://127.0.0.1:{port}"
        await page.goto(f"{base}/#/play")
        queues = page.get_by_role("table", name="Queues")
        await expect(queues).to_contain_text("cs2:1v1:eu")
        await expect(queues).to_contain_text("wait about", timeout=60_000)  # matches formed
        chat = page.get_by_role("list", name="Messages")
        await expect(chat.locator("li").first).to_be_visible(timeout=60_000)  # a bot spoke
        await screenshot(page, screenshots, "demo-1-lobby")

        await page.get_by_role("link", name="Tournaments").click()
        await open_a_tournament_in_play(page)
        await expect(page.locator(".match.playing").first).to_be_visible(timeout=60_000)
        await screenshot(page, screenshots, "demo-2-bracket-live")
        places = page.get_by_role("list", name="Final places")
        await expect(places).to_be_visible(timeout=DEMO_TOURNAMENT_S * 1000)
        await expect(page.get_by_test_id("phase")).to_have_text("complete")
        await screenshot(page, screenshots, "demo-3-bracket-complete")
        assert stop(server) == 0
