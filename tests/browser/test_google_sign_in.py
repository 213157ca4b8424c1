"""In Debian's Chromium: the sign-in page shows Google's button (Google Identity Services, a
local stand-in that issues the provider's RS256 ID token), and pressing it signs the person in:
their account is made on first sign-in and they land in the lobby."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from ..leetgaming.test_play import serving_play
from ..leetgaming.test_wallet_api import QUEUES
from ..providers import OidcProvider
from ..ws import serving, unused_port
from .conftest import screenshot

CLIENT_ID = "leetgaming-portal.apps.example"


async def test_google_sign_in_from_the_portal(
    tmp_path: Path, page: Page, screenshots: Path
) -> None:
    port = unused_port()
    google = OidcProvider(f"http://127.0.0.1:{port}", CLIENT_ID, "secret")
    google.user("ana", "ana@example.com")
    google.next_login = "ana"
    backends = {"LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    settings = {
        "google_client_id": CLIENT_ID,
        "google_issuer": google.base_url,
        "google_gsi_url": f"{google.base_url}/gsi/client",
    }
    async with (
        serving(google.app, port),
        serving_play(tmp_path, backends, QUEUES, **settings) as (ws_url, state),
    ):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        await page.goto(f"{base}/#/signin")
        button = page.get_by_role("button", name="Sign in with Google")
        await expect(button).to_be_visible()
        await screenshot(page, screenshots, "google-1-button")
        await button.click()
        await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        await expect(page.get_by_role("heading", name="Play")).to_be_visible()
        [(email,)] = await state.identity.db.fetch(
            "SELECT u.email FROM users u JOIN external_identities e ON e.user_id = u.id "
            "WHERE e.provider = 'google' AND e.subject = ?",
            google.users["ana"]["sub"],
        )
        assert email == "ana@example.com"
