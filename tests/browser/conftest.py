"""Browser tests: Debian's Chromium (``/usr/lib/chromium/chromium``, or
``LEETGAMING_TEST_CHROMIUM``), headless, driven by Playwright for Python; no browser is ever
downloaded. ``./scripts/test`` installs the package when it is missing. Each test's page fails
it on any uncaught script error; screenshots go to ``LEETGAMING_TEST_SCREENSHOTS`` (default
``test-artifacts/screenshots`` in the checkout)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from leetgaming import totp
from realtime.channel import Principal, Role

# the card tests' Stripe-compatible server, shared with tests/leetgaming
from ..leetgaming.conftest import localstripe  # noqa: F401
from ..leetgaming.test_play import serving_play
from ..leetgaming.test_tournaments_api import _key_of, fund_players, report_result, token
from ..leetgaming.test_withdrawals import stripe_settings

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_DEFAULT = "/usr/lib/chromium/chromium"
# what the page must show, it must show within this (a loaded 2-core machine runs the server,
# the browser and the suite at once: Playwright's 5 s default is tight)
EXPECT_TIMEOUT_MS = 20_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = os.environ.get("LEETGAMING_TEST_CHROMIUM", CHROMIUM_DEFAULT)
    if not Path(executable).is_file():
        pytest.fail(
            f"Chromium is not at {executable}: install Debian's chromium package "
            "(./scripts/test does, as root) or set LEETGAMING_TEST_CHROMIUM",
            pytrace=False,
        )
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(exc.stack or str(exc)))
    try:
        yield opened
    finally:
        await context.close()
    assert not errors, f"the page threw: {errors}"


@pytest.fixture
def screenshots() -> Path:
    folder = Path(
        os.environ.get("LEETGAMING_TEST_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def screenshot(page: Page, folder: Path, name: str) -> None:
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


PASSWORD = "correct horse battery staple"


async def open_registration(page: Page, base: str) -> None:
    await page.goto(f"{base}/#/signin")
    await page.get_by_role("button", name="New here? Create an account").click()


async def submit_registration(page: Page, address: str) -> None:
    await page.get_by_label("Email").fill(address)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Check your mail")).to_be_visible()


async def open_confirmation(page: Page, mail_dir: Path) -> None:
    """Open the link of the one mail sent so far, as the player would: signed in after it."""
    [mail] = list(mail_dir.glob("*.eml"))
    message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
    text = message.get_content()  # type: ignore[attr-defined]
    link = re.search(r"(http://\S+/confirm#token=\S+)", text)
    assert link, text
    await page.goto(link.group(1))
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


async def open_tournament(http: httpx.AsyncClient, config: dict[str, object]) -> str:
    """An admin creates a tournament of ``config`` and opens its registration: its id."""
    admin = admin_token()
    created = await http.post("/v1/admin/tournaments", json=config, headers=admin)
    assert created.status_code == 201, created.text
    tid: str = created.json()["id"]
    opened = await http.post(f"/v1/admin/tournaments/{tid}/open-registration", headers=admin)
    assert opened.status_code == 200, opened.text
    return tid


def admin_token() -> dict[str, str]:
    return token("root", "admin")


@asynccontextmanager
async def portal_app(
    tmp_path: Path, queues: str, app_options: dict[str, Any] | None = None, **settings: str
) -> AsyncIterator[tuple[str, Any, httpx.AsyncClient]]:
    """The app on the embedded defaults in the test's folder, serving the built portal: its
    base URL, its state and an HTTP client for the test's own calls."""
    backends = {"LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    async with serving_play(tmp_path, backends, queues, app_options, **settings) as (
        ws_url,
        state,
    ):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            yield base, state, http


async def ready_check_of(state: Any, player: str) -> tuple[str, list[list[str]]]:
    """The match whose ready check ``player`` is in: its id and teams."""
    deadline = time.monotonic() + EXPECT_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        rows = await state.play.db.fetch(
            "SELECT id, document FROM matches WHERE state = ?", "ready_check"
        )
        for match_id, document in rows:
            teams = orjson.loads(document)["teams"]
            if any(player in team for team in teams):
                return str(match_id), teams
        await asyncio.sleep(0.05)
    raise AssertionError(f"{player} has no ready check")


async def win_in_the_lobby(
    page: Page,
    state: Any,
    me: str,
    opponent: str,
    server: tuple[str, str],
    shots: tuple[Path, str] | None = None,
) -> str:
    """On the Play page: the ready check comes, the player accepts, so does ``opponent`` (a bot
    on the real protocol), the game server (id and key) pushes the live score, and reports the
    player's team as the winner; the page shows the victory and the rating change. The match."""
    dialog = page.get_by_role("alertdialog", name="Match found")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Accept within")
    if shots:
        await screenshot(page, shots[0], f"{shots[1]}-ready-check")
    match_id, teams = await ready_check_of(state, me)
    await page.get_by_role("button", name="Accept").click()
    await expect(page.get_by_text("Accepted. Waiting for the others")).to_be_visible()
    await state.play.call(Principal(Role.PLAYER, opponent), "match.accept", {"match": match_id})
    await expect(page.get_by_role("heading", name=re.compile("^Live on "))).to_be_visible()
    for score in ([1, 0], [5, 3]):
        await state.play.call(
            Principal(Role.GAME_SERVER, server[0]),
            "match.update",
            {"match": match_id, "live": {"score": score, "round": sum(score)}},
        )
        await expect(page.get_by_test_id("live-score")).to_have_text(f"{score[0]} : {score[1]}")
    if shots:
        await screenshot(page, shots[0], f"{shots[1]}-live")
    ranks = [0, 1] if me in teams[0] else [1, 0]  # the player's team wins
    done = await report_result(state, server[0], server[1], match_id, ranks)
    assert done["state"] == "finished"
    await expect(page.get_by_test_id("result")).to_have_text("Victory")
    await expect(page.get_by_test_id("rating-change")).to_contain_text("→")
    if shots:
        await screenshot(page, shots[0], f"{shots[1]}-result")
    return match_id


async def game_server(state: Any, server: str = "gs-eu-1", key: str = "k" * 32) -> tuple[str, str]:
    """A game server registered in eu whose results the app checks with ``key``."""
    await state.play.call(
        Principal(Role.GAME_SERVER, server),
        "server.register",
        {"region": "eu", "capacity": 4, "address": "10.0.0.9:27015"},
    )
    state.play.result_key_of = _key_of(server, key)
    return server, key


async def sign_in_as_admin(
    page: Page,
    base: str,
    state: Any,
    http: httpx.AsyncClient,
    shots: tuple[Path, str] | None = None,
) -> str:
    """An admin made by the operator, enrolled in TOTP over REST with a password-only session,
    signs in to the portal with password and code (the form asks for the code when the server
    does): the admin's id."""
    address = f"admin{secrets.token_hex(3)}@example.com"
    admin_id: str = await state.identity.create_admin(address, PASSWORD)
    first = await http.post("/v1/auth/login", json={"email": address, "password": PASSWORD})
    bare = {"Authorization": f"Bearer {first.json()['access_token']}"}
    secret = (await http.post("/v1/me/totp", headers=bare)).json()["secret"]
    confirmed = await http.post(
        "/v1/me/totp/confirm", json={"code": totp.code_at(secret, time.time())}, headers=bare
    )
    assert confirmed.status_code == 200, confirmed.text
    await page.goto(f"{base}/#/signin")
    await page.get_by_label("Email").fill(address)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    code_field = page.get_by_label("Authenticator code")
    await expect(code_field).to_be_visible()  # the server asked for the code
    if shots:
        await screenshot(page, shots[0], shots[1])
    # the next step's code: the one that confirmed the enrolment may not be used again
    await code_field.fill(totp.code_at(secret, time.time() + totp.STEP_S))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("navigation", name="Admin")).to_be_visible()
    return admin_id


PUBLISHABLE_KEY = "pk_test_leetgaming"


def card_form_settings(stripe_api: str, stripe_js: str) -> dict[str, str]:
    """The app on localstripe with the portal's card form on, its Stripe.js the stand-in."""
    return stripe_settings(stripe_api) | {
        "stripe_publishable_key": PUBLISHABLE_KEY,
        "stripe_js_url": f"{stripe_js}/v3/",
    }


async def pay_by_card(page: Page, amount: str, number: str = "4242 4242 4242 4242") -> None:
    """Fill the wallet's card form as a player would, and press Pay."""
    form = page.get_by_role("form", name="By card")
    await form.get_by_label("Amount (USD)").fill(amount)
    await form.get_by_label("Card number").fill(number)
    await form.get_by_label("Expiry (MM / YY)").fill("12 / 34")
    await form.get_by_label("CVC").fill("123")
    await form.get_by_role("button", name="Pay").click()


async def seeded_tournament(
    http: httpx.AsyncClient, state: Any, config: dict[str, object], players: list[str]
) -> str:
    """A tournament of ``config`` with ``players`` funded, registered and seeded: its id."""
    tid = await open_tournament(http, config)
    await fund_players(state.ledger, players, 2_000)
    for p in players:
        joined = await http.post(f"/v1/tournaments/{tid}/registration", headers=token(p))
        assert joined.status_code == 201, joined.text
    seeded = await http.post(f"/v1/admin/tournaments/{tid}/seed", json={}, headers=admin_token())
    assert seeded.status_code == 200, seeded.text
    return tid
