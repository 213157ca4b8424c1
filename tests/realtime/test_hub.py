from __future__ import annotations

import itertools

import jsonschema
import orjson

from realtime.channel import Principal, Role, parse_channel
from realtime.envelope import protocol_schema
from realtime.history import HistoryLimits
from realtime.hub import Hub, Subscriber
from realtime.limits import SendQueue

SERVER_FRAMES = jsonschema.Draft202012Validator({**protocol_schema(), "$ref": "#/$defs/server"})
LOBBY = parse_channel("lobby:eu")
assert LOBBY is not None


def new_hub() -> Hub:
    epochs = (f"epoch-{n}" for n in itertools.count())
    return Hub(new_epoch=lambda: next(epochs), history_limits=HistoryLimits(5, 10.0, 50))


def drain(subscriber: Subscriber) -> list[dict[str, object]]:
    frames = []
    while (frame := subscriber.queue.pop()) is not None:
        decoded = orjson.loads(frame)
        SERVER_FRAMES.validate(decoded)  # every frame the hub sends follows the protocol
        frames.append(decoded)
    return frames


def test_publication_reaches_every_subscriber_once_with_offsets() -> None:
    hub = new_hub()
    alice = Subscriber(Principal(Role.PLAYER, "alice"))
    bob = Subscriber(Principal(Role.SPECTATOR, ""))
    hub.join(alice, LOBBY, "1", None, None, 0)
    hub.join(bob, LOBBY, "2", None, None, 0)
    assert [f["type"] for f in drain(alice)] == ["join"]  # bob joined after alice
    for n in range(3):
        hub.publish(LOBBY, {"n": n}, 1)
    for subscriber in (alice, bob):
        pubs = [f for f in drain(subscriber) if f["type"] == "pub"]
        assert [p["data"]["offset"] for p in pubs] == [1, 2, 3]
        assert [p["data"]["body"] for p in pubs] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert {p["data"]["epoch"] for p in pubs} == {"epoch-0"}


def test_resubscribe_recovers_what_was_missed_or_says_it_cannot() -> None:
    hub = new_hub()
    watcher = Subscriber(Principal(Role.PLAYER, "w"))
    for n in range(3):
        hub.publish(LOBBY, n, 0)
    frame, _ = hub.join(watcher, LOBBY, "r", 1, "epoch-0", 1)
    SERVER_FRAMES.validate(orjson.loads(frame))
    data = orjson.loads(frame)["data"]
    assert data["recovered"] is True and data["offset"] == 3
    assert [p["data"]["body"] for p in data["publications"]] == [1, 2]
    hub.leave(watcher, LOBBY, 1)
    frame, _ = hub.join(watcher, LOBBY, "r", 1, "other-epoch", 1)
    assert orjson.loads(frame)["data"]["recovered"] is False
    hub.leave(watcher, LOBBY, 1)
    for n in range(20):
        hub.publish(LOBBY, n, 100)  # the window moved past offset 1
    frame, _ = hub.join(watcher, LOBBY, "r", 1, "epoch-0", 100)
    assert orjson.loads(frame)["data"]["recovered"] is False


def test_slow_consumer_is_cut_off_and_others_keep_receiving() -> None:
    hub = new_hub()
    slow = Subscriber(Principal(Role.PLAYER, "slow"), queue=SendQueue(bytes_max=300))
    fast = Subscriber(Principal(Role.PLAYER, "fast"))
    hub.join(slow, LOBBY, "1", None, None, 0)
    hub.join(fast, LOBBY, "2", None, None, 0)
    drain(slow)
    cut: list[Subscriber] = []
    for n in range(10):
        _, too_slow = hub.publish(LOBBY, "x" * 50, n)
        cut += too_slow
        drain(fast)  # fast reads, slow does not
    assert cut == [slow] and slow.slow
    assert slow.queue.size_bytes <= 300


def test_presence_join_leave() -> None:
    hub = new_hub()
    alice = Subscriber(Principal(Role.PLAYER, "alice"))
    bob = Subscriber(Principal(Role.PLAYER, "bob"))
    hub.join(alice, LOBBY, "1", None, None, 0)
    hub.join(bob, LOBBY, "2", None, None, 0)
    assert sorted(m["subject"] for m in hub.presence(LOBBY)) == ["alice", "bob"]
    hub.leave(bob, LOBBY, 1)
    events = drain(alice)
    assert [(e["type"], e["data"]["subject"]) for e in events] == [
        ("join", "bob"),
        ("leave", "bob"),
    ]
    assert hub.presence(LOBBY) == [{"subject": "alice", "role": "player"}]
    assert hub.leave(bob, LOBBY, 2) == []  # twice is nothing
