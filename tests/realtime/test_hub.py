from __future__ import annotations

import jsonschema
import orjson

from realtime.channel import (
    PRESENCE_EVENTS_MEMBERS_MAX,
    Channel,
    Principal,
    Role,
    parse_channel,
)
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


def subscribe(hub: Hub, subscriber: Subscriber, channel: Channel, offset: int = 0) -> None:
    """Join ``channel`` and queue what arrived meanwhile, as the shell does after answering."""
    hub.add(subscriber, channel)
    for frame in hub.joined(subscriber, channel, offset):
        assert subscriber.queue.push(frame)


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
    subscribe(hub, alice, LOBBY)
    subscribe(hub, bob, LOBBY)
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
    subscribe(hub, slow, LOBBY)
    subscribe(hub, fast, LOBBY)
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
    subscribe(hub, alice, LOBBY)
    subscribe(hub, bob, LOBBY)
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
    subscribe(hub, first, LOBBY)
    for n in range(1, PRESENCE_EVENTS_MEMBERS_MAX + 5):
        subscribe(hub, Subscriber(Principal(Role.PLAYER, f"p{n}")), LOBBY)
    joins = [f for f in drain(first) if f["type"] == "join"]
    assert len(joins) == PRESENCE_EVENTS_MEMBERS_MAX - 1  # then the room is an audience
    tournament = parse_channel("tournament:cup")
    assert tournament is not None
    watcher = Subscriber(Principal(Role.PLAYER, "w"))
    subscribe(hub, watcher, tournament)
    subscribe(hub, Subscriber(Principal(Role.PLAYER, "x")), tournament)
    assert drain(watcher) == []  # no join/leave on tournament channels


def test_frames_arriving_while_a_subscription_is_answered_follow_the_answer_once() -> None:
    hub = Hub()
    alice = Subscriber(Principal(Role.PLAYER, "alice"))
    subscribe(hub, alice, LOBBY)
    bob = Subscriber(Principal(Role.PLAYER, "bob"))
    hub.add(bob, LOBBY)  # bob's history is being read: 1..3 exist, 3 and 4 arrive live
    for offset in (3, 4):
        assert hub.deliver(LOBBY, pub(offset, offset)) == []
    hub.leave(alice, LOBBY)  # a leave meanwhile is held as well
    assert bob.queue.pop() is None  # nothing before the answer
    held = hub.joined(bob, LOBBY, 3)  # the answer reported offset 3 (recovered up to it)
    kinds = [(f["type"], f["data"].get("offset")) for f in map(orjson.loads, held)]
    assert kinds == [("pub", 4), ("leave", None)]
    assert bob.joining is None  # nothing held any more
    assert hub.deliver(LOBBY, pub(5, 5)) == [] and bob.queue.pop() is not None


def test_live_frames_lagging_behind_the_answer_are_not_delivered_twice() -> None:
    """The answer reported offset 5 (read from the stream) while the broker's pub/sub had
    delivered only up to 3: 4 and 5, when they arrive live, were in the answer already."""
    hub = Hub()
    alice = Subscriber(Principal(Role.PLAYER, "alice"))
    bob = Subscriber(Principal(Role.PLAYER, "bob"))
    subscribe(hub, alice, LOBBY, 3)
    hub.add(bob, LOBBY)
    assert hub.joined(bob, LOBBY, 5) == []
    drain(alice)
    subscribe(hub, Subscriber(Principal(Role.PLAYER, "carol")), LOBBY, 5)  # passes: no offset
    for offset in (4, 5, 6, 7):
        assert hub.deliver(LOBBY, pub(offset, offset)) == []
    got = [(f["type"], f["data"].get("offset")) for f in drain(bob)]
    assert got == [("join", None), ("pub", 6), ("pub", 7)]
    assert bob.floors is None  # once past the answer, frames are no longer parsed
    assert [f["data"]["offset"] for f in drain(alice) if f["type"] == "pub"] == [4, 5, 6, 7]


def test_a_subscriber_holding_more_than_its_queue_while_joining_is_cut() -> None:
    hub = Hub()
    bob = Subscriber(Principal(Role.PLAYER, "bob"))
    hub.add(bob, LOBBY)
    big = "x" * 100_000
    slow = [s for n in range(12) for s in hub.deliver(LOBBY, pub(n + 1, big))]
    assert slow == [bob] and bob.slow
