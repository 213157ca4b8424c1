"""One websocket connection's session: a sans-I/O state machine.

The shell (the websocket endpoint) feeds it frames and time, and carries out the effects it
returns: frames to send, channels to join or leave in the hub, tokens to verify, a close.
It owns no socket, no clock and no broker.

States and transitions (anything else is a protocol error, never a silent no-op):

    AWAITING_AUTH --auth frame--> AUTHENTICATING --verified--> OPEN --close--> CLOSED
                                   \\--refused--> AWAITING_AUTH (error frame)
    AWAITING_AUTH --auth_timeout_s--> CLOSED (UNAUTHORIZED)
    OPEN --refresh frame--> OPEN (the token's expiry moves; same subject and role only)
    OPEN --the token expired, no refresh--> CLOSED (SESSION_EXPIRED: refresh, reconnect)
    any state --too many bad frames / flood--> CLOSED

Lobby chat: a player's (or admin's) ``publish`` to a ``lobby:`` channel carries ``{"text": …}``
(1..``chat_chars_max`` characters, nothing else); the publication's body names the sender
(``{"from": subject, "text": …}``), so nobody can speak for someone else. Chat has its own rate
(``chat_messages_per_s``, burst ``chat_burst``; admins, who moderate and announce, only have
the connection's rate): over it, a retryable ``rate_limited`` error.

Limits: ``frame_bytes_max``, ``subscriptions_max``, a message rate (token bucket), a number of
bad frames tolerated, the time to authenticate. A game server's connection carries every match
it hosts (up to 64: their results and live updates), so once authenticated it has a rate of
its own (``server_messages_per_s``, burst ``server_messages_burst``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .channel import (
    Channel,
    Namespace,
    Principal,
    Role,
    may_publish,
    may_subscribe,
    parse_channel,
)
from .envelope import (
    FRAME_BYTES_MAX,
    ClientMessage,
    CloseCode,
    ErrorCode,
    ProtocolError,
    decode_client_frame,
    encode_server_frame,
    error_frame,
    refusal_frame,
)
from .limits import TokenBucket

METHOD_CHARS_MAX = 64


class State(enum.Enum):
    AWAITING_AUTH = "awaiting_auth"
    AUTHENTICATING = "authenticating"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SessionLimits:
    frame_bytes_max: int = FRAME_BYTES_MAX
    subscriptions_max: int = 128
    messages_per_s: float = 20.0
    messages_burst: float = 40.0
    bad_frames_max: int = 10
    auth_timeout_s: float = 10.0
    chat_chars_max: int = 500
    chat_messages_per_s: float = 1.0
    chat_burst: float = 5.0
    server_messages_per_s: float = 256.0
    server_messages_burst: float = 512.0


# Effects for the shell.
@dataclass(frozen=True, slots=True)
class Send:
    frame: bytes


@dataclass(frozen=True, slots=True)
class Verify:
    token: str | None  # None: an anonymous spectator
    ref: str
    refresh: bool = False  # a new token for an open session: answer with refreshed()


@dataclass(frozen=True, slots=True)
class Join:
    channel: Channel
    ref: str
    since_offset: int | None
    since_epoch: str | None


@dataclass(frozen=True, slots=True)
class Leave:
    channel: Channel


@dataclass(frozen=True, slots=True)
class Publish:
    channel: Channel
    body: object
    ref: str


@dataclass(frozen=True, slots=True)
class Presence:
    channel: Channel
    ref: str


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    params: dict[str, object]
    ref: str


@dataclass(frozen=True, slots=True)
class Close:
    code: CloseCode
    reason: str


@dataclass(frozen=True, slots=True)
class Denied:
    """A subscription or publication the principal may not make: the shell logs it as a
    security event (the error frame goes with it)."""

    action: str  # "subscribe" or "publish"
    channel: str


Effect = Send | Verify | Join | Leave | Publish | Presence | Call | Close | Denied


@dataclass(slots=True)
class Session:
    opened_s: float
    limits: SessionLimits = field(default_factory=SessionLimits)
    state: State = State.AWAITING_AUTH
    principal: Principal | None = None
    channels: set[Channel] = field(default_factory=set)
    bad_frames: int = 0
    expires_s: float | None = None  # when the token runs out (None: never, a spectator)
    bucket: TokenBucket = field(init=False)
    chat_bucket: TokenBucket = field(init=False)

    def __post_init__(self) -> None:
        self.bucket = TokenBucket(self.limits.messages_per_s, self.limits.messages_burst)
        self.chat_bucket = TokenBucket(self.limits.chat_messages_per_s, self.limits.chat_burst)

    # Inputs -------------------------------------------------------------------------------

    def receive(self, raw: bytes | str, now_s: float) -> list[Effect]:
        if self.state is State.CLOSED:
            return []
        if not self.bucket.take(now_s):
            return self._close(CloseCode.FLOOD, "message rate over the limit")
        decoded = decode_client_frame(raw, frame_bytes_max=self.limits.frame_bytes_max)
        if isinstance(decoded, ProtocolError):
            return self._bad(decoded)
        return self._handle(decoded, now_s)

    def tick(self, now_s: float) -> list[Effect]:
        """Time passes: an unauthenticated connection is closed after ``auth_timeout_s``, an
        open one when its token has expired."""
        if self.state in (State.AWAITING_AUTH, State.AUTHENTICATING) and (
            now_s - self.opened_s > self.limits.auth_timeout_s
        ):
            return self._close(CloseCode.UNAUTHORIZED, "no valid auth frame in time")
        if self.state is State.OPEN and self.expires_s is not None and now_s >= self.expires_s:
            return self._close(CloseCode.SESSION_EXPIRED, "the token expired: refresh it")
        return []

    def verified(
        self, principal: Principal, ref: str, session_id: str, expires_s: float | None = None
    ) -> list[Effect]:
        if self.state is not State.AUTHENTICATING:
            raise RuntimeError(f"verified() in state {self.state.value}")
        self.state = State.OPEN
        self.principal = principal
        self.expires_s = expires_s
        if principal.role is Role.GAME_SERVER:
            self.bucket = TokenBucket(
                self.limits.server_messages_per_s, self.limits.server_messages_burst
            )
        frame = encode_server_frame(
            "auth_ok",
            id=ref,
            role=str(principal.role),
            subject=principal.subject,
            session=session_id,
        )
        return [Send(frame)]

    def refreshed(
        self, principal: Principal | None, ref: str, expires_s: float, now_s: float
    ) -> list[Effect]:
        """The answer to a ``refresh``: the new token's owner (None: not valid) and expiry."""
        if self.state is not State.OPEN:
            return []  # closed meanwhile
        if principal is None or principal != self.principal:
            return self._bad(ProtocolError(ErrorCode.BAD_TOKEN, "the token was refused", ref))
        self.expires_s = expires_s
        remaining = max(0, int(expires_s - now_s))
        return [Send(encode_server_frame("refreshed", id=ref, expires_in=remaining))]

    def refused(self, ref: str) -> list[Effect]:
        if self.state is not State.AUTHENTICATING:
            raise RuntimeError(f"refused() in state {self.state.value}")
        self.state = State.AWAITING_AUTH
        return self._bad(ProtocolError(ErrorCode.BAD_TOKEN, "the token was refused", ref))

    def join_failed(self, channel: Channel, ref: str) -> list[Effect]:
        """The node could not subscribe to ``channel`` (its broker did not answer in time):
        the subscription is undone and refused as retryable."""
        self.channels.discard(channel)
        return [Send(refusal_frame(str(ErrorCode.INTERNAL), "subscription failed", True, ref))]

    def closed(self) -> list[Effect]:
        """The socket went away: leave every channel."""
        effects: list[Effect] = [Leave(c) for c in sorted(self.channels, key=str)]
        self.channels.clear()
        self.state = State.CLOSED
        return effects

    # Internals ----------------------------------------------------------------------------

    def _bad(self, error: ProtocolError) -> list[Effect]:
        self.bad_frames += 1
        if self.bad_frames > self.limits.bad_frames_max:
            return self._close(CloseCode.PROTOCOL_VIOLATION, "too many bad frames")
        return [Send(error_frame(error))]

    def _close(self, code: CloseCode, reason: str) -> list[Effect]:
        effects = self.closed()
        return [*effects, Close(code, reason)]

    def _chat(self, channel: Channel, body: object, ref: str, now_s: float) -> list[Effect]:
        assert self.principal is not None
        chars_max = self.limits.chat_chars_max
        text = body.get("text") if isinstance(body, dict) and body.keys() == {"text"} else None
        if not isinstance(text, str) or not 0 < len(text.strip()) <= chars_max:
            return self._bad(
                ProtocolError(
                    ErrorCode.BAD_FIELD, f'chat is {{"text": 1..{chars_max} characters}}', ref
                )
            )
        if self.principal.role is not Role.ADMIN and not self.chat_bucket.take(now_s):
            return [
                Send(
                    error_frame(
                        ProtocolError(ErrorCode.RATE_LIMITED, "chat rate over the limit", ref)
                    )
                )
            ]
        return [Publish(channel, {"from": self.principal.subject, "text": text}, ref)]

    def _handle(self, m: ClientMessage, now_s: float) -> list[Effect]:
        ref = m.id or ""
        if m.type == "ping":
            return [Send(encode_server_frame("pong"))]
        if m.type == "pong":
            return []  # the heartbeat's answer: receiving it is all that counts
        if m.type == "auth":
            if self.state is State.OPEN:
                return self._bad(
                    ProtocolError(ErrorCode.ALREADY_AUTHENTICATED, "already authenticated", ref)
                )
            if self.state is State.AUTHENTICATING:
                return self._bad(
                    ProtocolError(ErrorCode.BAD_FRAME, "authentication in progress", ref)
                )
            self.state = State.AUTHENTICATING
            token = m.data.get("token")
            return [Verify(token if isinstance(token, str) else None, ref)]
        if self.state is not State.OPEN or self.principal is None:
            return self._bad(ProtocolError(ErrorCode.NOT_AUTHENTICATED, "send auth first", ref))
        if m.type == "refresh":
            if self.principal.role is Role.SPECTATOR:
                return self._bad(ProtocolError(ErrorCode.BAD_TOKEN, "spectators have none", ref))
            return [Verify(m.data["token"], ref, refresh=True)]
        if m.type == "rpc":
            method = m.data["method"]
            if not 0 < len(method) <= METHOD_CHARS_MAX:
                return self._bad(
                    ProtocolError(
                        ErrorCode.BAD_FIELD, f"method is 1..{METHOD_CHARS_MAX} characters", ref
                    )
                )
            params = m.data.get("params", {})
            return [Call(method, dict(params), ref)]
        channel = parse_channel(m.ch)
        if channel is None:
            return self._bad(ProtocolError(ErrorCode.BAD_CHANNEL, "no such channel", ref))
        if m.type == "subscribe":
            if not may_subscribe(self.principal, channel):
                return [
                    Denied("subscribe", str(channel)),
                    *self._bad(ProtocolError(ErrorCode.FORBIDDEN, "not yours to follow", ref)),
                ]
            if channel in self.channels:
                return self._bad(
                    ProtocolError(ErrorCode.ALREADY_SUBSCRIBED, "already subscribed", ref)
                )
            if len(self.channels) >= self.limits.subscriptions_max:
                return self._bad(
                    ProtocolError(
                        ErrorCode.TOO_MANY_SUBSCRIPTIONS, "subscription limit reached", ref
                    )
                )
            self.channels.add(channel)
            offset, epoch = m.data.get("since_offset"), m.data.get("since_epoch")
            return [
                Join(
                    channel,
                    ref,
                    offset if isinstance(offset, int) else None,
                    epoch if isinstance(epoch, str) else None,
                )
            ]
        if m.type == "unsubscribe":
            if channel not in self.channels:
                return self._bad(ProtocolError(ErrorCode.NOT_SUBSCRIBED, "not subscribed", ref))
            self.channels.discard(channel)
            return [
                Leave(channel),
                Send(encode_server_frame("unsubscribed", id=ref, ch=str(channel))),
            ]
        if m.type == "publish":
            if not may_publish(self.principal, channel):
                return [
                    Denied("publish", str(channel)),
                    *self._bad(ProtocolError(ErrorCode.FORBIDDEN, "not yours to publish to", ref)),
                ]
            body = m.data.get("body")
            if channel.namespace is Namespace.LOBBY:
                return self._chat(channel, body, ref, now_s)
            return [Publish(channel, body, ref)]
        if m.type == "presence":
            if channel not in self.channels:
                return self._bad(ProtocolError(ErrorCode.NOT_SUBSCRIBED, "subscribe first", ref))
            return [Presence(channel, ref)]
        raise AssertionError(f"unhandled message type {m.type}")  # the table and this disagree
