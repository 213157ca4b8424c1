"""In Debian's Chromium: a player who signed up in the portal queues for a 1v1, gets the ready
check with its countdown, accepts, follows the live score the game server pushes, and sees
the result and their rating change; the opponent and the game server are bots on the real
protocol."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import orjson
from playwright.async_api import Page, expect

from realtime.channel import Principal, Role

from ..leetgaming.test_play import serving_play
from ..leetgaming.test_tournaments_api import _key_of, report_result
from .conftest import open_confirmation, open_registration, screenshot, submit_registration

QUEUES = """
[queue."cs2:1v1:eu"]
team_size = 1
ready_check_s = 30
"""


async def waiting_match(state: Any, player: str) -> tuple[str, list[list[str]]] | None:
    for match_id, document in await state.play.db.fetch("SELECT id, document FROM matches"):
        teams = orjson.loads(document)["teams"]
        if any(player in team for team in teams):
            return str(match_id), teams
    return None


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
        play = state.play
        server, key = "gs-eu-1", "k" * 32
        await play.call(
            Principal(Role.GAME_SERVER, server),
            "server.register",
            {"region": "eu", "capacity": 4, "address": "10.0.0.9:27015"},
        )
        play.result_key_of = _key_of(server, key)

        await page.get_by_role("link", name="Play").click()
        await expect(page.get_by_label("Queue")).to_have_value("cs2:1v1:eu")
        await page.get_by_role("button", name="Find a match").click()
        await expect(page.get_by_text("Searching in cs2:1v1:eu")).to_be_visible()
        await screenshot(page, screenshots, "lobby-1-searching")

        bot = "bot-opponent"
        await play.call(Principal(Role.PLAYER, bot), "queue.join", {"queue": "cs2:1v1:eu"})
        dialog = page.get_by_role("alertdialog", name="Match found")
        await expect(dialog).to_be_visible(timeout=15_000)
        await expect(dialog).to_contain_text("Accept within")
        await screenshot(page, screenshots, "lobby-2-ready-check")
        found = await waiting_match(state, me)
        assert found is not None
        match_id, teams = found
        await page.get_by_role("button", name="Accept").click()
        await expect(page.get_by_text("Accepted. Waiting for the others")).to_be_visible()
        await play.call(Principal(Role.PLAYER, bot), "match.accept", {"match": match_id})

        await expect(page.get_by_role("heading", name="Live on 10.0.0.9:27015")).to_be_visible()
        for score in ([1, 0], [5, 3]):
            await play.call(
                Principal(Role.GAME_SERVER, server),
                "match.update",
                {"match": match_id, "live": {"score": score, "round": sum(score)}},
            )
            await expect(page.get_by_test_id("live-score")).to_have_text(f"{score[0]} : {score[1]}")
        await screenshot(page, screenshots, "lobby-3-live")

        ranks = [0, 1] if me in teams[0] else [1, 0]  # the player's team wins
        done = await report_result(state, server, key, match_id, ranks)
        assert done["state"] == "finished"
        await expect(page.get_by_test_id("result")).to_have_text("Victory")
        await expect(page.get_by_test_id("rating-change")).to_contain_text("→")
        await expect(page.get_by_test_id("rating-change")).to_contain_text("+")
        await screenshot(page, screenshots, "lobby-4-result")
