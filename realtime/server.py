"""The websocket shell: drives one :class:`~realtime.session.Session` per connection against
the node's :class:`~realtime.hub.Hub`.

Each connection has a reader (frames in, through the session's rules) and a writer (its
byte-bounded queue out to the socket). Publishing never waits for a socket: a subscriber whose
queue is full is closed with ``SLOW_CONSUMER`` and nobody else slows down. Who a token belongs to
is decided by the ``verify`` function the composition root passes in.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketDisconnect

from .channel import Principal, Role
from .envelope import CloseCode, encode_server_frame
from .hub import Hub, Subscriber
from .session import (
    Close,
    Effect,
    Join,
    Leave,
    Presence,
    Publish,
    Send,
    Session,
    SessionLimits,
    Verify,
)

Verifier = Callable[[str | None], Awaitable[Principal | None]]
SPECTATOR = Principal(Role.SPECTATOR, "")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    idle_timeout_s: float = 60.0  # a client pings at least this often
    session: SessionLimits = field(default_factory=SessionLimits)


class _Connection:
    def __init__(self, node: HubNode, websocket: WebSocket) -> None:
        self.node = node
        self.websocket = websocket
        self.session = Session(opened_s=node.clock(), limits=node.limits.session)
        self.subscriber = Subscriber(SPECTATOR)
        self.ready = asyncio.Event()
        self.subscriber.notify = self.ready.set
        self.close_code: CloseCode | None = None
        self.close_reason = ""

    def close_soon(self, code: CloseCode, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.ready.set()

    async def write_loop(self) -> None:
        queue = self.subscriber.queue
        while True:
            await self.ready.wait()
            self.ready.clear()
            while (frame := queue.pop()) is not None:
                await self.websocket.send_text(frame.decode())
            if self.close_code is not None:
                frame = encode_server_frame(
                    "disconnect",
                    code=int(self.close_code),
                    reason=self.close_reason,
                    reconnect=self.close_code.reconnect,
                )
                with contextlib.suppress(Exception):
                    await self.websocket.send_text(frame.decode())
                    await self.websocket.close(int(self.close_code), self.close_reason)
                return

    def push(self, frame: bytes) -> None:
        if not self.subscriber.queue.push(frame):
            self.close_soon(CloseCode.SLOW_CONSUMER, "send queue full")
        else:
            self.ready.set()

    async def run(self, effects: list[Effect]) -> None:
        node, hub, now = self.node, self.node.hub, self.node.clock()
        for effect in effects:
            if isinstance(effect, Send):
                self.push(effect.frame)
            elif isinstance(effect, Verify):
                principal = await node.verify(effect.token)
                if principal is None:
                    await self.run(self.session.refused(effect.ref))
                else:
                    self.subscriber.principal = principal
                    await self.run(
                        self.session.verified(principal, effect.ref, secrets.token_hex(8))
                    )
            elif isinstance(effect, Join):
                frame, slow = hub.join(
                    self.subscriber,
                    effect.channel,
                    effect.ref,
                    effect.since_offset,
                    effect.since_epoch,
                    now,
                )
                self.push(frame)
                node.cut(slow)
            elif isinstance(effect, Leave):
                node.cut(hub.leave(self.subscriber, effect.channel, now))
            elif isinstance(effect, Publish):
                offset, slow = hub.publish(effect.channel, effect.body, now)
                self.push(
                    encode_server_frame(
                        "published", id=effect.ref, ch=str(effect.channel), offset=offset
                    )
                )
                node.cut(slow)
            elif isinstance(effect, Presence):
                members = hub.presence(effect.channel)
                self.push(
                    encode_server_frame(
                        "presence_result", id=effect.ref, ch=str(effect.channel), members=members
                    )
                )
            elif isinstance(effect, Close):
                self.close_soon(effect.code, effect.reason)

    async def read_loop(self) -> None:
        limits = self.node.limits
        while self.close_code is None:
            authenticating = self.session.principal is None
            timeout = limits.session.auth_timeout_s if authenticating else limits.idle_timeout_s
            try:
                message = await asyncio.wait_for(self.websocket.receive(), timeout)
            except TimeoutError:
                code = CloseCode.UNAUTHORIZED if authenticating else CloseCode.IDLE_TIMEOUT
                await self.run([*self.session.closed(), Close(code, "timeout")])
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text") if message.get("text") is not None else message.get("bytes")
            await self.run(self.session.receive(raw or b"", self.node.clock()))


class HubNode:
    """One process's hub and its websocket endpoint (``await node.serve(websocket)``)."""

    def __init__(
        self,
        verify: Verifier,
        *,
        limits: ServerLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        new_epoch: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> None:
        self.verify = verify
        self.limits = limits or ServerLimits()
        self.clock = clock
        self.hub = Hub(new_epoch=new_epoch)
        self._connections: dict[int, _Connection] = {}

    def cut(self, slow: list[Subscriber]) -> None:
        for subscriber in slow:
            connection = self._connections.get(subscriber.id)
            if connection is not None:
                connection.close_soon(CloseCode.SLOW_CONSUMER, "send queue full")

    def publish(self, channel: str, body: object) -> int:
        """The server-side publish API (this process's hub)."""
        from .channel import parse_channel

        parsed = parse_channel(channel)
        if parsed is None:
            raise ValueError(f"not a channel: {channel!r}")
        offset, slow = self.hub.publish(parsed, body, self.clock())
        self.cut(slow)
        return offset

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        connection = _Connection(self, websocket)
        self._connections[connection.subscriber.id] = connection
        writer = asyncio.create_task(connection.write_loop())
        try:
            await connection.read_loop()
        except WebSocketDisconnect:
            pass
        finally:
            for effect in connection.session.closed():
                if isinstance(effect, Leave):
                    self.cut(self.hub.leave(connection.subscriber, effect.channel, self.clock()))
            self._connections.pop(connection.subscriber.id, None)
            if connection.close_code is None:
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
