"""The hub over a real websocket: uvicorn serving the app, the ``websockets`` client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from leetgaming.app import create_app
from leetgaming.settings import Settings
from leetgaming.tokens import issue_access_token

from ..ws import call, receive, serving, unused_port

SECRET = "k" * 40


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    port = unused_port()
    settings = Settings.from_env(
        {
            "LEETGAMING_PORT": str(port),
            "LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
            "LEETGAMING_SECRET_KEY": SECRET,
        }
    )
    async with serving(create_app(settings), port):
        yield f"ws://127.0.0.1:{port}/ws"


def token(subject: str, role: str = "player") -> str:
    return issue_access_token(SECRET, subject, role, "s", int(time.time()))


async def test_spectator_follows_lobby_chat_and_recovers_after_reconnect(server: str) -> None:
    async with connect(server) as spectator, connect(server) as alice:
        assert (await call(spectator, type="auth", id="a"))["data"]["role"] == "spectator"
        assert (await call(alice, type="auth", id="a", data={"token": token("alice")}))["data"][
            "subject"
        ] == "alice"
        subscribed = await call(spectator, type="subscribe", id="s", ch="lobby:eu")
        epoch = subscribed["data"]["epoch"]
        await call(alice, type="subscribe", id="s", ch="lobby:eu")
        assert (await receive(spectator))["type"] == "join"
        own_pub = await call(
            alice, type="publish", id="p", ch="lobby:eu", data={"body": {"text": "gl hf"}}
        )
        published = await receive(alice)  # the publisher is subscribed too: its pub, then the ack
        assert (own_pub["type"], published["type"], published["data"]["offset"]) == (
            "pub",
            "published",
            1,
        )
        pub = await receive(spectator)
        assert (pub["type"], pub["data"]["offset"], pub["data"]["body"]) == (
            "pub",
            1,
            {"from": "alice", "text": "gl hf"},
        )
        # Spectators are read-only and see no private channel.
        denied = await call(spectator, type="publish", id="x", ch="lobby:eu", data={"body": "hi"})
        assert denied["data"]["code"] == "forbidden"
        assert (await call(spectator, type="subscribe", id="y", ch="user:alice"))["data"][
            "code"
        ] == "forbidden"
        assert (await call(alice, type="subscribe", id="y", ch="user:bob"))["data"][
            "code"
        ] == "forbidden"
    # The spectator missed two messages while away; it recovers them in order.
    async with connect(server) as alice, connect(server) as spectator:
        await call(alice, type="auth", id="a", data={"token": token("alice")})
        for n in (2, 3):
            await call(
                alice, type="publish", id=str(n), ch="lobby:eu", data={"body": {"text": str(n)}}
            )
        await call(spectator, type="auth", id="a")
        back = await call(
            spectator,
            type="subscribe",
            id="s",
            ch="lobby:eu",
            data={"since_offset": 1, "since_epoch": epoch},
        )
        assert back["data"]["recovered"] is True
        assert [p["data"]["offset"] for p in back["data"]["publications"]] == [2, 3]


async def test_bad_input_gets_errors_and_closes_without_crashing(server: str) -> None:
    async with connect(server) as ws:
        assert (await call(ws, type="subscribe", id="1", ch="lobby:x"))["data"][
            "code"
        ] == "not_authenticated"
        await ws.send("{broken")
        assert (await receive(ws))["data"]["code"] == "bad_frame"
        wrong = await call(ws, type="auth", id="2", data={"token": "not-a-jwt"})
        assert wrong["data"]["code"] == "bad_token"
        for _ in range(12):  # past bad_frames_max
            await ws.send("nope")
        frames = []
        with pytest.raises(Exception):  # noqa: B017 - the server closes the socket
            while True:
                frames.append(orjson.loads(await asyncio.wait_for(ws.recv(), 5)))
        assert frames[-1]["type"] == "disconnect" and frames[-1]["data"]["code"] == 4500
        assert ws.close_code == 4500
    # The hub still serves others.
    async with connect(server) as ws:
        assert (await call(ws, type="ping"))["type"] == "pong"


async def test_sigterm_drains_websocket_clients_with_a_reconnect_code(tmp_path: Path) -> None:
    from .test_cli import environment_without_settings, running_server, stop

    port = unused_port()
    env = environment_without_settings() | {"LEETGAMING_PORT": str(port)}
    with running_server(tmp_path, env) as server:
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await call(ws, type="auth", id="1")
            await call(ws, type="subscribe", id="2", ch="lobby:eu")
            stopping = asyncio.get_running_loop().run_in_executor(None, stop, server)
            goodbye = await receive(ws)
            assert goodbye["type"] == "disconnect"
            assert goodbye["data"] == {
                "code": 4000,
                "reason": "server restarting: reconnect and recover",
                "reconnect": True,
            }
            with pytest.raises(Exception):  # noqa: B017 - then the server closes the socket
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 4000
            assert await stopping == 0


async def test_serve_refuses_oversized_messages_and_compression(tmp_path: Path) -> None:
    from .test_cli import environment_without_settings, running_server, stop

    port = unused_port()
    env = environment_without_settings() | {"LEETGAMING_PORT": str(port)}
    with running_server(tmp_path, env) as server:
        async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
            assert ws.response is not None
            assert "permessage-deflate" not in (
                ws.response.headers.get("Sec-WebSocket-Extensions") or ""
            )
            await ws.send("x" * (1 << 20))  # 1 MiB: far over the 64 KiB frame limit
            with pytest.raises(Exception):  # noqa: B017 - the server closes the connection
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1009  # message too big
        assert stop(server) == 0
