"""Queueing, matching and the ready check end to end: the real app over real websockets,
embedded (SQLite, in-process) and distributed (PostgreSQL, Redis)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection

from leetgaming.app import create_app
from leetgaming.play import QUEUE_FIGURES_TTL_S, result_message
from leetgaming.settings import Settings
from leetgaming.tokens import issue_access_token
from realtime.channel import Principal, Role

from ..ws import call, connect, receive, serving, unused_port

SECRET = "q" * 40
QUEUES = """
[queue."cs2:1v1:eu"]
team_size = 1
window_start = 50.0
window_max = 50.0
ready_check_s = 1.5
disconnect_grace_s = 1
decline_cooldown_s = 60
"""


@pytest.fixture
async def served(tmp_path: Path, backends: dict[str, str]) -> AsyncIterator[tuple[str, Any]]:
    async with serving_play(tmp_path, backends, QUEUES) as served:
        yield served


@asynccontextmanager
async def serving_play(
    tmp_path: Path,
    backends: dict[str, str],
    queues: str,
    app_options: dict[str, Any] | None = None,
    **settings: str,
) -> AsyncIterator[tuple[str, Any]]:
    """The app with ``queues`` (TOML) on ``backends`` and any other ``settings`` (by field
    name), built with ``app_options`` (keyword arguments of ``create_app``): its websocket URL
    and its state."""
    (tmp_path / "queues.toml").write_text(queues)
    port = unused_port()
    env = {
        "LEETGAMING_PORT": str(port),
        "LEETGAMING_SECRET_KEY": SECRET,
        "LEETGAMING_QUEUES_FILE": str(tmp_path / "queues.toml"),
        "LEETGAMING_MAIL_DIR": str(tmp_path / "mail"),
    }
    env |= backends
    env |= {f"LEETGAMING_{name.upper()}": value for name, value in settings.items()}
    app = create_app(Settings.from_env(env), **(app_options or {}))
    async with serving(app, port):
        yield f"ws://127.0.0.1:{port}/ws", app.state


@pytest.fixture
def ws_url(served: tuple[str, Any]) -> str:
    return served[0]


async def player(url: str, name: str) -> ClientConnection:
    ws = await connect(url)
    token = issue_access_token(SECRET, name, "player", "s", int(time.time()))
    assert (await call(ws, type="auth", id="a", data={"token": token}))["type"] == "auth_ok"
    assert (await call(ws, type="subscribe", id="s", ch=f"user:{name}"))["type"] == "subscribed"
    return ws


async def rpc(ws: ClientConnection, method: str, **params: Any) -> dict[str, Any]:
    """The answer to one call (publications arriving meanwhile are skipped)."""
    frame = {"v": 1, "type": "rpc", "id": method, "data": {"method": method, "params": params}}
    await ws.send(orjson.dumps(frame))
    while True:
        frame = await receive(ws)
        if frame.get("id") == method or frame["data"].get("ref") == method:
            return frame


async def event(ws: ClientConnection, kind: str, match: str | None = None) -> dict[str, Any]:
    """The next publication of ``kind`` (about ``match``, if given: the database is shared
    with other tests, whose unfinished matches this app's sweeper may also allocate)."""
    while True:
        frame = await receive(ws)
        if frame["type"] == "pub" and frame["data"]["body"]["kind"] == kind:
            body: dict[str, Any] = frame["data"]["body"]
            if match is None or body.get("match") == match:
                return body


async def test_two_players_queue_match_and_accept(ws_url: str) -> None:
    # names of its own: the match stays open in the shared database, and a player in an open
    # match cannot queue again
    alice, bob = await player(ws_url, "amy"), await player(ws_url, "bo")
    joined = await rpc(alice, "queue.join", queue="cs2:1v1:eu")
    assert joined["type"] == "rpc_result" and joined["data"]["result"]["queue"] == "cs2:1v1:eu"
    again = await rpc(alice, "queue.join", queue="cs2:1v1:eu")
    assert again["data"]["code"] == "already_queued"
    await rpc(bob, "queue.join", queue="cs2:1v1:eu")
    found = await event(alice, "match.found")
    assert sorted(found["teams"]) == [["amy"], ["bo"]]
    assert (await event(bob, "match.found"))["match"] == found["match"]
    await rpc(alice, "match.accept", match=found["match"])
    accepted = await rpc(bob, "match.accept", match=found["match"])
    assert accepted["data"]["result"]["state"] == "allocating"
    assert (await event(alice, "match.allocating"))["match"] == found["match"]
    # in a match that is not over, nobody queues again (a player is in one match at a time)
    busy = await rpc(alice, "queue.join", queue="cs2:1v1:eu")
    assert busy["data"]["code"] == "in_match", busy
    stranger = await player(ws_url, "mallory")
    refused = await rpc(stranger, "match.accept", match=found["match"])
    assert refused["data"]["code"] == "unknown_match"
    for ws in (alice, bob, stranger):
        await ws.close()


async def test_the_queues_say_who_waits_and_what_wait_to_expect(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    # a database of its own: the estimate reads every match the queue formed
    async with serving_play(tmp_path, own_backends, QUEUES) as (ws_url, _state):
        await _queue_figures(ws_url)


async def _queue_figures(ws_url: str) -> None:
    base = ws_url.replace("ws://", "http://").removesuffix("/ws")

    async def figures() -> dict[str, Any]:
        await asyncio.sleep(QUEUE_FIGURES_TTL_S)  # the figures are kept a second
        async with httpx.AsyncClient(base_url=base) as http:
            [queue] = (await http.get("/v1/queues")).json()["queues"]
        return queue  # type: ignore[no-any-return]

    assert await figures() == {
        "queue": "cs2:1v1:eu",
        "team_size": 1,
        "teams": 2,
        "ready_check_s": 1.5,
        "waiting": 0,
        "wait_estimate_s": None,  # no match yet: no estimate
        "matches_recent": 0,
    }
    alice, bob = await player(ws_url, "alice"), await player(ws_url, "bob")
    await rpc(alice, "queue.join", queue="cs2:1v1:eu")
    assert (await figures())["waiting"] == 1
    await rpc(bob, "queue.join", queue="cs2:1v1:eu")
    await event(alice, "match.found")
    after = await figures()
    assert (after["waiting"], after["matches_recent"]) == (0, 1)
    # alice waited about a second (the figures' read), bob next to nothing: the match's mean
    assert 0.3 <= after["wait_estimate_s"] <= 3.0
    for ws in (alice, bob):
        await ws.close()


async def test_a_reopened_client_asks_for_its_current_match(ws_url: str) -> None:
    tag = secrets.token_hex(3)  # the distributed tests share a database: names of its own
    a, b = f"alice_{tag}", f"bob_{tag}"
    alice, bob = await player(ws_url, a), await player(ws_url, b)
    nothing = await rpc(alice, "match.current")
    assert nothing["data"]["result"] == {"match": None}
    await rpc(alice, "queue.join", queue="cs2:1v1:eu")
    await rpc(bob, "queue.join", queue="cs2:1v1:eu")
    found = await event(alice, "match.found")
    await rpc(alice, "match.accept", match=found["match"])
    # as a page opened after the match.found would ask (the ids hold LIKE's wildcard _)
    for ws, accepted in ((alice, True), (bob, False)):
        current = (await rpc(ws, "match.current"))["data"]["result"]
        assert (current["match"], current["state"], current["accepted"]) == (
            found["match"],
            "ready_check",
            accepted,
        )
        assert sorted(current["teams"]) == [[a], [b]]
        assert 0 < current["accept_within_s"] <= 1.5
    stranger = await player(ws_url, a[:-1])  # a prefix of a player's id: not in the match
    assert (await rpc(stranger, "match.current"))["data"]["result"] == {"match": None}
    refused = await rpc(alice, "match.current", extra=1)
    assert refused["data"]["code"] == "bad_params"
    for ws in (alice, bob, stranger):
        await ws.close()


async def test_a_decline_requeues_the_other_and_cools_the_decliner_down(ws_url: str) -> None:
    carol, dave = await player(ws_url, "carol"), await player(ws_url, "dave")
    await rpc(carol, "queue.join", queue="cs2:1v1:eu")
    await rpc(dave, "queue.join", queue="cs2:1v1:eu")
    found = await event(carol, "match.found")
    declined = await rpc(carol, "match.decline", match=found["match"])
    assert declined["data"]["result"]["state"] == "cancelled"
    cancelled = await event(dave, "match.cancelled")
    assert (cancelled["declined"], cancelled["requeued"]) == (["carol"], ["dave"])
    cooled = await rpc(carol, "queue.join", queue="cs2:1v1:eu")
    assert cooled["data"]["code"] == "cooldown"
    # dave is back in the queue (not a new ticket: leaving it finds it).
    left = await rpc(dave, "queue.leave")
    assert left["data"]["result"]["left"] is True
    assert left["data"]["result"]["queue"] == "cs2:1v1:eu"
    for ws in (carol, dave):
        await ws.close()


async def test_silence_fails_the_ready_check_at_its_deadline(ws_url: str) -> None:
    erin, frank = await player(ws_url, "erin"), await player(ws_url, "frank")
    await rpc(erin, "queue.join", queue="cs2:1v1:eu")
    await rpc(frank, "queue.join", queue="cs2:1v1:eu")
    found = await event(erin, "match.found")
    await rpc(erin, "match.accept", match=found["match"])
    cancelled = await event(erin, "match.cancelled")  # the sweeper, after 1.5 s
    assert (cancelled["declined"], cancelled["requeued"]) == (["frank"], ["erin"])
    late = await rpc(frank, "match.accept", match=found["match"])
    assert late["data"]["code"] == "too_late"
    for ws in (erin, frank):
        await ws.close()


async def test_bad_calls_change_nothing(ws_url: str) -> None:
    gina = await player(ws_url, "gina")
    unknown = await rpc(gina, "queue.join", queue="cs2:9v9:mars")
    assert unknown["data"]["code"] == "unknown_queue"
    bad = await rpc(gina, "queue.join", queue="cs2:1v1:eu", party=["x"])
    assert bad["data"]["code"] == "bad_params"
    assert (await rpc(gina, "queue.leave"))["data"]["result"] == {"left": False}
    assert (await rpc(gina, "nope"))["data"]["code"] == "unknown_method"
    async with connect(ws_url) as spectator:
        await call(spectator, type="auth", id="a")
        await spectator.send(
            b'{"v":1,"type":"rpc","id":"1","data":{"method":"queue.join","params":{}}}'
        )
        assert (await receive(spectator))["data"]["code"] == "forbidden"
    await gina.close()


async def test_a_disconnected_player_keeps_the_ticket_only_for_the_grace(ws_url: str) -> None:
    henry = await player(ws_url, "henry")
    await rpc(henry, "queue.join", queue="cs2:1v1:eu")
    await henry.close()
    henry = await player(ws_url, "henry")  # back within the 1 s grace: the ticket stays
    assert (await rpc(henry, "queue.join", queue="cs2:1v1:eu"))["data"]["code"] == "already_queued"
    await henry.close()
    await asyncio.sleep(3.0)  # the grace, then a matchmaker tick
    henry = await player(ws_url, "henry")
    assert (await rpc(henry, "queue.leave"))["data"]["result"] == {"left": False}
    await henry.close()


async def test_leaderboards_and_histories_are_public_reads(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    # a database of its own: the run's shared one holds the other tests' ratings in cs2:1v1
    async with (
        serving_play(tmp_path, own_backends, QUEUES) as (ws_url, _),
        httpx.AsyncClient(base_url=ws_url.replace("ws://", "http://").removesuffix("/ws")) as http,
    ):
        board = await http.get("/v1/leaderboards/cs2:1v1")
        assert board.status_code == 200 and board.json() == {"mode": "cs2:1v1", "players": []}
        bad = await http.get("/v1/leaderboards/cs2:1v1?limit=1000")
        assert (bad.status_code, bad.json()["code"]) == (422, "bad_limit")
        unknown = await http.get("/v1/leaderboards/nonsense")
        assert unknown.status_code == 404
        history = await http.get("/v1/players/alice/ratings/cs2:1v1")
        assert history.json()["history"] == []


async def game_server(ws_url: str, app_state: Any, name: str) -> tuple[ClientConnection, str, str]:
    """A registered game server: its connection, id and key (issued as an admin would)."""
    issued = await app_state.identity.issue_game_server_key(name, "admin-1")
    server_id, token, _ = await app_state.identity.game_server_token(issued.key)
    ws = await connect(ws_url)
    assert (await call(ws, type="auth", id="a", data={"token": token}))["data"]["role"] == (
        "game_server"
    )
    await call(ws, type="subscribe", id="s", ch=f"gameserver:{server_id}")
    registered = await rpc(ws, "server.register", region="eu", capacity=2, address="10.0.0.7:27015")
    assert registered["data"]["result"]["server"] == server_id
    return ws, server_id, issued.key


def sign(key: str, match_id: str, ranks: list[int]) -> str:
    secret = hashlib.sha256(key.encode()).hexdigest()
    return hmac.new(secret.encode(), result_message(match_id, ranks), hashlib.sha256).hexdigest()


async def test_a_match_runs_on_a_game_server_and_its_signed_result_rates_once(
    served: tuple[str, Any],
) -> None:
    ws_url, state = served
    server, server_id, key = await game_server(ws_url, state, "eu-1")
    alice, bob = await player(ws_url, "alice"), await player(ws_url, "bob")
    spectator = await connect(ws_url)
    await call(spectator, type="auth", id="a")
    for ws in (alice, bob):
        await rpc(ws, "queue.join", queue="cs2:1v1:eu")
    found = await event(alice, "match.found")
    match_id = found["match"]
    await call(spectator, type="subscribe", id="m", ch=f"match:{match_id}")
    for ws in (alice, bob):
        await rpc(ws, "match.accept", match=match_id)
    assigned = await event(server, "match.assigned", match_id)
    assert sorted(assigned["teams"]) == [["alice"], ["bob"]]
    live = await event(alice, "match.live")
    assert (live["server"], live["address"]) == (server_id, "10.0.0.7:27015")
    await rpc(server, "match.update", match=match_id, live={"round": 3, "score": [2, 1]})
    assert (await event(spectator, "match.update"))["live"] == {"round": 3, "score": [2, 1]}
    alice_first = [0, 1] if assigned["teams"][0] == ["alice"] else [1, 0]
    forged = await rpc(server, "match.result", match=match_id, ranks=alice_first, signature="00")
    assert forged["data"]["code"] == "bad_signature"
    signature = sign(key, match_id, alice_first)
    done = await rpc(server, "match.result", match=match_id, ranks=alice_first, signature=signature)
    assert done["data"]["result"] == {"match": match_id, "state": "finished", "repeat": False}
    settled = await event(bob, "match.settled")
    assert settled["ranks"] == alice_first
    again = await rpc(
        server, "match.result", match=match_id, ranks=alice_first, signature=signature
    )
    assert again["data"]["result"]["repeat"] is True
    other = [1 - r for r in alice_first]
    conflict = await rpc(
        server, "match.result", match=match_id, ranks=other, signature=sign(key, match_id, other)
    )
    assert conflict["data"]["code"] in ("conflicting_result", "too_late")
    base = ws_url.replace("ws://", "http://").removesuffix("/ws")
    async with httpx.AsyncClient(base_url=base) as http:
        board = (await http.get("/v1/leaderboards/cs2:1v1")).json()["players"]
    assert [row["player"] for row in board] == ["alice", "bob"]
    assert [row["games"] for row in board] == [1, 1]
    # Another server cannot report on this match.
    intruder, _, intruder_key = await game_server(ws_url, state, "eu-2")
    refused = await rpc(
        intruder,
        "match.result",
        match=match_id,
        ranks=alice_first,
        signature=sign(intruder_key, match_id, alice_first),
    )
    assert refused["data"]["code"] == "not_your_match"
    # Players cannot call server methods, servers cannot queue.
    assert (await rpc(alice, "match.result", match=match_id))["data"]["code"] == "forbidden"
    assert (await rpc(server, "queue.join", queue="cs2:1v1:eu"))["data"]["code"] == "forbidden"
    for ws in (server, intruder, alice, bob, spectator):
        await ws.close()


async def test_an_abort_requeues_all_but_the_afk(served: tuple[str, Any]) -> None:
    ws_url, state = served
    server, _, _ = await game_server(ws_url, state, "eu-3")
    carl, dora = await player(ws_url, "carl"), await player(ws_url, "dora")
    for ws in (carl, dora):
        await rpc(ws, "queue.join", queue="cs2:1v1:eu")
    match_id = (await event(carl, "match.found"))["match"]
    for ws in (carl, dora):
        await rpc(ws, "match.accept", match=match_id)
    await event(server, "match.assigned", match_id)
    stranger = await rpc(server, "match.abort", match=match_id, afk=["mallory"])
    assert stranger["data"]["code"] == "not_in_match"
    aborted = await rpc(server, "match.abort", match=match_id, afk=["dora"])
    assert aborted["data"]["result"]["state"] == "aborted"
    note = await event(carl, "match.aborted")
    assert (note["afk"], note["requeued"]) == (["dora"], ["carl"])
    assert (await rpc(carl, "queue.leave"))["data"]["result"]["left"] is True
    assert (await rpc(dora, "queue.leave"))["data"]["result"]["left"] is False
    for ws in (server, carl, dora):
        await ws.close()


async def test_a_series_tells_its_server_how_many_games(served: tuple[str, Any]) -> None:
    ws_url, state = served
    server, _, _ = await game_server(ws_url, state, "eu-bo3")
    assert await state.play.start_match("series-1", "cs2:1v1:eu", (("sia",), ("teo",)), 3)
    for p in ("sia", "teo"):
        await state.play.call(Principal(Role.PLAYER, p), "match.accept", {"match": "series-1"})
    assigned = await event(server, "match.assigned", "series-1")
    assert (assigned["match"], assigned["best_of"]) == ("series-1", 3)
    await server.close()
