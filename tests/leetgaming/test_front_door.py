"""The front door under attack: cross-site websocket hijacking, oversized and compressed
frames, floods, one account's socket count, and half-open handshakes (slowloris), against a
real ``leetgaming serve`` process whose memory is watched throughout."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import zlib
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.http11 import Response
from websockets.typing import Origin
from websockets.uri import parse_uri

from leetgaming.httpguard import REQUEST_HEADERS_TIMEOUT_S, origin_allowed
from leetgaming.tokens import issue_access_token
from realtime.envelope import CloseCode

from ..ws import call, connect, embedded_app, page_origin, serving, unused_port
from .test_cli import environment_without_settings, running_server

SECRET = "front-door-secret-" + "0" * 32
MEMORY_GROWTH_BYTES_MAX = 50 * 1024 * 1024
HALF_OPEN_HANDSHAKES = 200


def test_origin_policy() -> None:
    host = "play.example.com"
    assert origin_allowed("https://play.example.com", host, ())
    assert origin_allowed("HTTP://PLAY.example.com", host, ())  # case does not matter
    assert origin_allowed("https://portal.example.org", host, {"https://portal.example.org"})
    for origin in (
        None,
        "",
        "null",  # sandboxed frames and file:// pages
        "https://evil.example.com",
        "https://play.example.com.evil.com",
        "https://play.example.com@evil.com",
        "https://play.example.com/path",
        "ftp://play.example.com",
    ):
        assert not origin_allowed(origin, host, ()), origin
    assert not origin_allowed("https://play.example.com", None, ())


async def test_a_foreign_or_missing_origin_is_refused_before_accept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = unused_port()
    url = f"ws://127.0.0.1:{port}/ws"
    async with serving(embedded_app(tmp_path, SECRET, port), port):
        for origin in (None, Origin("https://evil.example.com"), Origin("null")):
            with (
                caplog.at_level(logging.WARNING, "leetgaming.security"),
                pytest.raises(InvalidStatus) as refused,
            ):
                async with connect(url, origin=origin):
                    pass
            assert refused.value.response.status_code == 403
            assert any(getattr(r, "event", None) == "ws_origin_refused" for r in caplog.records), (
                "the refusal is a security event"
            )
            caplog.clear()
        async with connect(url) as ws:  # the server's own pages
            assert (await call(ws, type="ping"))["type"] == "pong"


async def test_the_configured_origins_are_allowed(tmp_path: Path) -> None:
    from leetgaming.app import create_app
    from leetgaming.settings import Settings

    port = unused_port()
    settings = Settings.from_env(
        {
            "LEETGAMING_PORT": str(port),
            "LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
            "LEETGAMING_SECRET_KEY": SECRET,
            "LEETGAMING_PUBLIC_URL": "https://play.example.com/",
            "LEETGAMING_ALLOWED_ORIGINS": "https://portal.example.org, http://localhost:5173",
        }
    )
    url = f"ws://127.0.0.1:{port}/ws"
    async with serving(create_app(settings), port):
        for origin in ("https://play.example.com", "https://portal.example.org"):
            async with connect(url, origin=Origin(origin)) as ws:
                assert (await call(ws, type="ping"))["type"] == "pong"
        with pytest.raises(InvalidStatus):
            async with connect(url, origin=Origin("https://example.net")):
                pass


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_raw_websocket(
    port: int, offer_deflate: bool
) -> tuple[socket.socket, ClientProtocol, Response]:
    """A handshake done by hand (websockets' sans-I/O client on a blocking socket), so that
    the test can then write frames no well-behaved client would."""
    url = f"ws://127.0.0.1:{port}/ws"
    extensions = [ClientPerMessageDeflateFactory()] if offer_deflate else None
    protocol = ClientProtocol(parse_uri(url), origin=page_origin(url), extensions=extensions)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    protocol.send_request(protocol.connect())
    sock.sendall(b"".join(protocol.data_to_send()))
    while True:
        data = sock.recv(65536)
        assert data, "closed during the handshake"
        protocol.receive_data(data)
        responses = [e for e in protocol.events_received() if isinstance(e, Response)]
        if responses:
            assert protocol.handshake_exc is None
            return sock, protocol, responses[0]


def close_code_after(sock: socket.socket, protocol: ClientProtocol) -> int | None:
    """Read until the server closes; the close code it sent."""
    sock.settimeout(10)
    while True:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not data:
            break
        protocol.receive_data(data)
    sock.close()
    return protocol.close_rcvd.code if protocol.close_rcvd is not None else None


def masked_frame(first_byte: int, payload: bytes) -> bytes:
    """A client frame (masked with a zero key, which leaves the payload as it is)."""
    length = len(payload)
    if length < 126:
        header = bytes([first_byte, 0x80 | length])
    elif length < 65536:
        header = bytes([first_byte, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([first_byte, 0x80 | 127]) + length.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


async def test_websocket_limits_hold_and_memory_stays_bounded(tmp_path: Path) -> None:
    port = unused_port()
    env = environment_without_settings() | {
        "LEETGAMING_PORT": str(port),
        "LEETGAMING_SECRET_KEY": SECRET,
    }
    url = f"ws://127.0.0.1:{port}/ws"
    with running_server(tmp_path, env) as server:
        pid = server.process.pid
        async with connect(url) as warm:  # the first connection's one-off allocations
            assert (await call(warm, type="ping"))["type"] == "pong"
        before = rss_bytes(pid)

        # 1 MiB frames, five times: closed with 1009 (message too big), never buffered whole.
        for _ in range(5):
            async with connect(url, max_size=None) as ws:
                with pytest.raises(ConnectionClosed):
                    await ws.send("x" * (1024 * 1024))
                    await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1009

        # A compression bomb: deflate offered and declined, then a 15 MiB-inflating frame sent
        # compressed anyway (RSV1 set): a protocol error (1002), nothing inflated.
        bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = bomb.compress(b"\0" * (15 * 1024 * 1024)) + bomb.flush()
        assert len(payload) < 16 * 1024
        for _ in range(5):
            sock, protocol, response = open_raw_websocket(port, offer_deflate=True)
            assert "permessage-deflate" not in (
                response.headers.get("Sec-WebSocket-Extensions") or ""
            )
            sock.sendall(masked_frame(0x80 | 0x40 | 0x1, payload))
            assert await asyncio.to_thread(close_code_after, sock, protocol) == 1002

        # 1,000 messages in one second: closed for flooding.
        async with connect(url) as ws:
            await call(ws, type="auth", id="a")
            ping = orjson.dumps({"v": 1, "type": "ping"}).decode()
            started = time.monotonic()
            with pytest.raises(ConnectionClosed):
                for _ in range(1000):
                    await ws.send(ping)
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert time.monotonic() - started < 10
        assert ws.close_code == CloseCode.FLOOD

        # One account, 51 sockets: the 51st is closed when it authenticates; others are not.
        token = issue_access_token(SECRET, "p-many", "player", "s", int(time.time()))
        sockets = [await connect(url) for _ in range(51)]
        try:
            for ws in sockets[:50]:
                assert (await call(ws, type="auth", id="a", data={"token": token}))[
                    "type"
                ] == "auth_ok"
            with pytest.raises(ConnectionClosed):
                await call(sockets[50], type="auth", id="a", data={"token": token})
                await asyncio.wait_for(sockets[50].recv(), 10)
            assert sockets[50].close_code == CloseCode.TOO_MANY_CONNECTIONS
            other = issue_access_token(SECRET, "p-other", "player", "s", int(time.time()))
            async with connect(url) as ws:
                assert (await call(ws, type="auth", id="a", data={"token": other}))[
                    "type"
                ] == "auth_ok"
            assert (await call(sockets[0], type="ping"))["type"] == "pong"
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))
        async with connect(url) as ws:  # a socket closed frees its place
            assert (await call(ws, type="auth", id="a", data={"token": token}))["type"] == "auth_ok"

        grown = rss_bytes(pid) - before
        assert grown < MEMORY_GROWTH_BYTES_MAX, f"the server grew by {grown / 2**20:.1f} MiB"


def half_open(port: int, request: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(request)
    return sock


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass  # whatever it answers (408, 400) is fine; the close is what counts
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_half_open_handshakes_are_closed_and_others_still_served(tmp_path: Path) -> None:
    port = unused_port()
    env = environment_without_settings() | {
        "LEETGAMING_PORT": str(port),
        "LEETGAMING_SECRET_KEY": SECRET,
    }
    handshake = (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    ).encode()  # ...and never the blank line that ends the headers
    with running_server(tmp_path, env):
        opened = time.monotonic()
        sockets = [half_open(port, handshake) for _ in range(HALF_OPEN_HANDSHAKES)]
        sockets.append(half_open(port, b""))  # connected, nothing sent
        trickle = half_open(port, b"G")  # one byte now and then
        served = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert served.status_code == 200
        for _ in range(3):
            time.sleep(1)
            try:
                trickle.sendall(b"E")
            except OSError:
                break
        sockets.append(trickle)
        deadline = opened + 10
        for sock in sockets:
            assert closed_by_server(sock, max(0.1, deadline - time.monotonic())), (
                "a half-open connection was still open 10 s after it was opened"
            )
            sock.close()
        assert time.monotonic() - opened >= REQUEST_HEADERS_TIMEOUT_S - 0.5
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
