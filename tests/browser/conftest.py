"""Browser tests: Debian's Chromium (``/usr/lib/chromium/chromium``, or
``LEETGAMING_TEST_CHROMIUM``), headless, driven by Playwright for Python; no browser is ever
downloaded. ``./scripts/test`` installs the package when it is missing. Each test's page fails
it on any uncaught script error; screenshots go to ``LEETGAMING_TEST_SCREENSHOTS`` (default
``test-artifacts/screenshots`` in the checkout)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_DEFAULT = "/usr/lib/chromium/chromium"


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
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
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


# the card tests' Stripe-compatible server, shared with tests/leetgaming
from ..leetgaming.conftest import localstripe  # noqa: E402, F401
