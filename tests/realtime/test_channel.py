from __future__ import annotations

import pytest

from realtime.channel import Principal, Role, may_publish, may_subscribe, parse_channel

ALICE = Principal(Role.PLAYER, "alice")
BOB = Principal(Role.PLAYER, "bob")
ADMIN = Principal(Role.ADMIN, "root")
SPECTATOR = Principal(Role.SPECTATOR, "")
SERVER = Principal(Role.GAME_SERVER, "gs-1")


@pytest.mark.parametrize(
    "text", ["lobby", "lobby:", "nope:x", "user:a b", "x" * 200, 42, None, "lobby:é"]
)
def test_malformed_channels(text: object) -> None:
    assert parse_channel(text) is None


@pytest.mark.parametrize(
    ("who", "channel", "subscribe", "publish"),
    [
        (ALICE, "lobby:eu-1", True, True),
        (SPECTATOR, "lobby:eu-1", True, False),
        (SPECTATOR, "tournament:7", True, False),
        (SPECTATOR, "queue:cs2.5v5.eu", False, False),
        (SPECTATOR, "user:alice", False, False),
        (ALICE, "user:alice", True, False),
        (ALICE, "user:bob", False, False),
        (BOB, "user:alice", False, False),
        (ADMIN, "user:alice", True, False),
        (ALICE, "queue:cs2.5v5.eu", True, False),
        (ALICE, "match:9", True, False),
        (ALICE, "gameserver:gs-1", False, False),
        (SERVER, "gameserver:gs-1", True, True),
        (SERVER, "gameserver:gs-2", False, False),
        (SERVER, "lobby:eu-1", True, False),
    ],
)
def test_authorization_per_namespace(
    who: Principal, channel: str, subscribe: bool, publish: bool
) -> None:
    parsed = parse_channel(channel)
    assert parsed is not None and str(parsed) == channel
    assert may_subscribe(who, parsed) is subscribe
    assert may_publish(who, parsed) is publish
