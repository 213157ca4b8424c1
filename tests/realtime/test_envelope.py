from __future__ import annotations

import json

import jsonschema
import orjson
import pytest

from realtime.envelope import (
    CLIENT_TYPES,
    CloseCode,
    ErrorCode,
    ProtocolError,
    decode_client_frame,
    encode_server_frame,
    error_frame,
    protocol_schema,
)

SCHEMA = protocol_schema()
SERVER_VALIDATOR = jsonschema.Draft202012Validator({**SCHEMA, "$ref": "#/$defs/server"})
CLIENT_VALIDATOR = jsonschema.Draft202012Validator({**SCHEMA, "$ref": "#/$defs/client"})


def test_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    json.dumps(SCHEMA)


@pytest.mark.parametrize(
    "frame",
    [
        {"v": 1, "type": "auth", "id": "1", "data": {"token": "t"}},
        {"v": 1, "type": "auth", "id": "1"},
        {
            "v": 1,
            "type": "subscribe",
            "id": "2",
            "ch": "lobby:x",
            "data": {"since_offset": 3, "since_epoch": "e"},
        },
        {"v": 1, "type": "publish", "id": "3", "ch": "lobby:x", "data": {"body": {"text": "gg"}}},
        {"v": 1, "type": "ping"},
    ],
)
def test_good_client_frames_decode_and_match_the_schema(frame: dict[str, object]) -> None:
    decoded = decode_client_frame(orjson.dumps(frame))
    assert not isinstance(decoded, ProtocolError), decoded
    assert decoded.type == frame["type"]
    CLIENT_VALIDATOR.validate({"data": {}, **frame})


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", ErrorCode.BAD_FRAME),
        (b"[1, 2]", ErrorCode.BAD_FRAME),
        (b'{"v": 2, "type": "ping"}', ErrorCode.BAD_FRAME),
        (b'{"v": 1, "type": "dance"}', ErrorCode.UNKNOWN_TYPE),
        (b'{"v": 1, "type": "ping", "extra": 1}', ErrorCode.BAD_FIELD),
        (b'{"v": 1, "type": "subscribe", "id": "1"}', ErrorCode.BAD_FIELD),
        (b'{"v": 1, "type": "subscribe", "ch": "lobby:x"}', ErrorCode.BAD_FIELD),
        (
            b'{"v": 1, "type": "subscribe", "id": "1", "ch": "lobby:x", "data": {"since_offset": "3"}}',
            ErrorCode.BAD_FIELD,
        ),
        (
            b'{"v": 1, "type": "subscribe", "id": "1", "ch": "lobby:x", "data": {"nope": 1}}',
            ErrorCode.BAD_FIELD,
        ),
        (b'{"v": 1, "type": "ping", "ch": "lobby:x"}', ErrorCode.BAD_FIELD),
        (b'{"v": 1, "type": "auth", "id": 7}', ErrorCode.BAD_FIELD),
        (b'{"v": 1, "type": "auth", "id": "' + b"x" * 100 + b'"}', ErrorCode.BAD_FIELD),
        (
            b'{"v": 1, "type": "publish", "id": "1", "ch": "lobby:x", "data": {"body": "'
            + b"x" * 70_000
            + b'"}}',
            ErrorCode.FRAME_TOO_LARGE,
        ),
    ],
)
def test_bad_client_frames_get_a_precise_error(raw: bytes, code: ErrorCode) -> None:
    decoded = decode_client_frame(raw)
    assert isinstance(decoded, ProtocolError) and decoded.code == code
    frame = error_frame(decoded)
    SERVER_VALIDATOR.validate(orjson.loads(frame))


def test_server_frames_match_the_schema() -> None:
    frames = [
        encode_server_frame("auth_ok", id="1", role="player", subject="alice", session="s"),
        encode_server_frame(
            "subscribed", id="2", ch="lobby:x", epoch="e", offset=4, recovered=True, publications=[]
        ),
        encode_server_frame("pub", ch="lobby:x", epoch="e", offset=5, body={"text": "gg"}),
        encode_server_frame("join", ch="lobby:x", subject="bob", role="player"),
        encode_server_frame("pong"),
        encode_server_frame(
            "disconnect", code=int(CloseCode.SHUTDOWN), reason="shutdown", reconnect=True
        ),
    ]
    for frame in frames:
        SERVER_VALIDATOR.validate(orjson.loads(frame))
    with pytest.raises(jsonschema.ValidationError):
        SERVER_VALIDATOR.validate({"v": 1, "type": "pub", "ch": "lobby:x", "data": {"offset": 1}})
    with pytest.raises(ValueError):
        encode_server_frame("pub", ch="lobby:x", epoch="e", offset=1, body=1, bogus=2)


def test_every_client_type_is_in_the_schema() -> None:
    names = {s["properties"]["type"]["const"] for s in SCHEMA["$defs"]["client"]["oneOf"]}
    assert names == set(CLIENT_TYPES)


def test_close_codes_say_whether_to_reconnect() -> None:
    assert CloseCode.SLOW_CONSUMER.reconnect and CloseCode.SHUTDOWN.reconnect
    assert not CloseCode.PROTOCOL_VIOLATION.reconnect and not CloseCode.UNAUTHORIZED.reconnect
