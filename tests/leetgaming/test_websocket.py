"""The hub over a real websocket: uvicorn serving the app, the ``websockets`` client."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.uri import parse_uri

from leetgaming.tokens import issue_access_token
from realtime.server import ServerLimits

from ..ws import call, connect, embedded_app, page_origin, receive, serving, unused_port

SECRET = "k" * 40


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    port = unused_port()
    async with serving(embedded_app(tmp_path, SECRET, port), port):
        yield f"ws://127.0.0.1:{port}/ws"


def token(subject: str, role: str = "player") -> str:
    return issue_access_token(SECRET, subject, role, "s", int(time.time()), mfa=role == "admin")


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
            with pytest.raises(Exception):  # noqa: B017 - the server closes the connection
                # 1 MiB: far over the 64 KiB frame limit. The server may close before the
                # client has written all of it, and then the send itself fails.
                await ws.send("x" * (1 << 20))
                await asyncio.wait_for(ws.recv(), 5)
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1009  # message too big
        assert stop(server) == 0


@pytest.mark.parametrize("deflate", [False, True], ids=["framed", "asgi-deflate"])
async def test_a_client_that_stops_reading_is_cut_and_dropped_with_its_buffers(
    tmp_path: Path, deflate: bool
) -> None:
    port = unused_port()
    app = embedded_app(tmp_path, SECRET, port)
    hub = app.state.hub
    hub.limits = ServerLimits(tick_interval_s=0.1, close_grace_s=0.5, send_stall_s=1.0)
    async with serving(app, port, deflate=deflate):
        url = f"ws://127.0.0.1:{port}/ws"
        # A client on a plain socket with a small receive buffer: after subscribing it never
        # reads again, so the kernel holds little for it and the server's writes block.
        stuck = await asyncio.to_thread(stalled_subscriber, url, port, "tournament:final")
        async with connect(url) as reader:
            await call(reader, type="auth", id="a")
            await call(reader, type="subscribe", id="s", ch="tournament:final")
            for _ in range(200):  # 12 MB: far over the 1 MiB queue and the socket buffers
                # random text: compression (when negotiated) cannot shrink it much
                body = secrets.token_urlsafe(45_000)
                await hub.publish("tournament:final", {"bracket": body})
                await asyncio.sleep(0)
                while True:  # the reader keeps up
                    try:
                        await asyncio.wait_for(reader.recv(), 0.001)
                    except TimeoutError:
                        break
            deadline = time.monotonic() + 10
            while hub.connection_counts()["open"] > 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert hub.connection_counts() == {"open": 1, "framed": 0 if deflate else 1}, (
                "the stalled client still holds its connection"
            )
            assert reader.close_code is None  # nobody else was slowed down or cut
        stuck.close()


def stalled_subscriber(url: str, port: int, channel: str) -> socket.socket:
    """A websocket client (websockets' sans-I/O protocol on a blocking socket) that
    authenticates, subscribes to ``channel`` and then never reads again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    protocol = ClientProtocol(
        parse_uri(url), origin=page_origin(url), extensions=[ClientPerMessageDeflateFactory()]
    )
    protocol.send_request(protocol.connect())
    frames = [
        '{"v":1,"type":"auth","id":"a","data":{}}',
        f'{{"v":1,"type":"subscribe","id":"s","ch":"{channel}","data":{{}}}}',
    ]
    sock.sendall(b"".join(protocol.data_to_send()))
    texts: list[bytes] = []
    handshake_done = False
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed before the subscription was confirmed")
        protocol.receive_data(data)
        for event in protocol.events_received():
            if not handshake_done:
                handshake_done = True
                for frame in frames:
                    protocol.send_text(frame.encode())
                sock.sendall(b"".join(protocol.data_to_send()))
            else:
                texts.append(event.data)
        if any(b'"type":"subscribed"' in t for t in texts):
            return sock
