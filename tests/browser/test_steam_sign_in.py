"""In Debian's Chromium: "Sign in with Steam" goes to Steam (a local OpenID 2.0 provider that
approves at once), comes back with a one-time code in the fragment, and the portal turns it
into a session: the player lands in the lobby, signed in, with their SteamID64 on file."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from ..leetgaming.test_play import serving_play
from ..leetgaming.test_wallet_api import QUEUES
from ..providers import SteamProvider
from ..ws import serving, unused_port
from .conftest import screenshot


async def test_steam_sign_in_from_the_portal(tmp_path: Path, page: Page, screenshots: Path) -> None:
    steam_port = unused_port()
    steam = SteamProvider(f"http://127.0.0.1:{steam_port}")
    steam.next_user = "76561198000000042"
    backends = {"LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    async with (
        serving(steam.app, steam_port),
        serving_play(tmp_path, backends, QUEUES, steam_openid_endpoint=steam.endpoint) as (
            ws_url,
            state,
        ),
    ):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        await page.goto(f"{base}/#/signin")
        await page.get_by_role("link", name="Sign in with Steam").click()
        await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        await expect(page.get_by_role("heading", name="Play")).to_be_visible()
        assert "login_code" not in page.url  # the code left the address bar
        await screenshot(page, screenshots, "steam-signed-in")
        [(user_id,)] = await state.identity.db.fetch(
            "SELECT user_id FROM external_identities WHERE provider = 'steam' AND subject = ?",
            steam.next_user,
        )
        assert await state.identity.external_subject("steam", user_id) == steam.next_user
