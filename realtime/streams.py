"""Where channel streams live: the port, an in-process adapter and a Redis adapter.

Both assign offsets atomically per channel, keep the epoch, keep bounded history, build each
``pub`` frame once (the bytes every subscriber gets, on every node) and answer recovery exactly
or refuse it (see :mod:`realtime.history`). Redis keeps a channel as three keys under the
configured prefix: ``off:<ch>`` (the last offset, INCR), ``epoch:<ch>`` and ``hist:<ch>`` (a
Stream whose entry ids are ``<offset>-0``, capped at ``history_size_max`` entries); a Lua
script does a publication in one step and announces the frame on ``pub:<ch>`` (pub/sub) for the
other nodes. If the epoch key is lost (Redis flushed or evicted), the next publication starts a
new epoch and nobody recovers across it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Protocol

import orjson
import redis.asyncio as aioredis

from .history import HistoryLimits, Publication, Recovery, Stream

KEY_TTL_S = 24 * 3600  # an idle channel's keys expire a day after its last publication


def frame_parts(channel: str, body: object) -> tuple[bytes, bytes, bytes]:
    """The ``pub`` frame around its epoch and offset: head + epoch + middle + offset + tail."""
    head = b'{"v":1,"type":"pub","ch":' + orjson.dumps(channel) + b',"data":{"epoch":"'
    middle = b'","offset":'
    tail = b',"body":' + orjson.dumps(body) + b"}}"
    return head, middle, tail


class StreamStore(Protocol):
    async def publish(self, channel: str, body: object, now_s: float) -> tuple[int, str, bytes]:
        """Append; returns (offset, epoch, the pub frame)."""

    async def publish_many(
        self, items: Sequence[tuple[str, object]], now_s: float
    ) -> list[tuple[int, str, bytes]]:
        """Append each (channel, body) in order, as :meth:`publish` would one after the other
        (Redis: in one round trip)."""

    async def recover(
        self, channel: str, since_offset: int, since_epoch: str, now_s: float
    ) -> Recovery: ...


class MemoryStreams:
    def __init__(
        self,
        limits: HistoryLimits | None = None,
        new_epoch: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> None:
        self.limits = limits or HistoryLimits()
        self._new_epoch = new_epoch
        self._streams: dict[str, Stream] = {}

    def _stream(self, channel: str) -> Stream:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = Stream(self._new_epoch(), self.limits)
        return stream

    async def publish(self, channel: str, body: object, now_s: float) -> tuple[int, str, bytes]:
        stream = self._stream(channel)
        head, middle, tail = frame_parts(channel, body)
        frame = head + stream.epoch.encode() + middle + str(stream.offset + 1).encode() + tail
        publication = stream.publish(frame, now_s)
        return publication.offset, stream.epoch, frame

    async def publish_many(
        self, items: Sequence[tuple[str, object]], now_s: float
    ) -> list[tuple[int, str, bytes]]:
        return [await self.publish(channel, body, now_s) for channel, body in items]

    async def recover(
        self, channel: str, since_offset: int, since_epoch: str, now_s: float
    ) -> Recovery:
        return self._stream(channel).recover(since_offset, since_epoch, now_s)


_PUBLISH = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
    epoch = ARGV[1]
    redis.call('SET', KEYS[2], epoch)
    redis.call('DEL', KEYS[1], KEYS[3])
end
local offset = redis.call('INCR', KEYS[1])
local frame = ARGV[2] .. epoch .. ARGV[3] .. offset .. ARGV[4]
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[5], offset .. '-0', 'f', frame, 't', ARGV[6])
redis.call('PUBLISH', KEYS[4], frame)
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[7]) end
return {offset, epoch, frame}
"""

_RECOVER = """
local epoch = redis.call('GET', KEYS[2])
local offset = tonumber(redis.call('GET', KEYS[1]) or '0')
local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
local entries = {}
if epoch == ARGV[1] and tonumber(ARGV[2]) < offset then
    entries = redis.call('XRANGE', KEYS[3], (tonumber(ARGV[2]) + 1) .. '-0', '+')
end
local oldest = offset + 1
if first[1] then oldest = tonumber(string.match(first[1][1], '^(%d+)')) end
return {epoch or '', offset, oldest, entries}
"""


class RedisStreams:
    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        limits: HistoryLimits | None = None,
        new_epoch: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.limits = limits or HistoryLimits()
        self._new_epoch = new_epoch
        self._publish = client.register_script(_PUBLISH)
        self._recover = client.register_script(_RECOVER)

    def _keys(self, channel: str) -> list[str]:
        p = self.prefix
        return [
            f"{p}off:{channel}",
            f"{p}epoch:{channel}",
            f"{p}hist:{channel}",
            f"{p}pub:{channel}",
        ]

    def _args(self, channel: str, body: object, now_s: float) -> list[bytes | str | int]:
        head, middle, tail = frame_parts(channel, body)
        return [
            self._new_epoch(),
            head,
            middle,
            tail,
            self.limits.history_size_max,
            repr(now_s),
            KEY_TTL_S,
        ]

    async def publish(self, channel: str, body: object, now_s: float) -> tuple[int, str, bytes]:
        offset, epoch, frame = await self._publish(
            keys=self._keys(channel), args=self._args(channel, body, now_s)
        )
        return int(offset), epoch.decode(), bytes(frame)

    async def publish_many(
        self, items: Sequence[tuple[str, object]], now_s: float
    ) -> list[tuple[int, str, bytes]]:
        if not items:
            return []
        # One round trip; the scripts run in this order, each atomic (MULTI is not needed:
        # no reader relies on the batch being seen at once)
        async with self.client.pipeline(transaction=False) as pipe:
            for channel, body in items:
                await self._publish(
                    keys=self._keys(channel), args=self._args(channel, body, now_s), client=pipe
                )
            answers = await pipe.execute()
        return [(int(o), e.decode(), bytes(f)) for o, e, f in answers]

    async def recover(
        self, channel: str, since_offset: int, since_epoch: str, now_s: float
    ) -> Recovery:
        del now_s  # Redis keeps up to history_size_max entries, whatever their age
        epoch_raw, offset, oldest, entries = await self._recover(
            keys=self._keys(channel)[:3], args=[since_epoch, since_offset]
        )
        epoch = epoch_raw.decode() if epoch_raw else ""
        offset = int(offset)
        if epoch != since_epoch or not 0 <= since_offset <= offset:
            return Recovery(False, epoch, offset)
        if since_offset < offset and since_offset + 1 < int(oldest):
            return Recovery(False, epoch, offset)
        publications = []
        for entry_id, fields in entries:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            publications.append(
                Publication(int(entry_id.split(b"-")[0]), float(values[b"t"]), bytes(values[b"f"]))
            )
        return Recovery(True, epoch, offset, tuple(publications))
