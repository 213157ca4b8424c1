"""Calls from clients to methods the application registers, over a real websocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from realtime.channel import Principal, Role
from realtime.server import Credential, HubNode, RpcError
from realtime.session import Call, Session

from ..ws import call, connect, serving


class Echo:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def call(self, principal: Principal, method: str, params: dict[str, Any]) -> object:
        if method == "echo":
            return {"who": principal.subject, "params": params}
        if method == "refuse":
            raise RpcError("unknown_queue", "no queue cs2:9v9:mars", retryable=False)
        if method == "crash":
            raise RuntimeError("a bug with a secret inside")
        raise KeyError(method)

    async def connected(self, principal: Principal) -> None:
        self.events.append(("connected", principal.subject))

    async def disconnected(self, principal: Principal) -> None:
        self.events.append(("disconnected", principal.subject))


async def verify(token: str | None) -> Credential | None:
    if token is None:
        return Credential(Principal(Role.SPECTATOR, ""))
    return Credential(Principal(Role.PLAYER, token))


@pytest.fixture
async def hub() -> AsyncIterator[tuple[str, Echo]]:
    app = Echo()
    node = HubNode(verify, application=app)
    await node.start()
    async with serving(Starlette(routes=[WebSocketRoute("/ws", node.serve)])) as port:
        yield f"ws://127.0.0.1:{port}/ws", app
    await node.stop()


def test_rpc_needs_auth_and_a_sane_method() -> None:
    session = Session(opened_s=0)
    [error] = session.receive(
        orjson.dumps({"v": 1, "type": "rpc", "id": "1", "data": {"method": "x"}}), 0
    )
    assert b"not_authenticated" in error.frame  # type: ignore[union-attr]
    session.receive(orjson.dumps({"v": 1, "type": "auth", "id": "a", "data": {"token": "t"}}), 0)
    session.verified(Principal(Role.PLAYER, "alice"), "a", "s")
    frame = {"v": 1, "type": "rpc", "id": "2", "data": {"method": "queue.join", "params": {"q": 1}}}
    assert session.receive(orjson.dumps(frame), 0) == [Call("queue.join", {"q": 1}, "2")]
    long = {"v": 1, "type": "rpc", "id": "3", "data": {"method": "m" * 65}}
    assert b"bad_field" in session.receive(orjson.dumps(long), 0)[0].frame  # type: ignore[union-attr]


async def test_results_refusals_and_failures(hub: tuple[str, Echo]) -> None:
    url, _ = hub
    async with connect(url) as ws:
        await call(ws, type="auth", id="a", data={"token": "alice"})
        result = await call(ws, type="rpc", id="1", data={"method": "echo", "params": {"n": 1}})
        assert result == {
            "v": 1,
            "type": "rpc_result",
            "id": "1",
            "data": {"result": {"who": "alice", "params": {"n": 1}}},
        }
        refused = await call(ws, type="rpc", id="2", data={"method": "refuse"})
        assert refused["data"] == {
            "code": "unknown_queue",
            "message": "no queue cs2:9v9:mars",
            "retryable": False,
            "ref": "2",
        }
        unknown = await call(ws, type="rpc", id="3", data={"method": "nope"})
        assert unknown["data"]["code"] == "unknown_method"
        crashed = await call(ws, type="rpc", id="4", data={"method": "crash"})
        assert (crashed["data"]["code"], crashed["data"]["retryable"]) == ("internal", True)
        assert "secret" not in crashed["data"]["message"]
        assert (await call(ws, type="rpc", id="5", data={"method": "echo"}))["type"] == "rpc_result"


async def test_the_application_hears_of_first_and_last_connections(hub: tuple[str, Echo]) -> None:
    url, app = hub
    async with connect(url) as first:
        await call(first, type="auth", id="a", data={"token": "bob"})
        async with connect(url) as second:
            await call(second, type="auth", id="a", data={"token": "bob"})
        await asyncio.sleep(0.1)
        assert app.events == [("connected", "bob")]  # the second one's close is not the last
    for _ in range(50):
        if len(app.events) == 2:
            break
        await asyncio.sleep(0.02)
    assert app.events == [("connected", "bob"), ("disconnected", "bob")]
