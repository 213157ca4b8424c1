"""In Debian's Chromium: the lobby shows who waits in a queue and the wait to expect (from the
matches it formed), a player makes a party, invites a friend (a bot on the real protocol) who
joins, and the leader queues the party for a 2v2; the region's lobby chat carries messages
both ways, and a flood of them gets an inline message."""

from __future__ import annotations

import secrets
from pathlib import Path

from playwright.async_api import Page, expect

from realtime.channel import Principal, Role

from ..leetgaming.test_play import player, rpc
from ..ws import call, receive
from .conftest import (
    open_confirmation,
    open_registration,
    portal_app,
    screenshot,
    submit_registration,
)

QUEUES = """
[queue."cs2:1v1:eu"]
team_size = 1
ready_check_s = 30

[queue."cs2:2v2:eu"]
team_size = 2
ready_check_s = 30
"""


async def test_queue_figures_a_party_and_the_lobby_chat(
    tmp_path: Path, page: Page, screenshots: Path
) -> None:
    async with portal_app(tmp_path, QUEUES) as (base, state, _http):
        address = f"leader{secrets.token_hex(3)}@example.com"
        await open_registration(page, base)
        await submit_registration(page, address)
        await open_confirmation(page, tmp_path / "mail")
        [(me,)] = await state.identity.db.fetch("SELECT id FROM users WHERE email = ?", address)
        await page.get_by_role("link", name="Play").click()
        figures = page.get_by_test_id("queue-figures")
        await expect(figures).to_have_text("0 waiting, wait no recent matches")

        # two bots queue for the 1v1 and are matched: the queue now has an estimate
        for bot in ("bot-a", "bot-b"):
            await state.play.call(
                Principal(Role.PLAYER, bot), "queue.join", {"queue": "cs2:1v1:eu"}
            )
        await expect(figures).to_contain_text("wait about", timeout=15_000)

        # a party: create, invite the friend by id, who joins
        ws_url = base.replace("http://", "ws://") + "/ws"
        friend = await player(ws_url, "bot-friend")
        party = page.get_by_role("region", name="Party")
        await party.get_by_role("button", name="Create a party").click()
        await party.get_by_label("Invite a player (their id)").fill("")
        await party.get_by_role("button", name="Invite").click()
        await expect(party.get_by_role("alert")).to_have_text(
            "enter the player id of whom to invite"
        )
        await party.get_by_label("Invite a player (their id)").fill("bot-friend")
        await party.get_by_role("button", name="Invite").click()
        [party_id] = [
            r[0] for r in await state.play.db.fetch("SELECT id FROM parties WHERE leader = ?", me)
        ]
        joined = await rpc(friend, "party.join", party=party_id)
        assert joined["type"] == "rpc_result", joined
        members = party.get_by_role("list", name="Party members")
        await expect(members).to_contain_text("you (leader)")
        await expect(members).to_contain_text("bot-friend")

        # the leader queues the party of two for the 2v2
        await page.get_by_label("Queue").select_option("cs2:2v2:eu")
        await page.get_by_role("button", name="Find a match").click()
        await expect(page.get_by_text("Searching in cs2:2v2:eu")).to_be_visible()
        status = await rpc(friend, "queue.status")
        assert status["data"]["result"]["queue"] == "cs2:2v2:eu"  # queued with the leader
        await screenshot(page, screenshots, "lobby-party-1-searching")

        # the chat: the friend speaks, the player answers, a flood is slowed down
        assert (await call(friend, type="subscribe", id="c", ch="lobby:eu"))["type"] == "subscribed"
        await call(friend, type="publish", id="p", ch="lobby:eu", data={"body": {"text": "gl hf"}})
        chat = page.get_by_role("region", name="Lobby chat (eu)")
        await expect(chat.get_by_role("list", name="Messages")).to_contain_text("bot-friend: gl hf")
        await chat.get_by_role("textbox", name="Message").fill("hello friend")
        await chat.get_by_role("button", name="Send").click()
        await expect(chat.get_by_role("list", name="Messages")).to_contain_text("you: hello friend")
        while True:  # the friend hears it, from the player (the server sets "from")
            frame = await receive(friend)
            body = frame.get("data", {}).get("body", {})
            if frame["type"] == "pub" and body.get("text") == "hello friend":
                assert body["from"] == me
                break
        for n in range(40):  # 1 a second, bursts of 5: sent as fast as a person can
            await chat.get_by_role("textbox", name="Message").fill(f"spam {n}")
            await chat.get_by_role("button", name="Send").click()
            if await chat.get_by_role("alert").count():
                break
        await expect(chat.get_by_role("alert")).to_have_text("slow down: one message a second")
        await screenshot(page, screenshots, "lobby-party-2-chat")
        await friend.close()
