"""Two hub nodes on one real Redis: what one publishes, the other's clients get, and a client
that moves from one node to the other recovers without a gap."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from realtime.channel import Principal, Role
from realtime.envelope import CloseCode
from realtime.presence import RedisConnectionCounts, RedisPresence
from realtime.relay import RelayChannels, RelaySubscriptionError
from realtime.server import Credential, HubNode, ServerLimits
from realtime.streams import RedisStreams

from ..ws import call, connect, receive, serving, unused_port


async def verify(token: str | None) -> Credential | None:
    """``role:subject`` or ``role:subject:session``."""
    if token is None:
        return Credential(Principal(Role.SPECTATOR, ""))
    role, _, rest = token.partition(":")
    subject, _, session = rest.partition(":")
    return Credential(Principal(Role(role), subject), None, session) if subject else None


@asynccontextmanager
async def node(
    redis_url: str, prefix: str, limits: ServerLimits | None = None
) -> AsyncIterator[tuple[str, HubNode]]:
    client = aioredis.Redis.from_url(redis_url)
    node_id = secrets.token_hex(4)
    hub = HubNode(
        verify,
        streams=RedisStreams(client, prefix),
        relay=client,
        relay_prefix=prefix,
        presence=RedisPresence(client, prefix, node_id),
        connection_counts=RedisConnectionCounts(client, prefix, node_id),
        node_id=node_id,
        limits=limits,
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


async def _listeners(redis_url: str, name: str) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        counts = await client.pubsub_numsub(name)
        return int(counts[0][1])
    finally:
        await client.aclose()


async def _eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.01)


async def test_a_node_takes_from_redis_only_the_channels_its_clients_follow(
    redis_url: str, redis_prefix: str
) -> None:
    eu, na = f"{redis_prefix}pub:lobby:eu", f"{redis_prefix}pub:lobby:na"
    async with (
        node(redis_url, redis_prefix) as (url_a, hub_a),
        node(redis_url, redis_prefix) as (_, hub_b),
    ):
        fanned_out: list[int] = []
        hub_a.observe_fanout = lambda _seconds, members: fanned_out.append(members)
        async with connect(url_a) as first, connect(url_a) as second:
            for ws in (first, second):
                await call(ws, type="auth", id="1")
                assert (await call(ws, type="subscribe", id="2", ch="lobby:eu"))["type"] == (
                    "subscribed"
                )
            # one Redis subscription for the node, however many of its clients follow
            assert (await _listeners(redis_url, eu), await _listeners(redis_url, na)) == (1, 0)
            assert (hub_a.following(), hub_b.following()) == (1, 0)
            for n in range(20):  # nobody on node A follows lobby:na: A never sees these
                await hub_b.publish("lobby:na", {"n": n})
            await hub_b.publish("lobby:eu", {"n": "eu"})
            for ws in (first, second):
                pub = await receive(ws)
                assert (pub["ch"], pub["data"]["body"]) == ("lobby:eu", {"n": "eu"})
            assert fanned_out == [2]
            assert (await call(first, type="unsubscribe", id="3", ch="lobby:eu"))["type"] == (
                "unsubscribed"
            )
            assert await _listeners(redis_url, eu) == 1  # the second client still follows
        # the last follower gone (here by disconnecting), the node unsubscribes

        async def unsubscribed() -> bool:
            return await _listeners(redis_url, eu) == 0 and hub_a.following() == 0

        await _eventually(unsubscribed)


async def test_following_while_another_node_publishes_misses_and_repeats_nothing(
    redis_url: str, redis_prefix: str
) -> None:
    """A client subscribes, leaves and comes back (recovering from its last offset) again and
    again while node B publishes without pause: node A's Redis subscription comes and goes
    with it, and the client still sees every offset once, in order."""
    published = 300
    async with (
        node(redis_url, redis_prefix) as (url_a, _),
        node(redis_url, redis_prefix) as (_, hub_b),
    ):

        async def publish() -> None:
            for n in range(published):
                await hub_b.publish("lobby:eu", {"n": n})
                if n % 10 == 0:
                    await asyncio.sleep(0)

        seen: list[int] = []
        async with connect(url_a) as ws:
            await call(ws, type="auth", id="1")
            first = await call(ws, type="subscribe", id="s0", ch="lobby:eu")
            epoch, last = first["data"]["epoch"], first["data"]["offset"]
            assert last == 0
            publisher = asyncio.create_task(publish())
            rounds = 0
            while last < published:
                rounds += 1
                for _ in range(30):  # a few live publications, then leave (10 rounds)
                    if last == published:
                        break
                    pub = await receive(ws)
                    assert pub["type"] == "pub"
                    seen.append(pub["data"]["offset"])
                    last, epoch = pub["data"]["offset"], pub["data"]["epoch"]
                left = await call(ws, type="unsubscribe", id=f"u{rounds}", ch="lobby:eu")
                while left["type"] == "pub":  # sent before the answer
                    seen.append(left["data"]["offset"])
                    last = left["data"]["offset"]
                    left = await receive(ws)
                assert left["type"] == "unsubscribed", left
                back = await call(
                    ws,
                    type="subscribe",
                    id=f"s{rounds}",
                    ch="lobby:eu",
                    data={"since_offset": last, "since_epoch": epoch},
                )
                assert back["type"] == "subscribed" and back["data"]["recovered"] is True, back
                for recovered in back["data"]["publications"]:
                    seen.append(recovered["data"]["offset"])
                    last = recovered["data"]["offset"]
            await publisher
        assert seen == list(range(1, published + 1))
        assert rounds > 3


async def test_a_subscription_redis_has_not_confirmed_is_not_taken_as_made(
    redis_url: str, redis_prefix: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    name = f"{redis_prefix}pub:lobby:eu".encode()
    try:
        following = RelayChannels(pubsub, timeout_s=0.2)
        with pytest.raises(RelaySubscriptionError):  # nobody reads the confirmations
            await following.want(name)
        assert await _listeners(redis_url, name.decode()) == 1  # sent, just not confirmed
        # the confirmation, read now, resolves the waiter it belongs to, and the next want
        # of the channel waits for nothing more
        message = await pubsub.get_message(timeout=1.0)
        assert message is not None and message["type"] == "subscribe"
        following.confirmed(message["channel"])
        await asyncio.wait_for(following.want(name), 0.1)
        await following.drop(name)
        assert name not in following
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_a_session_revoked_on_one_node_loses_its_sockets_on_every_node(
    redis_url: str, redis_prefix: str
) -> None:
    async with (
        node(redis_url, redis_prefix) as (url_a, hub_a),
        node(redis_url, redis_prefix) as (url_b, _),
        connect(url_a) as here,
        connect(url_b) as there,
        connect(url_b) as other_session,
    ):
        for ws, token in (
            (here, "player:p1:s1"),
            (there, "player:p1:s1"),
            (other_session, "player:p1:s2"),
        ):
            assert (await call(ws, type="auth", id="a", data={"token": token}))["type"] == "auth_ok"
        assert await hub_a.revoke_session("s1") == 1  # the one here; b closes its own
        for ws in (here, there):
            goodbye = await receive(ws)
            assert (goodbye["type"], goodbye["data"]["code"]) == ("disconnect", 4504)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == CloseCode.SESSION_REVOKED
        assert (await call(other_session, type="ping"))["type"] == "pong"


async def test_the_per_account_socket_cap_holds_across_nodes(
    redis_url: str, redis_prefix: str
) -> None:
    """3 sockets per account here: two on A and one on B fill it; a fourth is closed on either
    node; one closed on A frees a place on B; a dead node's sockets stop counting once its
    heartbeat key is gone."""
    limits = ServerLimits(connections_per_user_max=3)
    async with (
        node(redis_url, redis_prefix, limits) as (url_a, hub_a),
        node(redis_url, redis_prefix, limits) as (url_b, _),
    ):

        async def signed_in(url: str, who: str = "player:carol") -> ClientConnection:
            ws = await connect(url)
            answer = await call(ws, type="auth", id="a", data={"token": who})
            assert answer["type"] == "auth_ok", answer
            return ws

        async def refused(url: str) -> None:
            async with connect(url) as ws:
                with pytest.raises(ConnectionClosed):
                    await call(ws, type="auth", id="a", data={"token": "player:carol"})
                    await asyncio.wait_for(ws.recv(), 10)
                assert ws.close_code == CloseCode.TOO_MANY_CONNECTIONS

        on_a = [await signed_in(url_a), await signed_in(url_a)]
        on_b = [await signed_in(url_b)]
        await refused(url_b)
        await refused(url_a)
        other = await signed_in(url_b, "player:dave")  # another account is not limited
        await on_a.pop().close()
        on_b.append(await signed_in(url_b, "player:carol"))  # the place freed on A, taken on B
        await refused(url_b)
        # node A dies without a word: once its heartbeat key expires, its socket is not counted
        client = aioredis.Redis.from_url(redis_url)
        await client.delete(f"{redis_prefix}node:{hub_a.node_id}")
        await client.aclose()
        on_b.append(await signed_in(url_b))
        await refused(url_b)
        for ws in [*on_a, *on_b, other]:
            await ws.close()


async def test_after_redis_restarts_empty_each_node_hears_the_others_again(
    tmp_path: Path,
) -> None:
    """Item 22, mid-fan-out: a Redis of the test's own is killed and restarted empty while a
    client on node A follows a channel that node B publishes to. Node A listens again (it used
    to stop for good), tells its client to reconnect and recover (``SHUTDOWN``), and what B
    publishes afterwards reaches the client."""
    redis_server = shutil.which("redis-server")
    assert redis_server is not None, "this test runs a redis-server of its own: install it"
    port = unused_port()
    command = [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(tmp_path)]

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return process
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    redis_process = start()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        async with (
            node(url, "rt:") as (url_a, _),
            node(url, "rt:") as (_, hub_b),
        ):
            watcher = await connect(url_a)
            await call(watcher, type="auth", id="1")
            await call(watcher, type="subscribe", id="2", ch="lobby:eu")
            await hub_b.publish("lobby:eu", {"text": "before"})
            assert (await receive(watcher))["data"]["body"]["text"] == "before"

            redis_process.kill()
            redis_process.wait()
            redis_process = start()  # empty: no streams, no subscriptions

            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(watcher.recv(), 15)
            assert watcher.close_code == CloseCode.SHUTDOWN  # reconnect and recover
            again = await connect(url_a)
            await call(again, type="auth", id="1")
            await call(again, type="subscribe", id="2", ch="lobby:eu")

            async def heard() -> bool:
                with contextlib.suppress(Exception):
                    await hub_b.publish("lobby:eu", {"text": "after"})
                try:
                    frame = await asyncio.wait_for(receive(again), 0.5)
                except TimeoutError:
                    return False
                return frame["type"] == "pub" and frame["data"]["body"]["text"] == "after"

            await _eventually(heard, 15)
            await again.close()
    finally:
        redis_process.kill()
        redis_process.wait()
