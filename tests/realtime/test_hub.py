from __future__ import annotations

import jsonschema
import orjson

from realtime.channel import PRESENCE_EVENTS_MEMBERS_MAX, Principal, Role, parse_channel
from realtime.envelope import protocol_schema
from realtime.history import Recovery
from realtime.hub import Hub, Subscriber, subscribed_frame
from realtime.limits import SendQueue
from realtime.streams import frame_parts

SERVER_FRAMES = jsonschema.Draft202012Validator({**protocol_schema(), "$ref": "#/$defs/server"})
LOBBY = parse_channel("lobby:eu")
assert LOBBY is not None


def pub(offset: int, body: object) -> bytes:
    head, middle, tail = frame_parts(str(LOBBY), body)
    return head + b"e1" + middle + str(offset).encode() + tail


def drain(subscriber: Subscriber) -> list[dict[str, object]]:
    frames = []
    while (frame := subscriber.queue.pop()) is not None:
        decoded = orjson.loads(frame)
        SERVER_FRAMES.validate(decoded)  # every frame the hub sends follows the protocol
        frames.append(decoded)
    return frames


def test_a_frame_reaches_every_local_subscriber_as_the_same_bytes() -> None:
    hub = Hub()
    alice = Subscriber(Principal(Role.PLAYER, "alice"))
    bob = Subscriber(Principal(Role.SPECTATOR, ""))
    hub.add(alice, LOBBY)
    hub.add(bob, LOBBY)
    assert drain(alice) == []  # a spectator's join is not announced
    frame = pub(1, {"text": "gg"})
    assert hub.deliver(LOBBY, frame) == []
    assert alice.queue.frames[0] is bob.queue.frames[0] is frame  # serialised once, never copied
    for subscriber in (alice, bob):
        [got] = drain(subscriber)
        assert got["data"] == {"epoch": "e1", "offset": 1, "body": {"text": "gg"}}


def test_subscribed_frame_carries_what_was_missed_only_when_asked() -> None:
    from realtime.history import Publication

    recovery = Recovery(True, "e1", 3, (Publication(3, 0.0, pub(3, "x")),))
    asked = orjson.loads(subscribed_frame("r", LOBBY, recovery, asked=True))
    SERVER_FRAMES.validate(asked)
    assert (
        asked["data"]["recovered"] is True
        and asked["data"]["publications"][0]["data"]["offset"] == 3
    )
    fresh = orjson.loads(subscribed_frame("r", LOBBY, recovery, asked=False))
    assert fresh["data"]["recovered"] is False and fresh["data"]["publications"] == []


def test_slow_consumer_is_cut_off_and_others_keep_receiving() -> None:
    hub = Hub()
    slow = Subscriber(Principal(Role.PLAYER, "slow"), queue=SendQueue(bytes_max=300))
    fast = Subscriber(Principal(Role.PLAYER, "fast"))
    hub.add(slow, LOBBY)
    hub.add(fast, LOBBY)
    drain(slow)
    cut: list[Subscriber] = []
    for n in range(10):
        cut += hub.deliver(LOBBY, pub(n + 1, "x" * 50))
        assert len(drain(fast)) == 1  # fast reads, slow does not
    assert cut == [slow] and slow.slow
    assert slow.queue.size_bytes <= 300


def test_presence_join_leave() -> None:
    hub = Hub()
    alice = Subscriber(Principal(Role.PLAYER, "alice"))
    bob = Subscriber(Principal(Role.PLAYER, "bob"))
    hub.add(alice, LOBBY)
    hub.add(bob, LOBBY)
    assert set(hub.members[LOBBY]) == {alice.id, bob.id}
    hub.leave(bob, LOBBY)
    events = drain(alice)
    assert [(e["type"], e["data"]["subject"]) for e in events] == [
        ("join", "bob"),
        ("leave", "bob"),
    ]
    assert set(hub.members[LOBBY]) == {alice.id}
    assert hub.leave(bob, LOBBY) == []  # twice is nothing


def test_joins_are_announced_for_players_in_small_rooms_only() -> None:
    hub = Hub()
    first = Subscriber(Principal(Role.PLAYER, "p0"))
    hub.add(first, LOBBY)
    for n in range(1, PRESENCE_EVENTS_MEMBERS_MAX + 5):
        hub.add(Subscriber(Principal(Role.PLAYER, f"p{n}")), LOBBY)
    joins = [f for f in drain(first) if f["type"] == "join"]
    assert len(joins) == PRESENCE_EVENTS_MEMBERS_MAX - 1  # then the room is an audience
    tournament = parse_channel("tournament:cup")
    assert tournament is not None
    watcher = Subscriber(Principal(Role.PLAYER, "w"))
    hub.add(watcher, tournament)
    hub.add(Subscriber(Principal(Role.PLAYER, "x")), tournament)
    assert drain(watcher) == []  # no join/leave on tournament channels
