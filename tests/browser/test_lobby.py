"""In Debian's Chromium: a player who signed up in the portal queues for a 1v1, gets the ready
check with its countdown (again after a reload), accepts, follows the live score the game server pushes, and sees
the result and their rating change; the opponent and the game server are bots on the real
protocol."""

from __future__ import annotations

import secrets
from pathlib import Path

from playwright.async_api import Page, expect

from realtime.channel import Principal, Role

from ..leetgaming.test_play import serving_play
from .conftest import (
    game_server,
    open_confirmation,
    open_registration,
    screenshot,
    submit_registration,
    win_in_the_lobby,
)

QUEUES = """
[queue."cs2:1v1:eu"]
team_size = 1
ready_check_s = 30
"""


async def test_a_player_queues_accepts_follows_the_live_score_and_sees_the_result(
    tmp_path: Path, page: Page, screenshots: Path
) -> None:
    backends = {"LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    async with serving_play(tmp_path, backends, QUEUES) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        address = f"gamer{secrets.token_hex(3)}@example.com"
        await open_registration(page, base)
        await submit_registration(page, address)
        await open_confirmation(page, tmp_path / "mail")
        [(me,)] = await state.identity.db.fetch("SELECT id FROM users WHERE email = ?", address)
        server = await game_server(state)

        await page.get_by_role("link", name="Play").click()
        await expect(page.get_by_label("Queue")).to_have_value("cs2:1v1:eu")
        await page.get_by_role("button", name="Find a match").click()
        await expect(page.get_by_text("Searching in cs2:1v1:eu")).to_be_visible()
        await screenshot(page, screenshots, "lobby-1-searching")

        bot = "bot-opponent"
        await state.play.call(Principal(Role.PLAYER, bot), "queue.join", {"queue": "cs2:1v1:eu"})
        # a reload during the ready check: the page asks for the match and shows it again
        await expect(page.get_by_role("alertdialog", name="Match found")).to_be_visible()
        await page.reload()
        await win_in_the_lobby(page, state, me, bot, server, (screenshots, "lobby-2"))
        await expect(page.get_by_test_id("rating-change")).to_contain_text("+")
