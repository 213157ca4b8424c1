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
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis
from starlette.websockets import WebSocket, WebSocketDisconnect

from .channel import Channel, Principal, Role, announces_presence, parse_channel
from .envelope import CloseCode, ErrorCode, encode_server_frame, refusal_frame
from .hub import Hub, Subscriber, subscribed_frame
from .presence import NODE_TTL_S, MemoryPresence, PresenceStore, RedisConnectionCounts
from .relay import RelayChannels, RelaySubscriptionError
from .session import (
    Call,
    Close,
    Denied,
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
from .streams import MemoryStreams, StreamStore
from .wire import WIRE_SCOPE_KEY, Wire

SPECTATOR = Principal(Role.SPECTATOR, "")
log = logging.getLogger("leetgaming.hub")
# the product's security event log (see leetgaming.security): refusals, with their actor
security_log = logging.getLogger("leetgaming.security")


@dataclass(frozen=True, slots=True)
class Credential:
    """Who a token belongs to, and until when (wall-clock seconds; None: no expiry)."""

    principal: Principal
    expires_at_unix_s: float | None = None
    session: str = ""  # the sign-in session it belongs to (HubNode.revoke_session closes it)


Verifier = Callable[[str | None], Awaitable[Credential | None]]


class RpcError(Exception):
    """An application's refusal of an ``rpc``: sent as an ``error`` frame with its code."""

    def __init__(self, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class Application(Protocol):
    """What the composition root plugs into the hub: its ``rpc`` methods, and who comes and
    goes (a player's first connection on this node, and their last one closing)."""

    async def call(self, principal: Principal, method: str, params: dict[str, Any]) -> object:
        """The result of ``method``; raises :class:`RpcError` to refuse, ``KeyError`` when
        there is no such method."""
        ...

    async def connected(self, principal: Principal) -> None: ...

    async def disconnected(self, principal: Principal) -> None: ...


RELAY_RETRY_S = 0.5  # after the relay's connection to Redis is lost, listen again this soon


@dataclass(frozen=True, slots=True)
class ServerLimits:
    idle_timeout_s: float = 60.0  # nothing received for this long: closed (IDLE_TIMEOUT)
    ping_interval_s: float = 25.0  # the server's heartbeat; clients answer pong
    tick_interval_s: float = 1.0  # how often token expiry and auth timeouts are checked
    send_stall_s: float = 10.0  # one send blocked this long (the client reads nothing): dropped
    close_grace_s: float = 5.0  # a closing connection still there after this: dropped
    calls_in_flight_max: int = 16  # rpc calls of one connection running at once
    # one account's authenticated connections open at once (on every node, with Redis
    # connection counts); the next is closed (TOO_MANY_CONNECTIONS) when it authenticates
    connections_per_user_max: int = 50
    session: SessionLimits = field(default_factory=SessionLimits)


class _Connection:
    """One websocket. Frames for it wait in its subscriber's byte-bounded queue. On the fast
    path (a :class:`~realtime.wire.Wire` that frames) everything queued in one turn of the
    event loop goes to the transport in one write, and the queue plus what the transport still
    buffers is what the 1 MiB bound applies to; otherwise a writer task sends each frame
    through ASGI. Either way the writer task sends the final ``disconnect`` and close."""

    def __init__(self, node: HubNode, websocket: WebSocket) -> None:
        self.node = node
        self.websocket = websocket
        self.wire: Wire | None = websocket.scope.get(WIRE_SCOPE_KEY)
        self.framing = False  # frames go straight to the wire (set once accepted)
        self.flush_due = False  # on the node's list of connections to flush this turn
        self.session = Session(opened_s=node.clock(), limits=node.limits.session)
        self.subscriber = Subscriber(SPECTATOR)
        self.session_id = ""  # the sign-in session of the token it authenticated with
        self.ready = asyncio.Event()
        self.subscriber.notify = self.ready.set
        self.close_code: CloseCode | None = None
        self.close_reason = ""
        self.closing_since: float | None = None
        self.sending_since: float | None = None  # set while a send waits for the socket
        self.writer: asyncio.Task[None] | None = None
        # rpc calls run beside the read loop, at most calls_in_flight_max at once: a game
        # server's results do not wait for each other, and a client cannot start unbounded work
        self.call_slots = asyncio.Semaphore(node.limits.calls_in_flight_max)
        self.calls: set[asyncio.Task[None]] = set()

    def close_soon(self, code: CloseCode, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self.closing_since = self.node.clock()
        self.ready.set()

    def stalled(self, now: float) -> bool:
        """The client stopped reading (a send blocked, or on the fast path the transport's
        buffer not empty, for ``send_stall_s``), or a close is overdue."""
        limits = self.node.limits
        if self.framing and self.wire is not None:
            if self.wire.buffered_bytes() == 0:
                self.sending_since = None
            elif self.sending_since is None:
                self.sending_since = now
        return (
            self.sending_since is not None and now - self.sending_since > limits.send_stall_s
        ) or (self.closing_since is not None and now - self.closing_since > limits.close_grace_s)

    def drop(self) -> None:
        """Cut the connection now, buffers and all (or, with no way to, stop writing)."""
        if self.wire is not None:
            self.wire.abort()
        elif self.writer is not None:
            self.writer.cancel()

    def use_framing(self) -> None:
        """Once accepted: write frames straight to the wire if it frames exactly as the
        websocket library would."""
        if self.wire is not None and self.wire.framing():
            self.framing = True
            self.subscriber.notify = self.wake

    def wake(self) -> None:
        if not self.flush_due:
            self.flush_due = True
            self.node.flush_soon(self)

    def flush(self) -> None:
        """Hand what is queued to the wire, unless closing (the writer finishes then) or the
        client has fallen 1 MiB behind (then it is cut as a slow consumer)."""
        self.flush_due = False
        if self.close_code is None:
            self._write_queued()

    def _write_queued(self) -> None:
        queue, wire = self.subscriber.queue, self.wire
        if not queue.frames or wire is None:
            return
        if wire.transport.is_closing():
            queue.take_all()
        elif wire.buffered_bytes() + queue.size_bytes > queue.bytes_max:
            queue.take_all()
            self.subscriber.slow = True
            self.close_soon(CloseCode.SLOW_CONSUMER, "send queue full")
        else:
            wire.write_texts(queue.take_all())

    async def write_loop(self) -> None:
        queue = self.subscriber.queue
        clock = self.node.clock
        while True:
            await self.ready.wait()
            self.ready.clear()
            if self.framing:
                if self.subscriber.slow:
                    queue.take_all()  # it is not reading: no point buffering more
                elif self.close_code is not None:
                    self._write_queued()  # before the disconnect frame, in order
            else:
                while (frame := queue.pop()) is not None:
                    self.sending_since = clock()
                    await self.websocket.send_text(frame.decode())
                    self.sending_since = None
            if self.close_code is not None:
                frame = encode_server_frame(
                    "disconnect",
                    code=int(self.close_code),
                    reason=self.close_reason,
                    reconnect=self.close_code.reconnect,
                )
                with contextlib.suppress(Exception):
                    if self.framing and self.wire is not None and self.wire.framing():
                        # right behind what is buffered, whatever the backpressure: a client
                        # that reads again finds why it was cut
                        self.wire.write_texts([frame])
                    else:
                        await self.websocket.send_text(frame.decode())
                    await self.websocket.close(int(self.close_code), self.close_reason)
                return

    def push(self, frame: bytes) -> None:
        if not self.subscriber.queue.push(frame):
            self.close_soon(CloseCode.SLOW_CONSUMER, "send queue full")
        else:
            self.subscriber.notify()

    async def run(self, effects: list[Effect]) -> None:
        node, hub, now = self.node, self.node.hub, self.node.clock()
        for effect in effects:
            if isinstance(effect, Send):
                self.push(effect.frame)
            elif isinstance(effect, Verify):
                credential = await node.verify(effect.token)
                expires = None if credential is None else node.deadline(credential)
                if effect.refresh:
                    principal = None if credential is None else credential.principal
                    await self.run(
                        self.session.refreshed(principal, effect.ref, expires or 0.0, node.clock())
                    )
                elif credential is None:
                    await self.run(self.session.refused(effect.ref))
                elif not await node.arrived(credential.principal):
                    node.denied(credential.principal, "connect", "", event="ws_connections_max")
                    self.close_soon(CloseCode.TOO_MANY_CONNECTIONS, "too many connections")
                else:
                    self.subscriber.principal = credential.principal
                    self.session_id = credential.session
                    await self.run(
                        self.session.verified(
                            credential.principal, effect.ref, secrets.token_hex(8), expires
                        )
                    )
                    await node.connected(credential.principal)
            elif isinstance(effect, Join):
                # Deliveries start before history is read, held by the hub until the answer
                # is queued: nothing published in between is missed or comes twice.
                node.cut(hub.add(self.subscriber, effect.channel))
                try:
                    await node.follow(effect.channel)
                except (RelaySubscriptionError, aioredis.RedisError):
                    log.warning("relay subscription failed", extra={"channel": str(effect.channel)})
                    node.cut(hub.leave(self.subscriber, effect.channel))
                    with contextlib.suppress(Exception):
                        await node.unfollow(effect.channel)
                    await self.run(self.session.join_failed(effect.channel, effect.ref))
                    continue
                await node.member_joined(self.subscriber, effect.channel)
                asked = effect.since_offset is not None and effect.since_epoch is not None
                recovery = await node.streams.recover(
                    str(effect.channel),
                    effect.since_offset if asked and effect.since_offset is not None else 0,
                    effect.since_epoch if asked and effect.since_epoch is not None else "",
                    now,
                )
                self.push(subscribed_frame(effect.ref, effect.channel, recovery, asked))
                for frame in hub.joined(self.subscriber, effect.channel, recovery.offset):
                    self.push(frame)
            elif isinstance(effect, Leave):
                node.cut(hub.leave(self.subscriber, effect.channel))
                await node.member_left(self.subscriber, effect.channel)
            elif isinstance(effect, Publish):
                offset = await node.publish_to(effect.channel, effect.body)
                self.push(
                    encode_server_frame(
                        "published", id=effect.ref, ch=str(effect.channel), offset=offset
                    )
                )
            elif isinstance(effect, Presence):
                members = await node.presence.members(str(effect.channel))
                self.push(
                    encode_server_frame(
                        "presence_result", id=effect.ref, ch=str(effect.channel), members=members
                    )
                )
            elif isinstance(effect, Call):
                await self.call_slots.acquire()  # the read loop waits when all are taken
                task = asyncio.create_task(self._call(effect))
                self.calls.add(task)
                task.add_done_callback(self.calls.discard)
            elif isinstance(effect, Close):
                self.close_soon(effect.code, effect.reason)
            elif isinstance(effect, Denied):
                node.denied(self.subscriber.principal, effect.action, effect.channel)

    async def _call(self, effect: Call) -> None:
        try:
            self.push(await self.node.call(self.subscriber.principal, effect))
        finally:
            self.call_slots.release()

    async def read_loop(self) -> None:
        limits = self.node.limits
        while self.close_code is None:
            authenticating = self.session.principal is None
            timeout = limits.session.auth_timeout_s if authenticating else limits.idle_timeout_s
            try:
                async with asyncio.timeout(timeout):  # no task per frame, as wait_for makes
                    message = await self.websocket.receive()
            except TimeoutError:
                code = CloseCode.UNAUTHORIZED if authenticating else CloseCode.IDLE_TIMEOUT
                await self.run([*self.session.closed(), Close(code, "timeout")])
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text") if message.get("text") is not None else message.get("bytes")
            await self.run(self.session.receive(raw or b"", self.node.clock()))


def _info(subscriber: Subscriber) -> dict[str, str]:
    return {"subject": subscriber.principal.subject, "role": str(subscriber.principal.role)}


class HubNode:
    """One process's hub and its websocket endpoint (``await node.serve(websocket)``).

    With :class:`~realtime.streams.MemoryStreams` (the embedded default) a publication is
    delivered here directly. With Redis (``relay=True``) every node, this one included, gets
    the frames of the channels it has subscribers for from Redis pub/sub (:meth:`start`
    listens, :meth:`follow` subscribes) and delivers them to its own subscribers, so a client
    sees what any process publishes, in offset order.
    """

    def __init__(
        self,
        verify: Verifier,
        *,
        streams: StreamStore | None = None,
        relay: aioredis.Redis | None = None,
        relay_prefix: str = "",
        presence: PresenceStore | None = None,
        connection_counts: RedisConnectionCounts | None = None,
        node_id: str | None = None,
        limits: ServerLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        application: Application | None = None,
    ) -> None:
        self.verify = verify
        self.application = application
        self._present: dict[tuple[str, str], int] = {}  # (role, subject) -> open connections
        self._counts = connection_counts  # the same counts, per node, for every node to read
        self._stale_counts: set[tuple[str, str]] = set()  # writes to Redis that failed
        self.limits = limits or ServerLimits()
        self.clock = clock
        self.hub = Hub()
        self.streams: StreamStore = streams or MemoryStreams()
        self._relay = relay
        self.presence: PresenceStore = presence or MemoryPresence()
        self.node_id = node_id or secrets.token_hex(6)  # the same id its presence store uses
        self._heartbeat: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._relay_prefix = relay_prefix
        # the relay's names as Redis sends them (bytes), for each message it delivers
        self._publications = f"{relay_prefix}pub:".encode()
        self._announcements = f"{relay_prefix}pres:".encode()
        self._own_announcement = self.node_id.encode() + b"|"
        self._control_name = self._control_channel.encode()
        self._listener: asyncio.Task[None] | None = None
        self._following: RelayChannels | None = None  # with a relay, once started
        self._connections: dict[int, _Connection] = {}
        self._to_flush: list[_Connection] = []
        self._draining = False
        # Told, for each publication, how long delivering it to every local subscriber took
        # (seconds, on this node's loop: queueing and, on the fast path, the socket writes;
        # otherwise the writes happen afterwards in each connection's writer) and to how many.
        self.observe_fanout: Callable[[float, int], None] | None = None

    def connection_counts(self) -> dict[str, int]:
        """Open websocket connections, and how many of them take frames straight on the
        wire (the rest go through ASGI sends)."""
        connections = self._connections.values()
        return {"open": len(connections), "framed": sum(c.framing for c in connections)}

    def flush_soon(self, connection: _Connection) -> None:
        """Write ``connection``'s queue at the end of this turn of the loop, with everything
        else queued for it by then (one write, not one per frame)."""
        if not self._to_flush:
            asyncio.get_running_loop().call_soon(self._flush)
        self._to_flush.append(connection)

    def _flush(self) -> None:
        connections, self._to_flush = self._to_flush, []
        for connection in connections:
            connection.flush()

    async def call(self, principal: Principal, call: Call) -> bytes:
        """Run an ``rpc``: its ``rpc_result`` frame, or the ``error`` frame of its refusal."""
        if self.application is None:
            return refusal_frame(str(ErrorCode.UNKNOWN_METHOD), "no such method", False, call.ref)
        try:
            result = await self.application.call(principal, call.method, call.params)
        except RpcError as refused:
            if refused.code == str(ErrorCode.FORBIDDEN):
                self.denied(principal, "rpc", call.method)
            return refusal_frame(refused.code, str(refused), refused.retryable, call.ref)
        except KeyError:
            return refusal_frame(str(ErrorCode.UNKNOWN_METHOD), "no such method", False, call.ref)
        except Exception:
            log.exception("rpc failed", extra={"method": call.method})
            return refusal_frame(str(ErrorCode.INTERNAL), "internal error", True, call.ref)
        return encode_server_frame("rpc_result", id=call.ref, result=result)

    def denied(
        self, principal: Principal, action: str, target: str, event: str = "access_denied"
    ) -> None:
        """A security event: ``principal`` was refused ``action`` on ``target``."""
        security_log.warning(
            event,
            extra={
                "event": event,
                "actor": principal.subject or "anonymous",
                "role": str(principal.role),
                "outcome": "denied",
                "action": action,
                "target": target[:200],
            },
        )

    async def arrived(self, principal: Principal) -> bool:
        """Count a verified connection of ``principal``, unless the account already has
        ``connections_per_user_max`` open: here, or (with Redis counts) on all nodes together.
        Redis away: only this node's count is held to the cap."""
        key = (str(principal.role), principal.subject)
        count = self._present.get(key, 0) + 1
        if principal.subject and count > self.limits.connections_per_user_max:
            return False
        self._present[key] = count  # taken before awaiting: concurrent arrivals see it
        if not principal.subject or self._counts is None:
            return True
        who = f"{key[0]}:{key[1]}"
        try:
            if await self._counts.admit(who, count, self.limits.connections_per_user_max):
                return True
        except aioredis.RedisError:
            self._stale_counts.add(key)
            return True
        await self._forget(key)
        return False

    async def connected(self, principal: Principal) -> None:
        """The application hears of an account's first connection (on this node)."""
        key = (str(principal.role), principal.subject)
        if self._present.get(key) == 1 and self.application is not None and principal.subject:
            await self.application.connected(principal)

    async def departed(self, principal: Principal) -> None:
        key = (str(principal.role), principal.subject)
        if await self._forget(key) == 0 and self.application is not None and principal.subject:
            await self.application.disconnected(principal)

    async def _forget(self, key: tuple[str, str]) -> int:
        """One connection of ``key`` fewer: the count left (written to Redis, or retried)."""
        left = max(0, self._present.get(key, 0) - 1)
        if left:
            self._present[key] = left
        else:
            self._present.pop(key, None)
        if self._counts is not None and key[1]:
            try:
                await self._counts.set(f"{key[0]}:{key[1]}", left)
            except aioredis.RedisError:
                self._stale_counts.add(key)
        return left

    async def _resync_counts(self) -> None:
        """Write again the counts whose last write failed (each is a plain set)."""
        if self._counts is None:
            return
        for key in list(self._stale_counts):
            await self._counts.set(f"{key[0]}:{key[1]}", self._present.get(key, 0))
            self._stale_counts.discard(key)

    def deadline(self, credential: Credential) -> float | None:
        """A credential's expiry on this node's clock."""
        if credential.expires_at_unix_s is None:
            return None
        return self.clock() + (credential.expires_at_unix_s - time.time())

    async def _tick(self) -> None:
        """Token expiry and auth timeouts every ``tick_interval_s``; the heartbeat ping (one
        frame for every connection) every ``ping_interval_s``."""
        limits = self.limits
        ping = encode_server_frame("ping")
        next_ping = self.clock() + limits.ping_interval_s
        while True:
            await asyncio.sleep(limits.tick_interval_s)
            now = self.clock()
            send_ping = now >= next_ping
            if send_ping:
                next_ping = now + limits.ping_interval_s
            for connection in list(self._connections.values()):
                if connection.stalled(now):
                    connection.drop()
                    continue
                effects = connection.session.tick(now)
                if effects:
                    await connection.run(effects)
                elif send_ping and connection.close_code is None:
                    connection.push(ping)

    async def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())
        if self._relay is not None and self._listener is None:
            pubsub = await self._new_pubsub()
            self._following = RelayChannels(pubsub)
            self._listener = asyncio.create_task(self._listen(pubsub, self._following))
        if self._heartbeat is None:
            await self.presence.heartbeat()
            self._heartbeat = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(NODE_TTL_S / 3)
            with contextlib.suppress(Exception):  # Redis away: presence expires, as it should
                await self.presence.heartbeat()
                await self._resync_counts()

    async def stop(self) -> None:
        for task in (self._ticker, self._heartbeat, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._ticker = self._heartbeat = self._listener = None
        self._following = None

    @property
    def _control_channel(self) -> str:
        return f"{self._relay_prefix}ctl:revoke"

    async def revoke_session(self, session: str) -> int:
        """Close every websocket of sign-in session ``session`` (SESSION_REVOKED), on this
        node and, through the relay, on every other; how many were closed here."""
        closed = self._close_session(session)
        if self._relay is not None and session:
            await self._relay.publish(self._control_channel, session.encode())
        return closed

    def _close_session(self, session: str) -> int:
        closed = 0
        for connection in list(self._connections.values()):
            if session and connection.session_id == session and connection.close_code is None:
                connection.close_soon(CloseCode.SESSION_REVOKED, "signed out: sign in again")
                closed += 1
        return closed

    def _relay_name(self, channel: Channel) -> bytes:
        return f"{self._relay_prefix}pub:{channel}".encode()

    async def follow(self, channel: Channel) -> None:
        """Take ``channel``'s publications from the relay (a no-op without one): returns
        once Redis has confirmed, so anything published from then on reaches this node."""
        if self._following is not None:
            await self._following.want(self._relay_name(channel))

    async def unfollow(self, channel: Channel) -> None:
        if self._following is not None and channel not in self.hub.members:
            await self._following.drop(self._relay_name(channel))

    def connections_open(self) -> int:
        """How many websocket connections this node holds."""
        return len(self._connections)

    def following(self) -> int:
        """How many channels this node takes publications for from the relay."""
        return 0 if self._following is None else len(self._following)

    async def _new_pubsub(self) -> Any:
        """A pub/sub connection on the relay's patterns: presence announcements (few, small
        channels only) and the control channel (sessions revoked on another process).
        Publications come by channel, only those with local subscribers (:meth:`follow`)."""
        assert self._relay is not None
        pubsub: Any = self._relay.pubsub()
        try:
            await pubsub.psubscribe(f"{self._relay_prefix}pres:*", self._control_channel)
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        return pubsub

    async def _listen(self, pubsub: Any, following: RelayChannels) -> None:
        """Take the relay's messages for as long as the node runs. When the connection to
        Redis is lost (or the pub/sub object fails in any way), a new pub/sub connection is
        opened once Redis answers, with the patterns and every followed channel subscribed
        again; then every local client is told to reconnect and recover (``SHUTDOWN``),
        since what was published meanwhile never reached this node: recovery gives it from
        the stream, or says it cannot (Redis restarted empty), and the client fetches the
        state afresh."""
        lost = False
        try:
            while True:
                try:
                    if pubsub is None:
                        pubsub = await self._new_pubsub()
                        await following.rebind(pubsub)
                    async for message in pubsub.listen():
                        if lost:
                            lost = False
                            self._relay_back()
                        self._relayed(message, following)
                    if following.wanted():
                        raise ConnectionError("the relay stopped listening")
                    return  # nothing subscribed any more: the node stops
                except Exception as cut:
                    if not lost:
                        log.warning("relay connection lost", extra={"error": type(cut).__name__})
                    lost = True
                    if pubsub is not None:
                        with contextlib.suppress(Exception):
                            await pubsub.aclose()
                    pubsub = None
                    await asyncio.sleep(RELAY_RETRY_S)
        finally:
            if pubsub is not None:
                await pubsub.aclose()

    def _relay_back(self) -> None:
        log.warning("relay connection back: clients reconnect and recover")
        for connection in list(self._connections.values()):
            connection.close_soon(CloseCode.SHUTDOWN, "messages may be lost: reconnect and recover")

    def _relayed(self, message: dict[str, Any], following: RelayChannels) -> None:
        """One message of the relay: a publication, a subscription's confirmation, a
        session revoked elsewhere, or another node's presence announcement."""
        kind, name = message.get("type"), message["channel"]
        if kind == "message":
            if name not in following:
                return  # its last local subscriber left: unsubscribing
            channel = parse_channel(name[len(self._publications) :].decode())
            if channel is not None:
                self._fan_out(channel, bytes(message["data"]))
        elif kind == "subscribe":
            following.confirmed(name)
        elif kind == "pmessage" and name == self._control_name:
            self._close_session(bytes(message["data"]).decode(errors="replace"))
        elif kind == "pmessage" and name.startswith(self._announcements):
            data = bytes(message["data"])
            if data.startswith(self._own_announcement):
                return
            channel = parse_channel(name[len(self._announcements) :].decode())
            if channel is not None:
                self.cut(self.hub.deliver(channel, data.split(b"|", 1)[1]))

    async def drain(self, timeout_s: float) -> int:
        """Tell every client to reconnect elsewhere (``SHUTDOWN``, reconnect and recover) and
        wait, at most ``timeout_s``, for them to go; returns how many were still there."""
        self._draining = True
        for connection in list(self._connections.values()):
            connection.close_soon(CloseCode.SHUTDOWN, "server restarting: reconnect and recover")
        deadline = self.clock() + timeout_s
        while self._connections and self.clock() < deadline:
            await asyncio.sleep(0.02)
        return len(self._connections)

    async def member_joined(self, subscriber: Subscriber, channel: Channel) -> None:
        await self.presence.add(str(channel), str(subscriber.id), _info(subscriber))
        await self._announce("join", subscriber, channel)

    async def member_left(self, subscriber: Subscriber, channel: Channel) -> None:
        await self.unfollow(channel)
        await self.presence.remove(str(channel), str(subscriber.id))
        await self._announce("leave", subscriber, channel)

    async def _announce(self, kind: str, subscriber: Subscriber, channel: Channel) -> None:
        """Tell the other nodes' subscribers (this node's were told by the hub)."""
        members = len(self.hub.members.get(channel, ()))
        if self._relay is None or not announces_presence(subscriber.principal, channel, members):
            return
        frame = encode_server_frame(kind, ch=str(channel), **_info(subscriber))
        await self._relay.publish(
            f"{self._relay_prefix}pres:{channel}", self.node_id.encode() + b"|" + frame
        )

    def cut(self, slow: list[Subscriber]) -> None:
        for subscriber in slow:
            connection = self._connections.get(subscriber.id)
            if connection is not None:
                connection.close_soon(CloseCode.SLOW_CONSUMER, "send queue full")

    async def publish(self, channel: str, body: object) -> int:
        """The server-side publish API; returns the publication's offset."""
        parsed = parse_channel(channel)
        if parsed is None:
            raise ValueError(f"not a channel: {channel!r}")
        return await self.publish_to(parsed, body)

    async def publish_to(self, channel: Channel, body: object) -> int:
        offset, _epoch, frame = await self.streams.publish(str(channel), body, self.clock())
        if self._relay is None:
            self._fan_out(channel, frame)
        return offset

    async def publish_many(self, items: Sequence[tuple[str, object]]) -> list[int]:
        """Publish each (channel, body) in order, as :meth:`publish` one after the other
        would, in one round trip to the broker; returns their offsets."""
        channels = [parse_channel(channel) for channel, _ in items]
        for (name, _), parsed in zip(items, channels, strict=True):
            if parsed is None:
                raise ValueError(f"not a channel: {name!r}")
        published = await self.streams.publish_many(
            [(str(c), body) for c, (_, body) in zip(channels, items, strict=True)], self.clock()
        )
        if self._relay is None:
            for channel, (_, _, frame) in zip(channels, published, strict=True):
                assert channel is not None
                self._fan_out(channel, frame)
        return [offset for offset, _, _ in published]

    def _fan_out(self, channel: Channel, frame: bytes) -> None:
        """Deliver one publication to this node's subscribers, timed when observed."""
        observe = self.observe_fanout
        if observe is None:
            self.cut(self.hub.deliver(channel, frame))
            return
        started = time.perf_counter()
        slow = self.hub.deliver(channel, frame)
        self._flush()  # timed with the writes
        observe(time.perf_counter() - started, len(self.hub.members.get(channel, ())))
        self.cut(slow)

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if self._draining:
            await websocket.close(int(CloseCode.SHUTDOWN), "server restarting")
            return
        connection = _Connection(self, websocket)
        connection.use_framing()
        self._connections[connection.subscriber.id] = connection
        writer = connection.writer = asyncio.create_task(connection.write_loop())
        try:
            await connection.read_loop()
        except WebSocketDisconnect:
            pass
        finally:
            if connection.calls:  # what the client asked for is done, even if it left
                await asyncio.gather(*connection.calls, return_exceptions=True)
            for effect in connection.session.closed():
                if isinstance(effect, Leave):
                    self.cut(self.hub.leave(connection.subscriber, effect.channel))
                    with contextlib.suppress(Exception):
                        await self.member_left(connection.subscriber, effect.channel)
            self._connections.pop(connection.subscriber.id, None)
            if connection.session.principal is not None:
                with contextlib.suppress(Exception):
                    await self.departed(connection.session.principal)
            if connection.close_code is None:
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
