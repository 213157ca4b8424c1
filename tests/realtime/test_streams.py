"""One conformance suite over both stream stores: in-process and real Redis."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import jsonschema
import orjson
import pytest
import redis.asyncio as aioredis

from realtime.envelope import protocol_schema
from realtime.history import HistoryLimits
from realtime.streams import MemoryStreams, RedisStreams, StreamStore

SERVER_FRAMES = jsonschema.Draft202012Validator({**protocol_schema(), "$ref": "#/$defs/server"})
LIMITS = HistoryLimits(history_size_min=5, history_ttl_s_min=0.0, history_size_max=5)


@pytest.fixture(params=["memory", "redis"])
async def streams(request: pytest.FixtureRequest) -> AsyncIterator[StreamStore]:
    epochs = (f"epoch-{n}" for n in itertools.count())
    if request.param == "memory":
        yield MemoryStreams(LIMITS, new_epoch=lambda: next(epochs))
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    client = aioredis.Redis.from_url(url)
    try:
        yield RedisStreams(client, prefix, LIMITS, new_epoch=lambda: next(epochs))
    finally:
        await client.aclose()


async def test_offsets_frames_and_recovery(streams: StreamStore) -> None:
    results = [await streams.publish("lobby:eu", {"n": n}, 1.0) for n in range(3)]
    assert [offset for offset, _, _ in results] == [1, 2, 3]
    epoch = results[0][1]
    for offset, _, frame in results:
        decoded = orjson.loads(frame)
        SERVER_FRAMES.validate(decoded)
        assert decoded["data"]["offset"] == offset and decoded["data"]["epoch"] == epoch
    recovery = await streams.recover("lobby:eu", 1, epoch, 2.0)
    assert recovery.recovered and recovery.offset == 3
    assert [orjson.loads(p.payload)["data"]["body"] for p in recovery.publications] == [
        {"n": 1},
        {"n": 2},
    ]
    assert (await streams.recover("lobby:eu", 3, epoch, 2.0)).publications == ()
    assert not (await streams.recover("lobby:eu", 1, "another", 2.0)).recovered
    assert not (await streams.recover("lobby:eu", 9, epoch, 2.0)).recovered
    other = await streams.publish("lobby:na", "x", 1.0)
    assert other[0] == 1  # offsets are per channel


async def test_beyond_the_window_is_refused_never_a_gap(streams: StreamStore) -> None:
    results = [await streams.publish("match:1", n, 1.0) for n in range(12)]
    epoch = results[0][1]
    assert not (await streams.recover("match:1", 2, epoch, 1.0)).recovered
    recovered = await streams.recover("match:1", 7, epoch, 1.0)
    assert recovered.recovered and [p.offset for p in recovered.publications] == [8, 9, 10, 11, 12]


async def test_concurrent_publishers_get_distinct_consecutive_offsets(streams: StreamStore) -> None:
    results = await asyncio.gather(*(streams.publish("tournament:1", n, 1.0) for n in range(50)))
    assert sorted(offset for offset, _, _ in results) == list(range(1, 51))


async def test_a_batch_publishes_in_order_as_one_at_a_time_would(streams: StreamStore) -> None:
    first = await streams.publish("match:7", "before", 1.0)
    batch = [("match:7", {"n": 1}), ("user:u1", {"n": 2}), ("match:7", {"n": 3})]
    results = await streams.publish_many(batch, 1.0)
    assert [offset for offset, _, _ in results] == [2, 1, 3]
    assert results[0][1] == first[1]  # the channel's epoch goes on
    for (channel, body), (offset, epoch, frame) in zip(batch, results, strict=True):
        decoded = orjson.loads(frame)
        SERVER_FRAMES.validate(decoded)
        assert decoded["ch"] == channel and decoded["data"]["body"] == body
        assert decoded["data"]["offset"] == offset and decoded["data"]["epoch"] == epoch
    recovery = await streams.recover("match:7", 1, first[1], 1.0)
    assert [orjson.loads(p.payload)["data"]["body"] for p in recovery.publications] == [
        {"n": 1},
        {"n": 3},
    ]
    assert await streams.publish_many([], 1.0) == []
