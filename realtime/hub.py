"""The in-process hub: channels, their streams, subscribers, presence and fan-out.

No I/O: a subscriber is a byte-bounded :class:`~realtime.limits.SendQueue` that the websocket
shell drains into its socket. A publication is serialised once and the same ``bytes`` object is
queued for every subscriber. A subscriber whose queue is full is not waited for: it is marked
slow and returned to the caller, which closes it with ``SLOW_CONSUMER`` (reconnect and recover);
nobody else is delayed.

Presence: each channel knows which connections are in it (subject and role); joining and leaving
send ``join`` / ``leave`` events to the channel's other subscribers. They are not publications:
they take no offset and are not kept in history (as in Centrifugo), so the offsets a client sees
on ``pub`` frames have no holes and a recovering client asks ``presence`` for the current set.

This is the embedded broker's core; the Redis broker (several processes) keeps the same rules.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from .channel import Channel, Principal
from .envelope import encode_server_frame
from .history import HistoryLimits, Stream
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
    new_epoch: Callable[[], str]  # randomness comes in from the shell
    history_limits: HistoryLimits = field(default_factory=HistoryLimits)
    streams: dict[Channel, Stream] = field(default_factory=dict)
    members: dict[Channel, dict[int, Subscriber]] = field(default_factory=dict)

    def stream(self, channel: Channel) -> Stream:
        stream = self.streams.get(channel)
        if stream is None:
            stream = self.streams[channel] = Stream(self.new_epoch(), self.history_limits)
        return stream

    def publish(self, channel: Channel, body: object, now_s: float) -> tuple[int, list[Subscriber]]:
        """Publish ``body``; returns its offset and the subscribers found too slow."""
        stream = self.stream(channel)
        frame = encode_server_frame(
            "pub", ch=str(channel), epoch=stream.epoch, offset=stream.offset + 1, body=body
        )
        publication = stream.publish(frame, now_s)
        return publication.offset, self._fan_out(channel, frame)

    def _fan_out(self, channel: Channel, frame: bytes, skip: int | None = None) -> list[Subscriber]:
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

    def join(
        self,
        subscriber: Subscriber,
        channel: Channel,
        ref: str,
        since_offset: int | None,
        since_epoch: str | None,
        now_s: float,
    ) -> tuple[bytes, list[Subscriber]]:
        """Subscribe; returns the ``subscribed`` frame (with what was missed) and slow peers."""
        stream = self.stream(channel)
        if since_offset is not None and since_epoch is not None:
            recovery = stream.recover(since_offset, since_epoch, now_s)
            recovered = recovery.recovered
            missed = [orjson.loads(p.payload) for p in recovery.publications]
        else:
            recovered, missed = False, []
        subscribed = encode_server_frame(
            "subscribed",
            id=ref,
            ch=str(channel),
            epoch=stream.epoch,
            offset=stream.offset,
            recovered=recovered,
            publications=missed,
        )
        members = self.members.setdefault(channel, {})
        members[subscriber.id] = subscriber
        slow = self._presence_event("join", channel, subscriber, now_s)
        return subscribed, slow

    def leave(self, subscriber: Subscriber, channel: Channel, now_s: float) -> list[Subscriber]:
        members = self.members.get(channel)
        if not members or members.pop(subscriber.id, None) is None:
            return []
        if not members:
            del self.members[channel]
        return self._presence_event("leave", channel, subscriber, now_s)

    def _presence_event(
        self, kind: str, channel: Channel, subscriber: Subscriber, now_s: float
    ) -> list[Subscriber]:
        del now_s  # presence events are not kept
        frame = encode_server_frame(
            kind,
            ch=str(channel),
            subject=subscriber.principal.subject,
            role=str(subscriber.principal.role),
        )
        return self._fan_out(channel, frame, skip=subscriber.id)

    def presence(self, channel: Channel) -> list[dict[str, str]]:
        return [
            {"subject": s.principal.subject, "role": str(s.principal.role)}
            for s in self.members.get(channel, {}).values()
        ]
