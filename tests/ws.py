"""Helpers for tests that talk to the hub over a real websocket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websockets_connect
from websockets.typing import Origin

from leetgaming.httpguard import GuardedHttpToolsProtocol
from realtime.envelope import protocol_schema

SERVER_FRAMES = jsonschema.Draft202012Validator({**protocol_schema(), "$ref": "#/$defs/server"})
RECEIVE_TIMEOUT_S = 5.0


def embedded_app(tmp_path: Path, secret: str, port: int) -> Starlette:
    """The product on its embedded defaults (SQLite under ``tmp_path``, in-process broker)."""
    from leetgaming.app import create_app
    from leetgaming.settings import Settings

    settings = Settings.from_env(
        {
            "LEETGAMING_PORT": str(port),
            "LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
            "LEETGAMING_SECRET_KEY": secret,
        }
    )
    return create_app(settings)


def page_origin(ws_url: str) -> Origin:
    """The Origin a browser sends from a page of the server at ``ws_url`` (its own)."""
    scheme, rest = ws_url.split("://", 1)
    return Origin(("https" if scheme == "wss" else "http") + "://" + rest.split("/", 1)[0])


def connect(url: str, **options: Any) -> websockets_connect:
    """``websockets``' connect, from a page of the server's own origin (the server refuses a
    handshake without an allowed Origin)."""
    options.setdefault("origin", page_origin(url))
    return websockets_connect(url, **options)


def unused_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next frame, checked against the protocol's schema."""
    frame = orjson.loads(await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_S))
    SERVER_FRAMES.validate(frame)
    return frame  # type: ignore[no-any-return]


async def call(ws: ClientConnection, **frame: Any) -> dict[str, Any]:
    """Send one frame (``v`` added) and return the next frame received."""
    await ws.send(orjson.dumps({"v": 1, **frame}).decode())
    return await receive(ws)


async def until(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next frame of type ``kind``, skipping others."""
    while True:
        frame = await receive(ws)
        if frame["type"] == kind:
            return frame


@asynccontextmanager
async def serving(
    app: ASGIApp, port: int | None = None, *, deflate: bool = False
) -> AsyncIterator[int]:
    """``app`` under a real uvicorn server on 127.0.0.1 (with its lifespan), configured as
    ``leetgaming serve`` runs it (no permessage-deflate unless ``deflate``); yields the port."""
    port = port or unused_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            http=GuardedHttpToolsProtocol,
            ws="websockets-sansio",
            ws_per_message_deflate=deflate,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await task
