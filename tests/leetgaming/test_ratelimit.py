"""The rate limiter's rule, in process and in Redis (one conformance suite)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from leetgaming.ratelimit import (
    MemoryRateLimiter,
    Rate,
    RateLimiter,
    RedisRateLimiter,
    gcra,
    key_of,
)

T0 = 1_800_000_000_000


@pytest.fixture(params=["memory", "redis"])
async def limiter(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    client = aioredis.Redis.from_url(redis_url)
    yield RedisRateLimiter(client, redis_prefix)
    await client.aclose()


async def test_a_burst_then_one_per_interval(limiter: RateLimiter) -> None:
    rate = Rate(5, 60)  # 5 at once, then one every 12 s
    assert [await limiter.hit("k", rate, T0) for _ in range(5)] == [0] * 5
    assert await limiter.hit("k", rate, T0) == 12_000
    assert await limiter.hit("k", rate, T0 + 11_999) == 1  # a refusal counts nothing
    assert await limiter.hit("k", rate, T0 + 12_000) == 0
    assert await limiter.hit("k", rate, T0 + 12_000) > 0
    assert await limiter.hit("other", rate, T0) == 0  # keys are independent
    assert [await limiter.hit("k", rate, T0 + 600_000) for _ in range(5)] == [0] * 5


async def test_redis_limits_are_shared_by_every_process(redis_url: str, redis_prefix: str) -> None:
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
    first, second = (RedisRateLimiter(c, redis_prefix) for c in clients)
    rate = Rate(3, 60)
    results = [await (first if i % 2 else second).hit("ip:1", rate, T0) for i in range(4)]
    assert results[:3] == [0, 0, 0] and results[3] > 0
    for client in clients:
        await client.aclose()


def test_the_rule_is_pure_and_bounded() -> None:
    rate = Rate(2, 1)
    tat, wait = gcra(None, T0, rate)
    assert (tat, wait) == (T0 + 500, 0)
    assert gcra(T0 + 1000, T0, rate) == (None, 500)
    with pytest.raises(ValueError):
        Rate(0, 60)


async def test_memory_limiter_forgets_the_oldest_keys_beyond_its_bound() -> None:
    limiter = MemoryRateLimiter(keys_max=2)
    rate = Rate(1, 60)
    for key in ("a", "b", "c"):
        assert await limiter.hit(key, rate, T0) == 0
    assert await limiter.hit("a", rate, T0) == 0  # forgotten: memory stays bounded
    assert await limiter.hit("c", rate, T0) > 0


def test_personal_key_parts_are_hashed() -> None:
    key = key_of("login:account", "alice@example.com")
    assert "alice" not in key and key.startswith("login:account:") and len(key) == 14 + 32
