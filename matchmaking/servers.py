"""Game servers that can take matches: a registry port with an in-process and a Redis adapter.

A server registers its region, its capacity (matches at once) and the address players connect
to. ``allocate(region)`` atomically takes one free slot on a server of that region (the one
with the most room, ties by id), so two processes never put one slot to two matches;
``release`` gives it back when the match ends. A server that disconnects is unregistered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis


@dataclass(frozen=True, slots=True)
class GameServer:
    id: str
    region: str
    capacity: int
    address: str


class ServerRegistry(Protocol):
    async def register(self, server: GameServer) -> None: ...

    async def unregister(self, server_id: str) -> None: ...

    async def allocate(self, region: str) -> GameServer | None: ...

    async def release(self, server_id: str) -> None: ...


class MemoryServerRegistry:
    def __init__(self) -> None:
        self._servers: dict[str, GameServer] = {}
        self._used: dict[str, int] = {}

    async def register(self, server: GameServer) -> None:
        self._servers[server.id] = server
        self._used.setdefault(server.id, 0)

    async def unregister(self, server_id: str) -> None:
        self._servers.pop(server_id, None)
        self._used.pop(server_id, None)

    async def allocate(self, region: str) -> GameServer | None:
        candidates = [
            (self._used[s.id] - s.capacity, s.id)
            for s in self._servers.values()
            if s.region == region and self._used[s.id] < s.capacity
        ]
        if not candidates:
            return None
        _, chosen = min(candidates)
        self._used[chosen] += 1
        return self._servers[chosen]

    async def release(self, server_id: str) -> None:
        if self._used.get(server_id, 0) > 0:
            self._used[server_id] -= 1


_ALLOCATE = """
local best, best_room = nil, 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local f = redis.call('HMGET', ARGV[1] .. id, 'capacity', 'used')
  if f[1] then
    local room = tonumber(f[1]) - tonumber(f[2])
    if room > best_room or (room == best_room and room > 0 and id < best) then
      best, best_room = id, room
    end
  end
end
if not best then return false end
redis.call('HINCRBY', ARGV[1] .. best, 'used', 1)
return {best, unpack(redis.call('HMGET', ARGV[1] .. best, 'region', 'capacity', 'address'))}
"""

_RELEASE = """
local used = tonumber(redis.call('HGET', KEYS[1], 'used'))
if used and used > 0 then redis.call('HINCRBY', KEYS[1], 'used', -1) end
return 0
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisServerRegistry:
    """Servers as hashes ``gs:<id>`` (region, capacity, address, used) and a set per region."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._allocate = client.register_script(_ALLOCATE)
        self._release = client.register_script(_RELEASE)

    async def register(self, server: GameServer) -> None:
        key = f"{self._prefix}gs:{server.id}"
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "region": server.region,
                    "capacity": server.capacity,
                    "address": server.address,
                },
            )
            pipe.hsetnx(key, "used", 0)
            pipe.sadd(f"{self._prefix}gsr:{server.region}", server.id)
            await pipe.execute()

    async def unregister(self, server_id: str) -> None:
        key = f"{self._prefix}gs:{server_id}"
        region = await self._client.hget(key, "region")
        async with self._client.pipeline(transaction=True) as pipe:
            if region is not None:
                pipe.srem(f"{self._prefix}gsr:{_text(region)}", server_id)
            pipe.delete(key)
            await pipe.execute()

    async def allocate(self, region: str) -> GameServer | None:
        found = await self._allocate(
            keys=[f"{self._prefix}gsr:{region}"], args=[f"{self._prefix}gs:"]
        )
        if not found:
            return None
        server_id, found_region, capacity, address = (_text(v) for v in found)
        return GameServer(server_id, found_region, int(capacity), address)

    async def release(self, server_id: str) -> None:
        await self._release(keys=[f"{self._prefix}gs:{server_id}"])
