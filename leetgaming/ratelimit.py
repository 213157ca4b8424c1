"""Rate limits: the generic cell rate algorithm (GCRA), in-process or in Redis.

A :class:`Rate` allows ``count`` events per ``per_s`` seconds, all of them at once if they come
together (the burst is ``count``), and then one every ``per_s / count`` seconds. The state of a
key is one number, its theoretical arrival time (TAT); the same pure rule (:func:`gcra`) runs in
process and, as a Lua script, inside Redis, so every process of a deployment shares one limit.
Times are integer milliseconds passed in by the caller.

Keys are chosen by the caller (``login:ip:<ip>``); anything personal (an email) is hashed
before it becomes part of a key (:func:`key_of`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, Protocol

import redis.asyncio as aioredis

MEMORY_KEYS_MAX: Final = 100_000  # the in-process limiter forgets the oldest keys beyond this


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    per_s: int

    def __post_init__(self) -> None:
        if self.count < 1 or self.per_s < 1:
            raise ValueError("a rate allows at least 1 event per at least 1 second")

    @property
    def interval_ms(self) -> int:
        return max(1, self.per_s * 1000 // self.count)


def gcra(tat_ms: int | None, now_ms: int, rate: Rate) -> tuple[int | None, int]:
    """``(new TAT or None when refused, retry after ms (0 when allowed))`` (pure)."""
    tat = now_ms if tat_ms is None or tat_ms < now_ms else tat_ms
    new_tat = tat + rate.interval_ms
    allow_at = new_tat - rate.count * rate.interval_ms
    if now_ms < allow_at:
        return None, allow_at - now_ms
    return new_tat, 0


def key_of(*parts: str) -> str:
    """A key from parts that may be personal: the last one is hashed."""
    *head, personal = parts
    digest = hashlib.sha256(personal.encode()).hexdigest()[:32]
    return ":".join([*head, digest])


class RateLimiter(Protocol):
    async def hit(self, key: str, rate: Rate, now_ms: int) -> int:
        """Count one event; 0 when allowed, else the milliseconds to wait (nothing counted)."""
        ...


class MemoryRateLimiter:
    """One process's limits, bounded to :data:`MEMORY_KEYS_MAX` keys."""

    def __init__(self, keys_max: int = MEMORY_KEYS_MAX) -> None:
        self._tats: OrderedDict[str, int] = OrderedDict()
        self._keys_max = keys_max

    async def hit(self, key: str, rate: Rate, now_ms: int) -> int:
        new_tat, retry_ms = gcra(self._tats.get(key), now_ms, rate)
        if new_tat is not None:
            self._tats[key] = new_tat
            self._tats.move_to_end(key)
            while len(self._tats) > self._keys_max:
                self._tats.popitem(last=False)
        return retry_ms


# KEYS[1] the key; ARGV now_ms, interval_ms, count. The same rule as gcra().
_GCRA_LUA: Final = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - count * interval
if now < allow_at then return allow_at - now end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return 0
"""


class RedisRateLimiter:
    """Limits shared by every process on one Redis; keys under ``prefix``."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._prefix = prefix
        self._script = client.register_script(_GCRA_LUA)

    async def hit(self, key: str, rate: Rate, now_ms: int) -> int:
        retry_ms = await self._script(
            keys=[self._prefix + key], args=[now_ms, rate.interval_ms, rate.count]
        )
        return int(retry_ms)
