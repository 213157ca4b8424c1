"""The in-process hub: channels, their streams, subscribers, presence and fan-out.

No I/O: a subscriber is a byte-bounded :class:`~realtime.limits.SendQueue` that the websocket
shell drains into its socket. A publication is serialised once and the same ``bytes`` object is
queued for every subscriber. A subscriber whose queue is full is not waited for: it is marked
slow and returned to the caller, which closes it with ``SLOW_CONSUMER`` (reconnect and recover);
nobody else is delayed.

Publications come from a :class:`~realtime.streams.StreamStore` (which numbers them and keeps
history); on Redis every node receives every frame through pub/sub and delivers it to its own
subscribers.

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
            if subscriber.queue.push(frame):
                subscriber.notify()
            else:
                subscriber.slow = True
                slow.append(subscriber)
        return slow

    def add(self, subscriber: Subscriber, channel: Channel) -> list[Subscriber]:
        """Subscribe locally and tell the others (``join``); returns slow peers."""
        self.members.setdefault(channel, {})[subscriber.id] = subscriber
        return self._presence_event("join", channel, subscriber)

    def leave(self, subscriber: Subscriber, channel: Channel) -> list[Subscriber]:
        members = self.members.get(channel)
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
