"""Who is in a channel, across every node: the port, an in-process and a Redis adapter.

Redis keeps one hash per channel, ``presence:<ch>``, whose fields are ``<node>:<connection>``
and values the member's JSON (subject, role), and one key per live node, ``node:<node>``, that
the node refreshes every ``NODE_TTL_S / 3`` seconds and that expires ``NODE_TTL_S`` after its
last refresh. Members of a node whose key has expired (the node crashed or was cut off) are not
reported and are removed lazily: a crashed node's presence is gone within ``NODE_TTL_S``
(30 s; the issue asks for at most 60 s).
"""

from __future__ import annotations

from typing import Protocol

import orjson
import redis.asyncio as aioredis

NODE_TTL_S = 30


class PresenceStore(Protocol):
    async def add(self, channel: str, member: str, info: dict[str, str]) -> None: ...

    async def remove(self, channel: str, member: str) -> None: ...

    async def members(self, channel: str) -> list[dict[str, str]]: ...

    async def heartbeat(self) -> None:
        """Say this node is alive (Redis); nothing in process."""


class MemoryPresence:
    def __init__(self) -> None:
        self._channels: dict[str, dict[str, dict[str, str]]] = {}

    async def add(self, channel: str, member: str, info: dict[str, str]) -> None:
        self._channels.setdefault(channel, {})[member] = info

    async def remove(self, channel: str, member: str) -> None:
        members = self._channels.get(channel)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self._channels[channel]

    async def members(self, channel: str) -> list[dict[str, str]]:
        return list(self._channels.get(channel, {}).values())

    async def heartbeat(self) -> None:
        return None


def _b(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class RedisPresence:
    def __init__(self, client: aioredis.Redis, prefix: str, node: str) -> None:
        if ":" in node:
            raise ValueError("a node id has no ':'")
        self.client = client
        self.prefix = prefix
        self.node = node

    def _key(self, channel: str) -> str:
        return f"{self.prefix}presence:{channel}"

    async def heartbeat(self) -> None:
        await self.client.set(f"{self.prefix}node:{self.node}", b"1", ex=NODE_TTL_S)

    async def add(self, channel: str, member: str, info: dict[str, str]) -> None:
        await self.client.hset(self._key(channel), f"{self.node}:{member}", orjson.dumps(info))

    async def remove(self, channel: str, member: str) -> None:
        await self.client.hdel(self._key(channel), f"{self.node}:{member}")

    async def members(self, channel: str) -> list[dict[str, str]]:
        raw = await self.client.hgetall(self._key(channel))
        # The client does not decode responses: keys and values are bytes.
        entries = {_b(k): _b(v) for k, v in raw.items()}
        if not entries:
            return []
        nodes = sorted({field.split(b":", 1)[0] for field in entries})
        alive_flags = await self.client.mget([f"{self.prefix}node:{n.decode()}" for n in nodes])
        alive = {n for n, flag in zip(nodes, alive_flags, strict=True) if flag is not None}
        members: list[dict[str, str]] = []
        stale: list[bytes] = []
        for field, value in entries.items():
            if field.split(b":", 1)[0] in alive:
                members.append(orjson.loads(value))
            else:
                stale.append(field)
        if stale:
            await self.client.hdel(self._key(channel), *stale)
        return members


# KEYS[1] the account's hash; ARGV: this node, its count if admitted, the limit, the prefix of
# node keys. Counts of nodes whose key has expired are dropped, not counted.
_ADMIT_LUA = """
local fields = redis.call('HGETALL', KEYS[1])
local others = 0
for i = 1, #fields, 2 do
  local node = fields[i]
  if node ~= ARGV[1] then
    if redis.call('EXISTS', ARGV[4] .. node) == 1 then
      others = others + tonumber(fields[i + 1])
    else
      redis.call('HDEL', KEYS[1], node)
    end
  end
end
if others + tonumber(ARGV[2]) > tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""
COUNTS_KEY_TTL_S = 24 * 3600  # an account's hash outlives its last change this long at most


class RedisConnectionCounts:
    """How many connections each account has open on every node, so a per-account cap holds
    across processes. One hash per account, ``conns:<role>:<subject>``: a field per node, its
    value that node's count. A node only ever *sets* its own field to its own count (never
    increments), so a write that failed is simply written again later (:meth:`resync`) and
    the hash converges to the truth; a dead node's field is ignored once its ``node:`` key
    (the presence heartbeat) expires. Reads node keys the script was not given: one Redis,
    not a cluster."""

    def __init__(self, client: aioredis.Redis, prefix: str, node: str) -> None:
        self.client = client
        self.prefix = prefix
        self.node = node
        self._admit = client.register_script(_ADMIT_LUA)

    def _key(self, who: str) -> str:
        return f"{self.prefix}conns:{who}"

    async def admit(self, who: str, count: int, limit: int) -> bool:
        """Set this node's count of ``who`` to ``count`` unless that puts ``who`` over
        ``limit`` across the live nodes."""
        args: list[str | int] = [self.node, count, limit, f"{self.prefix}node:", COUNTS_KEY_TTL_S]
        return bool(await self._admit(keys=[self._key(who)], args=args))

    async def set(self, who: str, count: int) -> None:
        """This node's count of ``who`` is ``count`` (0: its field goes)."""
        if count > 0:
            await self.client.hset(self._key(who), self.node, count)
        else:
            await self.client.hdel(self._key(who), self.node)
