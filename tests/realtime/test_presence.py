"""Presence conformance over both stores, and a crashed node's members expiring (real Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from realtime.presence import MemoryPresence, PresenceStore, RedisPresence

ALICE = {"subject": "alice", "role": "player"}
BOB = {"subject": "bob", "role": "player"}


@pytest.fixture(params=["memory", "redis"])
async def presence(request: pytest.FixtureRequest) -> AsyncIterator[PresenceStore]:
    if request.param == "memory":
        yield MemoryPresence()
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
    store = RedisPresence(client, request.getfixturevalue("redis_prefix"), "node1")
    await store.heartbeat()
    try:
        yield store
    finally:
        await client.aclose()


async def test_add_remove_members(presence: PresenceStore) -> None:
    await presence.add("lobby:eu", "1", ALICE)
    await presence.add("lobby:eu", "2", BOB)
    await presence.add("lobby:na", "3", BOB)
    assert sorted(m["subject"] for m in await presence.members("lobby:eu")) == ["alice", "bob"]
    await presence.remove("lobby:eu", "2")
    await presence.remove("lobby:eu", "2")
    assert await presence.members("lobby:eu") == [ALICE]
    assert await presence.members("lobby:xx") == []


async def test_members_of_a_dead_node_disappear(redis_url: str, redis_prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        live = RedisPresence(client, redis_prefix, "live")
        crashed = RedisPresence(client, redis_prefix, "crashed")
        await live.heartbeat()
        await crashed.heartbeat()
        await live.add("lobby:eu", "1", ALICE)
        await crashed.add("lobby:eu", "7", BOB)
        assert len(await live.members("lobby:eu")) == 2
        # The crashed node stops refreshing; its key expires (simulated: TTL run out).
        await client.delete(f"{redis_prefix}node:crashed")
        assert await live.members("lobby:eu") == [ALICE]
        assert await client.hlen(f"{redis_prefix}presence:lobby:eu") == 1  # removed lazily
        ttl = await client.ttl(f"{redis_prefix}node:live")
        assert 0 < ttl <= 30
    finally:
        await client.aclose()
