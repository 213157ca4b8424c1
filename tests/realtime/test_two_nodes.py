"""Two hub nodes on one real Redis: what one publishes, the other's clients get, and a client
that moves from one node to the other recovers without a gap."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import connect

from realtime.channel import Principal, Role
from realtime.presence import RedisPresence
from realtime.server import Credential, HubNode
from realtime.streams import RedisStreams

from ..ws import call, receive, serving


async def verify(token: str | None) -> Credential | None:
    if token is None:
        return Credential(Principal(Role.SPECTATOR, ""))
    role, _, subject = token.partition(":")
    return Credential(Principal(Role(role), subject)) if subject else None


@asynccontextmanager
async def node(redis_url: str, prefix: str) -> AsyncIterator[tuple[str, HubNode]]:
    client = aioredis.Redis.from_url(redis_url)
    hub = HubNode(
        verify,
        streams=RedisStreams(client, prefix),
        relay=client,
        relay_prefix=prefix,
        presence=RedisPresence(client, prefix, secrets.token_hex(4)),
    )
    await hub.start()
    try:
        async with serving(Starlette(routes=[WebSocketRoute("/ws", hub.serve)])) as port:
            yield f"ws://127.0.0.1:{port}/ws", hub
    finally:
        await hub.stop()
        await client.aclose()


async def test_publication_on_one_node_reaches_clients_of_the_other(
    redis_url: str, redis_prefix: str
) -> None:
    async with (
        node(redis_url, redis_prefix) as (url_a, _),
        node(redis_url, redis_prefix) as (url_b, hub_b),
    ):
        async with connect(url_a) as watcher, connect(url_b) as player:
            await call(watcher, type="auth", id="1")
            first = await call(watcher, type="subscribe", id="2", ch="lobby:eu")
            await call(player, type="auth", id="1", data={"token": "player:alice"})
            await call(player, type="subscribe", id="s", ch="lobby:eu")
            joined = await receive(watcher)  # a join on node B reaches node A's subscriber
            assert (joined["type"], joined["data"]["subject"]) == ("join", "alice")
            members = await call(player, type="presence", id="p", ch="lobby:eu")
            assert sorted(m["role"] for m in members["data"]["members"]) == ["player", "spectator"]
            published = await call(
                player, type="publish", id="3", ch="lobby:eu", data={"body": {"text": "from B"}}
            )
            assert published["type"] == "published"
            pub = await receive(watcher)
            assert (pub["type"], pub["data"]["offset"], pub["data"]["body"]) == (
                "pub",
                1,
                {"from": "alice", "text": "from B"},
            )
            epoch = pub["data"]["epoch"]
            assert first["data"]["offset"] == 0
            # The server-side publish API, from node B, reaches node A's client too.
            assert await hub_b.publish("lobby:eu", {"system": "match found"}) == 2
            assert (await receive(watcher))["data"]["offset"] == 2
            # A batch, in one round trip: in order, and to every node's clients
            offsets = await hub_b.publish_many(
                [("lobby:eu", {"n": 1}), ("lobby:na", {"n": 2}), ("lobby:eu", {"n": 3})]
            )
            assert offsets == [3, 1, 4]
            got = [await receive(watcher), await receive(watcher)]
            assert [(f["data"]["offset"], f["data"]["body"]) for f in got] == [
                (3, {"n": 1}),
                (4, {"n": 3}),
            ]
        # The watcher moves to node B after missing two publications made on node A's side.
        async with connect(url_a) as player:
            await call(player, type="auth", id="1", data={"token": "player:alice"})
            for n in (5, 6):
                assert (
                    await call(
                        player,
                        type="publish",
                        id=str(n),
                        ch="lobby:eu",
                        data={"body": {"text": str(n)}},
                    )
                )["data"]["offset"] == n
        async with connect(url_b) as watcher:
            await call(watcher, type="auth", id="1")
            back = await call(
                watcher,
                type="subscribe",
                id="2",
                ch="lobby:eu",
                data={"since_offset": 4, "since_epoch": epoch},
            )
            assert back["data"]["recovered"] is True
            assert [p["data"]["offset"] for p in back["data"]["publications"]] == [5, 6]
