"""Heartbeats, the idle timeout and token expiry over a real websocket (embedded hub)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.exceptions import ConnectionClosed

from realtime.channel import Principal, Role
from realtime.server import Credential, HubNode, ServerLimits

from ..ws import call, connect, receive, serving

TOKEN_TTL_S = 1.0


async def verify(token: str | None) -> Credential | None:
    if token is None:
        return Credential(Principal(Role.SPECTATOR, ""))
    return Credential(Principal(Role.PLAYER, token), time.time() + TOKEN_TTL_S)


@pytest.fixture
async def url() -> AsyncIterator[str]:
    limits = ServerLimits(idle_timeout_s=1.0, ping_interval_s=0.3, tick_interval_s=0.05)
    hub = HubNode(verify, limits=limits)
    await hub.start()
    async with serving(Starlette(routes=[WebSocketRoute("/ws", hub.serve)])) as port:
        yield f"ws://127.0.0.1:{port}/ws"
    await hub.stop()


async def test_the_server_pings_and_a_client_that_answers_stays(url: str) -> None:
    async with connect(url) as ws:
        await call(ws, type="auth", id="a")  # a spectator: no token to expire
        started = time.monotonic()
        pings = 0
        while time.monotonic() - started < 2.0:  # twice the idle timeout
            frame = await receive(ws)
            assert frame["type"] == "ping"
            pings += 1
            await ws.send('{"v":1,"type":"pong"}')
        assert pings >= 4
        assert (await call(ws, type="ping"))["type"] in ("pong", "ping")


async def test_a_silent_client_is_closed_for_idleness(url: str) -> None:
    async with connect(url) as ws:
        await call(ws, type="auth", id="a")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = await receive(ws)
                if frame["type"] == "disconnect":
                    assert (frame["data"]["code"], frame["data"]["reconnect"]) == (4002, True)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4002


async def test_a_token_must_be_refreshed_before_it_expires(url: str) -> None:
    async with connect(url) as ws:
        await call(ws, type="auth", id="a", data={"token": "alice"})
        await asyncio.sleep(TOKEN_TTL_S * 0.6)
        refreshed = await call(ws, type="refresh", id="r", data={"token": "alice"})
        while refreshed["type"] == "ping":
            refreshed = await receive(ws)
        assert refreshed["type"] == "refreshed" and refreshed["data"]["expires_in"] in (0, 1)
        refused = await call(ws, type="refresh", id="r2", data={"token": "bob"})
        while refused["type"] == "ping":
            refused = await receive(ws)
        assert refused["data"]["code"] == "bad_token"
        await asyncio.sleep(TOKEN_TTL_S * 0.6)  # past the first token's expiry: still open
        await ws.send('{"v":1,"type":"pong"}')
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = await receive(ws)
                if frame["type"] == "disconnect":
                    assert frame["data"]["code"] == 4003
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
