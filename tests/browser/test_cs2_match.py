"""In Debian's Chromium: a spectator without an account follows a best-of-three played on a CS2
server (get5's event log) on the match's page, after its spectator delay and never before;
an admin then finds the match's demo there, parsed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from playwright.async_api import Page, expect

from tests.cs2_plugin import Roster, series_events

from ..leetgaming.test_cs2 import BO3, cs2_match
from ..leetgaming.test_demos import DEMOS
from .conftest import screenshot, sign_in_as_admin
from .test_accessibility import PHONE, audit, fits

DELAY_S = 2.0


def shown(a: int, b: int) -> str:
    """A score as the page writes it (an en dash between)."""
    return f"{a} \u2013 {b}"


async def test_a_spectator_follows_a_cs2_series_after_the_delay_and_an_admin_finds_its_demo(
    tmp_path: Path, page: Page, screenshots: Path
) -> None:
    backends = {"LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    async with cs2_match(tmp_path, backends, "get5", delay_s=DELAY_S) as m:
        http, server, match, state = m["http"], m["server"], m["match"], m["state"]
        base = str(http.base_url).rstrip("/")
        config = await asyncio.wait_for(server.configs.get(), 10)
        rosters = [
            Roster("A", list(config["team1"]["players"].items())),
            Roster("B", list(config["team2"]["players"].items())),
        ]
        bodies = series_events("get5", match, rosters, BO3, num_maps=3, seed=5)

        await page.goto(f"{base}/#/matches/{match}")
        await expect(page.get_by_role("heading", name=f"Match {match}")).to_be_visible()
        await expect(page.get_by_text(f"Shown {int(DELAY_S)} s after it happens")).to_be_visible()
        await expect(page.get_by_text("Nothing to show yet")).to_be_visible()

        # the first round: the page shows it after the delay, not before
        first = next(i for i, b in enumerate(bodies) if b["event"] == "round_end")
        sent = time.monotonic()
        for body in bodies[: first + 1]:
            assert (await server.send(body)).status_code == 200
        score = page.get_by_test_id("score-0")
        await expect(score).to_have_text(
            shown(1, 0) if _first_winner(bodies[first]) == 1 else shown(0, 1)
        )
        assert time.monotonic() - sent >= DELAY_S
        await screenshot(page, screenshots, "cs2-match-1-first-round")

        # the rest of the series: three maps, the result, all on the page after the delay
        for body in bodies[first + 1 :]:
            assert (await server.send(body)).status_code == 200
        await expect(page.get_by_test_id("series-phase")).to_have_text("finished")
        await expect(page.get_by_test_id("maps-won")).to_have_text(shown(2, 1))
        for number, (_, (a, b)) in enumerate(BO3):
            await expect(page.get_by_test_id(f"score-{number}")).to_have_text(shown(a, b))
        text = await page.locator("main").inner_text()
        assert "203.0.113.7" not in text  # the server's address is no spectator's business
        await expect(page.get_by_role("heading", name="Demos")).to_have_count(0)
        await screenshot(page, screenshots, "cs2-match-2-finished")
        await audit(page, "cs2-match", screenshots)

        # a demo uploaded for map 1: an admin sees it on the match's page, parsed
        uploaded = await http.post(
            f"/v1/admin/matches/{match}/demos?map_number=0&filename=nuke.dem",
            content=(DEMOS / "14065.dem").read_bytes(),
            headers=m["admin"],
        )
        assert uploaded.status_code == 201, uploaded.text
        await sign_in_as_admin(page, base, state, http)
        await page.goto(f"{base}/#/matches/{match}")
        # a page opened after the end shows the final series (from /live, not publications)
        await expect(page.get_by_test_id("series-phase")).to_have_text("finished")
        await expect(page.get_by_test_id("maps-won")).to_have_text(shown(2, 1))
        demo = page.locator(f'[data-demo="{uploaded.json()["id"]}"]')
        await expect(demo).to_contain_text("Map 1 · nuke.dem")
        for _ in range(15):  # parsing runs in a worker: the page shows the state it had
            if await demo.get_by_test_id("demo-state").inner_text() in ("parsed", "partial"):
                break
            await asyncio.sleep(2)
            await page.reload()
        await expect(demo.get_by_test_id("demo-state")).to_have_text("parsed")
        await expect(demo.get_by_role("button", name="Download")).to_be_visible()
        await screenshot(page, screenshots, "cs2-match-3-demo")
        await page.set_viewport_size(PHONE)
        await audit(page, "cs2-match-demos-phone", screenshots)
        await fits(page, "the match page")


def _first_winner(round_end: dict[str, object]) -> int:
    """Which team (1 or 2) won the first round, from its score."""
    team1 = round_end["team1"]
    assert isinstance(team1, dict)
    return 1 if int(team1["score"]) == 1 else 2
