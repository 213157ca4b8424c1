"""The protocol envelope: decoding client frames, encoding server frames, error and close
codes, and the JSON Schema of every message, all from one table (so they cannot drift).

Every frame is ``{"v": 1, "type": …, "id": …, "ch": …, "data": …}``. ``type`` is required;
``id`` (a client's correlation id, echoed in the reply) and ``ch`` (a channel) are required or
forbidden per type; ``data`` is an object whose fields are listed per type. Unknown fields,
unknown types and wrong JSON types are refused with :class:`ProtocolError`, whose code says
whether retrying can help. Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

PROTOCOL_VERSION: Final = 1
FRAME_BYTES_MAX: Final = 64 * 1024
ID_CHARS_MAX: Final = 64

# JSON types a field may take, as JSON Schema names them.
_STR, _INT, _BOOL, _OBJ, _ARR, _ANY = "string", "integer", "boolean", "object", "array", "any"


@dataclass(frozen=True, slots=True)
class Field:
    json_type: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class MessageType:
    name: str
    id_required: bool  # False: the frame may carry no id; None is not allowed
    channel: bool  # whether "ch" is required (True) or forbidden (False)
    data: Mapping[str, Field]


def _t(name: str, *, id: bool, ch: bool, **data: Field) -> MessageType:
    return MessageType(name, id, ch, data)


# What a client sends.
CLIENT_TYPES: Final = {
    t.name: t
    for t in (
        _t("auth", id=True, ch=False, token=Field(_STR, False)),  # no token: a spectator
        _t(
            "subscribe",
            id=True,
            ch=True,
            since_offset=Field(_INT, False),
            since_epoch=Field(_STR, False),
        ),
        _t("unsubscribe", id=True, ch=True),
        _t("publish", id=True, ch=True, body=Field(_ANY)),
        _t("presence", id=True, ch=True),
        _t("refresh", id=True, ch=False, token=Field(_STR)),  # a new access token, same subject
        # A call to a method the application registers (queue.join, match.accept, ...).
        _t("rpc", id=True, ch=False, method=Field(_STR), params=Field(_OBJ, False)),
        _t("ping", id=False, ch=False),
        _t("pong", id=False, ch=False),  # the answer to the server's ping
    )
}

# What the server sends.
SERVER_TYPES: Final = {
    t.name: t
    for t in (
        _t(
            "auth_ok",
            id=True,
            ch=False,
            role=Field(_STR),
            subject=Field(_STR),
            session=Field(_STR),
        ),
        _t(
            "subscribed",
            id=True,
            ch=True,
            epoch=Field(_STR),
            offset=Field(_INT),
            recovered=Field(_BOOL),
            publications=Field(_ARR),
        ),
        _t("unsubscribed", id=True, ch=True),
        _t("published", id=True, ch=True, offset=Field(_INT)),
        _t("pub", id=False, ch=True, epoch=Field(_STR), offset=Field(_INT), body=Field(_ANY)),
        _t("join", id=False, ch=True, subject=Field(_STR), role=Field(_STR)),
        _t("leave", id=False, ch=True, subject=Field(_STR), role=Field(_STR)),
        _t("presence_result", id=True, ch=True, members=Field(_ARR)),
        _t("refreshed", id=True, ch=False, expires_in=Field(_INT)),
        _t("rpc_result", id=True, ch=False, result=Field(_ANY)),
        _t("pong", id=False, ch=False),
        _t("ping", id=False, ch=False),  # the heartbeat: answer with pong
        _t(
            "error",
            id=False,
            ch=False,
            code=Field(_STR),
            message=Field(_STR),
            retryable=Field(_BOOL),
            ref=Field(_STR, False),
        ),
        _t(
            "disconnect",
            id=False,
            ch=False,
            code=Field(_INT),
            reason=Field(_STR),
            reconnect=Field(_BOOL),
        ),
    )
}


class ErrorCode(enum.StrEnum):
    """Errors answered with an ``error`` frame; the connection stays open."""

    BAD_FRAME = "bad_frame"  # not JSON, not an object, wrong version
    UNKNOWN_TYPE = "unknown_type"
    BAD_FIELD = "bad_field"  # missing, unknown or mistyped field
    FRAME_TOO_LARGE = "frame_too_large"
    NOT_AUTHENTICATED = "not_authenticated"
    ALREADY_AUTHENTICATED = "already_authenticated"
    BAD_TOKEN = "bad_token"
    BAD_CHANNEL = "bad_channel"
    FORBIDDEN = "forbidden"
    ALREADY_SUBSCRIBED = "already_subscribed"
    NOT_SUBSCRIBED = "not_subscribed"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    RATE_LIMITED = "rate_limited"
    UNKNOWN_METHOD = "unknown_method"
    INTERNAL = "internal"

    @property
    def retryable(self) -> bool:
        return self in (ErrorCode.RATE_LIMITED, ErrorCode.INTERNAL)


class CloseCode(enum.IntEnum):
    """Websocket close codes. 4000-4499: reconnect (and recover); 4500-4999: do not."""

    SHUTDOWN = 4000  # the server drains: reconnect elsewhere and recover
    SLOW_CONSUMER = 4001  # the send queue overflowed: reconnect and recover
    IDLE_TIMEOUT = 4002  # no frame within the idle timeout
    SESSION_EXPIRED = 4003  # refresh the token, reconnect
    PROTOCOL_VIOLATION = 4500  # too many bad frames
    UNAUTHORIZED = 4501  # no valid auth frame in time
    FLOOD = 4502  # sustained rate far over the limit
    TOO_MANY_CONNECTIONS = 4503  # the account already has connections_per_user_max open
    SESSION_REVOKED = 4504  # the session ended (logout, a reused refresh token): sign in again

    @property
    def reconnect(self) -> bool:
        return self < 4500


@dataclass(frozen=True, slots=True)
class ProtocolError:
    code: ErrorCode
    message: str
    ref: str | None = None  # the offending frame's id, when it had one


@dataclass(frozen=True, slots=True)
class ClientMessage:
    type: str
    id: str | None
    ch: str | None
    data: Mapping[str, Any]


_ENVELOPE_KEYS = frozenset({"v", "type", "id", "ch", "data"})


def _matches(value: Any, json_type: str) -> bool:
    if json_type == _ANY:
        return True
    if json_type == _INT:
        return type(value) is int
    if json_type == _BOOL:
        return type(value) is bool
    if json_type == _STR:
        return type(value) is str
    if json_type == _OBJ:
        return type(value) is dict
    return type(value) is list


def decode_client_frame(
    raw: bytes | str, *, frame_bytes_max: int = FRAME_BYTES_MAX
) -> ClientMessage | ProtocolError:
    """Decode and validate one client frame; never raises on bad input."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > frame_bytes_max:
        return ProtocolError(
            ErrorCode.FRAME_TOO_LARGE, f"frames are at most {frame_bytes_max} bytes"
        )
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ProtocolError(ErrorCode.BAD_FRAME, "not JSON")
    if type(frame) is not dict:
        return ProtocolError(ErrorCode.BAD_FRAME, "a frame is a JSON object")
    ref = frame.get("id")
    ref = ref if type(ref) is str and len(ref) <= ID_CHARS_MAX else None
    if frame.get("v") != PROTOCOL_VERSION:
        return ProtocolError(ErrorCode.BAD_FRAME, f"v must be {PROTOCOL_VERSION}", ref)
    unknown = frame.keys() - _ENVELOPE_KEYS
    if unknown:
        return ProtocolError(ErrorCode.BAD_FIELD, f"unknown fields: {sorted(unknown)[:5]}", ref)
    kind = CLIENT_TYPES.get(frame.get("type"))  # type: ignore[arg-type]
    if kind is None:
        return ProtocolError(ErrorCode.UNKNOWN_TYPE, "unknown message type", ref)
    message_id = frame.get("id")
    if message_id is not None and (
        type(message_id) is not str or not 0 < len(message_id) <= ID_CHARS_MAX
    ):
        return ProtocolError(ErrorCode.BAD_FIELD, f"id is a string of 1..{ID_CHARS_MAX} characters")
    if kind.id_required and message_id is None:
        return ProtocolError(ErrorCode.BAD_FIELD, f"{kind.name} needs an id")
    ch = frame.get("ch")
    if kind.channel and type(ch) is not str:
        return ProtocolError(ErrorCode.BAD_FIELD, f"{kind.name} needs ch", ref)
    if not kind.channel and ch is not None:
        return ProtocolError(ErrorCode.BAD_FIELD, f"{kind.name} takes no ch", ref)
    data = frame.get("data", {})
    if type(data) is not dict:
        return ProtocolError(ErrorCode.BAD_FIELD, "data is an object", ref)
    extra = data.keys() - kind.data.keys()
    if extra:
        return ProtocolError(ErrorCode.BAD_FIELD, f"unknown data fields: {sorted(extra)[:5]}", ref)
    for name, spec in kind.data.items():
        if name not in data:
            if spec.required:
                return ProtocolError(ErrorCode.BAD_FIELD, f"data.{name} is required", ref)
            continue
        if not _matches(data[name], spec.json_type):
            return ProtocolError(ErrorCode.BAD_FIELD, f"data.{name} must be {spec.json_type}", ref)
    return ClientMessage(kind.name, message_id, ch, data)


def encode_server_frame(
    type_: str, *, id: str | None = None, ch: str | None = None, **data: Any
) -> bytes:
    """One server frame as bytes (serialised once; send the same bytes to every subscriber)."""
    kind = SERVER_TYPES[type_]
    frame: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": type_}
    if id is not None:
        frame["id"] = id
    elif kind.id_required:
        raise ValueError(f"{type_} needs an id")
    if kind.channel:
        if ch is None:
            raise ValueError(f"{type_} needs ch")
        frame["ch"] = ch
    unknown = data.keys() - kind.data.keys()
    if unknown:
        raise ValueError(f"{type_} has no fields {sorted(unknown)}")
    frame["data"] = data
    return orjson.dumps(frame)


def error_frame(error: ProtocolError) -> bytes:
    return refusal_frame(str(error.code), error.message, error.code.retryable, error.ref)


def refusal_frame(code: str, message: str, retryable: bool, ref: str | None) -> bytes:
    """An ``error`` frame; also for the application's own refusals of an ``rpc`` (its codes
    are the application's: ``unknown_queue``, ``party_too_large``, ...)."""
    extra = {"ref": ref} if ref is not None else {}
    return encode_server_frame("error", code=code, message=message, retryable=retryable, **extra)


def _message_schema(kind: MessageType) -> dict[str, Any]:
    data_props: dict[str, Any] = {
        name: ({} if spec.json_type == _ANY else {"type": spec.json_type})
        for name, spec in kind.data.items()
    }
    properties: dict[str, Any] = {
        "v": {"const": PROTOCOL_VERSION},
        "type": {"const": kind.name},
        "data": {
            "type": "object",
            "properties": data_props,
            "required": sorted(n for n, s in kind.data.items() if s.required),
            "additionalProperties": False,
        },
    }
    required = ["v", "type", "data"]
    properties["id"] = {"type": "string", "minLength": 1, "maxLength": ID_CHARS_MAX}
    if kind.id_required:
        required.append("id")
    if kind.channel:
        properties["ch"] = {"type": "string"}
        required.append("ch")
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def protocol_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of every frame in both directions."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "LeetGaming realtime protocol v1",
        "$defs": {
            "client": {"oneOf": [_message_schema(t) for t in CLIENT_TYPES.values()]},
            "server": {"oneOf": [_message_schema(t) for t in SERVER_TYPES.values()]},
        },
    }
