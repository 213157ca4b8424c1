"""The in-process hub: channels, their streams, subscribers, presence and fan-out.

No I/O: a subscriber is a byte-bounded :class:`~realtime.limits.SendQueue` that the websocket
shell drains into its socket. A publication is serialised once and the same ``bytes`` object is
queued for every subscriber. A subscriber whose queue is full is not waited for: it is marked
slow and returned to the caller, which closes it with ``SLOW_CONSUMER`` (reconnect and recover);
nobody else is delayed.

Publications come from a :class:`~realtime.streams.StreamStore` (which numbers them and keeps
history); on Redis each node receives the frames of the channels it has subscribers for
through pub/sub and delivers them to its own subscribers.

Presence: each channel knows which connections are in it (subject and role); joining and leaving
send ``join`` / ``leave`` events to the channel's other subscribers, where
:func:`~realtime.channel.announces_presence` says so (not for spectators, tournament or user
channels, or crowds over 200 members). They are not publications:
they take no offset and are not kept in history (as in Centrifugo), so the offsets a client sees
on ``pub`` frames have no holes and a recovering client asks ``presence`` for the current set.

This is the embedded broker's core; the Redis broker (several processes) keeps the same rules.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from .channel import Channel, Principal, announces_presence
from .envelope import encode_server_frame
from .history import Recovery
from .limits import SendQueue

SEND_QUEUE_BYTES_MAX = 1024 * 1024
_ids = itertools.count(1)


def _nothing() -> None:
    return None


@dataclass(eq=False, slots=True)
class Subscriber:
    principal: Principal
    queue: SendQueue = field(default_factory=lambda: SendQueue(SEND_QUEUE_BYTES_MAX))
    id: int = field(default_factory=lambda: next(_ids))
    slow: bool = False
    notify: Callable[[], None] = _nothing  # the shell's "frames are waiting" signal
    # Channels being subscribed to: what arrives for them between joining and the answer
    # waits here (at most SEND_QUEUE_BYTES_MAX in all), so ``subscribed`` comes first.
    joining: dict[Channel, list[bytes]] | None = None
    # Channels just subscribed to whose live deliveries may still lag the position the answer
    # reported (the broker's pub/sub stream runs behind the read of the history): their
    # publications at or below that offset are dropped until one above it arrives.
    floors: dict[Channel, int] | None = None


@dataclass(slots=True)
class Hub:
    """This process's subscribers per channel. Streams (offsets, history) live in a
    :class:`~realtime.streams.StreamStore` and the member lists ``presence`` answers with in a
    :class:`~realtime.presence.PresenceStore`; the hub delivers frames, ``join`` and ``leave``."""

    members: dict[Channel, dict[int, Subscriber]] = field(default_factory=dict)

    def deliver(self, channel: Channel, frame: bytes, skip: int | None = None) -> list[Subscriber]:
        """Queue ``frame`` for every local subscriber; returns the ones found too slow."""
        slow: list[Subscriber] = []
        for subscriber in self.members.get(channel, {}).values():
            if subscriber.id == skip or subscriber.slow:
                continue
            joining = subscriber.joining
            if joining is not None and channel in joining:
                held = joining[channel]
                held.append(frame)
                if sum(map(len, held)) > SEND_QUEUE_BYTES_MAX:
                    subscriber.slow = True
                    slow.append(subscriber)
                continue
            floors = subscriber.floors
            if floors is not None and channel in floors:
                offset = _publication_offset(frame)
                if offset is not None:
                    if offset <= floors[channel]:
                        continue  # the answer to subscribe covered it
                    _lift(subscriber, channel)
            if subscriber.queue.push(frame):
                subscriber.notify()
            else:
                subscriber.slow = True
                slow.append(subscriber)
        return slow

    def add(self, subscriber: Subscriber, channel: Channel) -> list[Subscriber]:
        """Subscribe locally and tell the others (``join``); returns slow peers.

        Frames for ``channel`` are held for ``subscriber`` until :meth:`joined`: deliveries
        start before the stream's position and history are read, so that nothing published
        in between is missed, and the held frames follow the answer to ``subscribe``."""
        self.members.setdefault(channel, {})[subscriber.id] = subscriber
        if subscriber.joining is None:
            subscriber.joining = {}
        subscriber.joining[channel] = []
        return self._presence_event("join", channel, subscriber)

    def joined(self, subscriber: Subscriber, channel: Channel, offset: int) -> list[bytes]:
        """The frames held for ``subscriber`` on ``channel`` since :meth:`add`, to queue right
        after the ``subscribed`` answer that reported the channel at ``offset``: publications
        at or below ``offset`` are dropped (the answer's position, or its recovered
        publications, already cover them), so the client sees each offset once, in order."""
        joining = subscriber.joining
        held = joining.pop(channel, []) if joining is not None else []
        if joining is not None and not joining:
            subscriber.joining = None
        kept, caught_up = [], False
        for frame in held:
            frame_offset = _publication_offset(frame)
            if frame_offset is None or frame_offset > offset:
                kept.append(frame)
                caught_up = caught_up or frame_offset is not None
        if not caught_up:  # what is still on its way live may be covered by the answer
            if subscriber.floors is None:
                subscriber.floors = {}
            subscriber.floors[channel] = offset
        return kept

    def leave(self, subscriber: Subscriber, channel: Channel) -> list[Subscriber]:
        members = self.members.get(channel)
        if subscriber.joining is not None:
            subscriber.joining.pop(channel, None)
        _lift(subscriber, channel)
        if not members or members.pop(subscriber.id, None) is None:
            return []
        if not members:
            del self.members[channel]
        return self._presence_event("leave", channel, subscriber)

    def _presence_event(
        self, kind: str, channel: Channel, subscriber: Subscriber
    ) -> list[Subscriber]:
        members = len(self.members.get(channel, ()))
        if not announces_presence(subscriber.principal, channel, members):
            return []
        frame = encode_server_frame(
            kind,
            ch=str(channel),
            subject=subscriber.principal.subject,
            role=str(subscriber.principal.role),
        )
        return self.deliver(channel, frame, skip=subscriber.id)


def _lift(subscriber: Subscriber, channel: Channel) -> None:
    floors = subscriber.floors
    if floors is not None:
        floors.pop(channel, None)
        if not floors:
            subscriber.floors = None


def _publication_offset(frame: bytes) -> int | None:
    """A ``pub`` frame's offset; other frames (``join``, ``leave``) have none and always
    pass. Parsed only for the few frames that arrive while a subscription is answered or
    until the live stream has passed the answer's position."""
    decoded = orjson.loads(frame)
    if decoded.get("type") != "pub":
        return None
    offset: int = decoded["data"]["offset"]
    return offset


def subscribed_frame(ref: str, channel: Channel, recovery: Recovery, asked: bool) -> bytes:
    """The answer to ``subscribe``: the channel's position, and what was missed if asked."""
    return encode_server_frame(
        "subscribed",
        id=ref,
        ch=str(channel),
        epoch=recovery.epoch,
        offset=recovery.offset,
        recovered=asked and recovery.recovered,
        publications=[orjson.loads(p.payload) for p in recovery.publications] if asked else [],
    )
