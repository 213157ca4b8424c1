"""The game-server registry, in process and on Redis: slots are never given twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from matchmaking.servers import (
    GameServer,
    MemoryServerRegistry,
    RedisServerRegistry,
    ServerRegistry,
)


@pytest.fixture(params=["memory", "redis"])
async def registry(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[ServerRegistry]:
    if request.param == "memory":
        yield MemoryServerRegistry()
        return
    client = aioredis.Redis.from_url(redis_url)
    yield RedisServerRegistry(client, redis_prefix)
    await client.aclose()


async def test_allocation_fills_the_roomiest_server_of_the_region(registry: ServerRegistry) -> None:
    await registry.register(GameServer("a", "eu", 1, "10.0.0.1:27015"))
    await registry.register(GameServer("b", "eu", 2, "10.0.0.2:27015"))
    await registry.register(GameServer("c", "na", 5, "10.0.1.1:27015"))
    taken = [await registry.allocate("eu") for _ in range(4)]
    assert [s.id if s else None for s in taken] == ["b", "a", "b", None]
    assert taken[0] == GameServer("b", "eu", 2, "10.0.0.2:27015")
    assert await registry.allocate("mars") is None
    await registry.release("a")
    assert (await registry.allocate("eu")).id == "a"  # type: ignore[union-attr]
    await registry.unregister("b")
    await registry.release("b")  # nothing to release: no error
    assert await registry.allocate("eu") is None


async def test_registering_again_keeps_the_slots_in_use(registry: ServerRegistry) -> None:
    await registry.register(GameServer("a", "eu", 1, "x:1"))
    assert await registry.allocate("eu") is not None
    await registry.register(GameServer("a", "eu", 1, "x:2"))  # reconnected
    assert await registry.allocate("eu") is None


async def test_concurrent_allocations_never_share_a_slot(redis_url: str, redis_prefix: str) -> None:
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(4)]
    registries = [RedisServerRegistry(c, redis_prefix) for c in clients]
    for i in range(3):
        await registries[0].register(GameServer(f"s{i}", "eu", 5, f"h{i}:1"))
    results = await asyncio.gather(*(r.allocate("eu") for r in registries for _ in range(6)))
    taken = [s.id for s in results if s is not None]
    assert len(taken) == 15 and all(taken.count(f"s{i}") == 5 for i in range(3))
    for client in clients:
        await client.aclose()
