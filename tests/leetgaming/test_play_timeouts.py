"""The time-driven parts of playing, with a controlled clock: no server, a silent server."""

from __future__ import annotations

from typing import Any

from leetgaming.app import load_queues
from leetgaming.db import Database
from leetgaming.play import Play
from leetgaming.settings import Settings
from matchmaking.match import State
from matchmaking.matcher import Member, Ticket
from matchmaking.rating import Rating
from matchmaking.servers import GameServer, MemoryServerRegistry
from matchmaking.service import Matched
from matchmaking.tickets import ClaimedMatch, MemoryTicketStore

Q = "cs2:1v1:eu"


class World:
    def __init__(self, play: Play, now: list[float], sent: list[tuple[str, Any]]) -> None:
        self.play, self.now, self.sent = play, now, sent

    def kinds(self, channel: str) -> list[str]:
        return [body["kind"] for ch, body in self.sent if ch == channel]


async def world(database: Database) -> World:
    now = [1000.0]
    sent: list[tuple[str, Any]] = []

    async def publish(channel: str, body: object) -> int:
        sent.append((channel, body))
        return len(sent)

    play = Play(
        database,
        MemoryTicketStore(),
        load_queues(Settings()),
        publish,
        lambda: now[0],
        MemoryServerRegistry(),
        allocation_timeout_s=30,
        server_silence_s=20,
    )
    await play.start()
    return World(play, now, sent)


async def accepted_match(w: World) -> str:
    tickets = tuple(Ticket(f"t-{p}", (Member(p, Rating(25, 3)),), 990.0) for p in ("ann", "bo"))
    claimed = ClaimedMatch("m-1", Q, ((tickets[0],), (tickets[1],)), 1)
    await w.play.on_event(Matched(claimed, {}))
    for player in ("ann", "bo"):
        await w.play.match_accept(player, {"match": "m-1"})
    return "m-1"


async def state_of(w: World, match_id: str) -> State:
    loaded = await w.play.load(match_id)
    assert loaded is not None
    return loaded[0].state


async def test_a_match_without_a_server_is_aborted_and_everyone_requeued(
    database: Database,
) -> None:
    w = await world(database)
    match_id = await accepted_match(w)
    assert await state_of(w, match_id) is State.ALLOCATING
    w.now[0] += 29
    assert await w.play.sweep() == 0
    w.now[0] += 1
    assert await w.play.sweep() == 1
    assert await state_of(w, match_id) is State.ABORTED
    assert w.kinds("user:ann")[-1] == "match.aborted"
    waiting = await w.play.tickets.waiting(Q)
    assert sorted(t.ticket.id for t in waiting) == ["t-ann", "t-bo"]
    assert all(t.ticket.waiting_since_s == 990.0 for t in waiting)  # front of the queue


async def test_a_server_that_appears_later_gets_the_match(database: Database) -> None:
    w = await world(database)
    match_id = await accepted_match(w)
    await w.play.servers.register(GameServer("gs-9", "eu", 1, "h:1"))
    w.now[0] += 5
    assert await w.play.sweep() == 1
    assert await state_of(w, match_id) is State.LIVE
    assert w.kinds("gameserver:gs-9") == ["match.assigned"]


async def test_a_silent_server_gets_its_match_aborted(database: Database) -> None:
    w = await world(database)
    await w.play.servers.register(GameServer("gs-1", "eu", 1, "h:1"))
    match_id = await accepted_match(w)
    assert await state_of(w, match_id) is State.LIVE
    w.now[0] += 15
    await w.play.match_update("gs-1", {"match": match_id, "live": {"round": 1}})
    w.now[0] += 19
    assert await w.play.sweep() == 0  # heard 19 s ago
    w.now[0] += 1
    assert await w.play.sweep() == 1
    assert await state_of(w, match_id) is State.ABORTED
    assert await w.play.servers.allocate("eu") is not None  # its slot was given back
