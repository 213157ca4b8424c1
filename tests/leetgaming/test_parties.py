"""Parties over the websocket: the real app, embedded and on PostgreSQL + Redis."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from leetgaming.tokens import issue_access_token

from .test_play import SECRET, event, player, rpc, serving_play

QUEUES = """
[queue."cs2:1v1:eu"]
team_size = 1
window_start = 50.0
window_max = 50.0

[queue."cs2:2v2:eu"]
team_size = 2
window_start = 50.0
window_max = 50.0
spread_max = 50.0
"""


@pytest.fixture
async def ws_url(tmp_path: Path, backends: dict[str, str]) -> AsyncIterator[str]:
    async with serving_play(tmp_path, backends, QUEUES) as (url, _state):
        yield url


def unique(*names: str) -> list[str]:
    tag = secrets.token_hex(3)
    return [f"{name}-{tag}" for name in names]


def token(name: str) -> str:
    return issue_access_token(SECRET, name, "player", "s", int(time.time()))


def result(frame: dict[str, Any]) -> Any:
    assert frame["type"] == "rpc_result", frame
    return frame["data"]["result"]


def refusal(frame: dict[str, Any]) -> str:
    assert frame["type"] == "error", frame
    code: str = frame["data"]["code"]
    return code


async def test_a_party_is_matched_together_on_one_team(ws_url: str) -> None:
    # Names of this test's own: the distributed database is shared by the whole run.
    a, b, c, d = unique("alice", "bob", "carol", "dave")
    alice, bob, carol, dave = [await player(ws_url, n) for n in (a, b, c, d)]
    party = result(await rpc(alice, "party.create"))
    assert party["leader"] == a and party["members"] == [a]
    assert result(await rpc(alice, "party.invite", player=b))["invited"] == b
    invited = await event(bob, "party.invited")
    assert invited == {"kind": "party.invited", "party": party["party"], "leader": a}
    joined = result(await rpc(bob, "party.join", party=party["party"]))
    assert joined["members"] == [a, b]
    assert (await event(alice, "party.changed"))["members"] == [a, b]
    # Only the leader queues, for both; the ticket names both.
    assert refusal(await rpc(bob, "queue.join", queue="cs2:2v2:eu")) == "not_party_leader"
    queued = result(await rpc(alice, "queue.join", queue="cs2:2v2:eu"))
    assert queued["players"] == [a, b]
    assert result(await rpc(bob, "queue.status"))["ticket"] == queued["ticket"]
    assert refusal(await rpc(bob, "party.create")) == "already_in_party"
    await rpc(carol, "queue.join", queue="cs2:2v2:eu")
    await rpc(dave, "queue.join", queue="cs2:2v2:eu")
    found = await event(bob, "match.found")
    assert sorted(sorted(team) for team in found["teams"]) == sorted(
        [sorted([a, b]), sorted([c, d])]
    )
    for ws in (alice, bob, carol, dave):
        await ws.close()


async def test_party_rules_refuse_and_change_nothing(ws_url: str) -> None:
    e, f, g, h = unique("erin", "frank", "gina", "hal")
    erin, frank, gina, hal = [await player(ws_url, n) for n in (e, f, g, h)]
    party = result(await rpc(erin, "party.create"))["party"]
    assert refusal(await rpc(frank, "party.join", party=party)) == "not_invited"
    assert refusal(await rpc(frank, "party.invite", player=g)) == "not_party_leader"
    assert refusal(await rpc(erin, "party.invite", player="x" * 65)) == "bad_params"
    assert refusal(await rpc(erin, "party.invite", player=g, extra=1)) == "bad_params"
    for name in (f, g):
        await rpc(erin, "party.invite", player=name)
    await rpc(frank, "party.join", party=party)
    # Parties are at most the largest team (2 here).
    assert refusal(await rpc(gina, "party.join", party=party)) == "party_full"
    assert result(await rpc(gina, "party.status")) == {"party": None}
    # A party of two does not fit a 1v1 queue.
    assert refusal(await rpc(erin, "queue.join", queue="cs2:1v1:eu")) == "party_too_large"
    assert result(await rpc(erin, "queue.status")) == {"ticket": None}
    assert refusal(await rpc(erin, "queue.join", queue="cs2:9v9:eu")) == "unknown_queue"
    # A member leaving cancels the party's ticket, for both of them.
    ticket = result(await rpc(erin, "queue.join", queue="cs2:2v2:eu"))["ticket"]
    assert result(await rpc(frank, "party.leave")) == {"left": True, "party": party}
    assert (await event(erin, "queue.left"))["ticket"] == ticket
    assert (await event(erin, "party.changed"))["members"] == [e]
    assert result(await rpc(erin, "queue.status")) == {"ticket": None}
    # The leader leaving disbands the party.
    await rpc(erin, "party.invite", player=h)
    await rpc(hal, "party.join", party=party)
    await rpc(erin, "party.leave")
    assert (await event(hal, "party.disbanded"))["party"] == party
    assert result(await rpc(hal, "party.status")) == {"party": None}
    assert result(await rpc(hal, "party.leave")) == {"left": False, "party": None}
    for ws in (erin, frank, gina, hal):
        await ws.close()


async def test_tickets_over_rest_follow_the_websocket_rules(ws_url: str) -> None:
    base = ws_url.replace("ws://", "http://").removesuffix("/ws")
    (i,) = unique("ivy")
    ivy = await player(ws_url, i)
    headers = {"Authorization": f"Bearer {token(i)}"}
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        anonymous = await http.get("/v1/tickets/current", headers={"Authorization": ""})
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        for body, status, code in [
            (b"{", 400, "bad_json"),
            (b'{"queue": "cs2:1v1:eu", "x": 1}', 422, "unknown_field"),
            (b'{"queue": "cs2:3v3:mars"}', 404, "unknown_queue"),
            (b'{"queue": 7}', 404, "unknown_queue"),
        ]:
            refused = await http.post("/v1/tickets", content=body)
            assert (refused.status_code, refused.json()["code"]) == (status, code), body
        assert (await http.get("/v1/tickets/current")).json() == {"ticket": None}
        created = await http.post("/v1/tickets", json={"queue": "cs2:1v1:eu"})
        assert created.status_code == 201
        ticket = created.json()["ticket"]
        assert created.json()["players"] == [i]
        # The websocket sees the same ticket, and the player's channel hears of it.
        assert (await event(ivy, "queue.joined"))["ticket"] == ticket
        assert result(await rpc(ivy, "queue.status"))["ticket"] == ticket
        again = await http.post("/v1/tickets", json={"queue": "cs2:1v1:eu"})
        assert (again.status_code, again.json()["code"]) == (409, "already_queued")
        current = (await http.get("/v1/tickets/current")).json()
        assert (current["ticket"], current["queue"]) == (ticket, "cs2:1v1:eu")
        left = await http.delete("/v1/tickets/current")
        assert left.json() == {"left": True, "queue": "cs2:1v1:eu", "ticket": ticket}
        assert (await http.delete("/v1/tickets/current")).json() == {"left": False}
        # Joining is limited per player (10 a minute): spam is refused, not queued.
        statuses = []
        for _ in range(12):
            statuses.append(
                (await http.post("/v1/tickets", json={"queue": "cs2:1v1:eu"})).status_code
            )
            await http.delete("/v1/tickets/current")
        assert statuses.count(429) >= 2 and statuses.count(201) <= 9, statuses
        assert (await http.get("/v1/tickets/current")).json() == {"ticket": None}
    await ivy.close()
