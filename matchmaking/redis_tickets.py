"""The Redis ticket store: every process of a deployment shares the queues.

Keys (under ``prefix``; one Redis, not a cluster: scripts name keys they derive):

- ``q:<queue>``: sorted set of ticket ids, scored by ``waiting_since_s`` (oldest first);
- ``t:<ticket>``: hash with ``queue``, ``ticket`` (JSON) and ``expires``;
- ``pl:<player>``: the id of the ticket the player waits in (one at a time);
- ``lease:<queue>``: ``<owner>|<fencing token>`` with a TTL; ``fence:<queue>``: the counter;
- ``m:<match>``: the claimed match (JSON).

Adding, cancelling, expiring, leasing and claiming are each one Lua script, so each is atomic:
``claim`` checks the fencing token and that every ticket of a proposal still waits, then removes
them and writes the match, in one step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from .matcher import Proposal, Ticket
from .tickets import (
    AddOutcome,
    ClaimedMatch,
    Waiting,
    decode_match,
    decode_ticket,
    encode_match,
    encode_ticket,
    match_id,
)

_ADD = """
local p, q, tid = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', p .. 't:' .. tid) == 1 then return 'exists' end
for i = 7, #ARGV do
  if redis.call('EXISTS', p .. 'pl:' .. ARGV[i]) == 1 then return 'player_busy' end
end
redis.call('HSET', p .. 't:' .. tid, 'queue', q, 'ticket', ARGV[4], 'expires', ARGV[5])
redis.call('ZADD', p .. 'q:' .. q, ARGV[6], tid)
for i = 7, #ARGV do redis.call('SET', p .. 'pl:' .. ARGV[i], tid) end
return 'ok'
"""

# Removes one ticket (its hash, its queue entry, its players); returns {queue, ticket, expires}.
_REMOVE_FN = """
local function remove(p, tid)
  local fields = redis.call('HMGET', p .. 't:' .. tid, 'queue', 'ticket', 'expires')
  if not fields[1] then return nil end
  for _, m in ipairs(cjson.decode(fields[2]).members) do
    redis.call('DEL', p .. 'pl:' .. m[1])
  end
  redis.call('DEL', p .. 't:' .. tid)
  redis.call('ZREM', p .. 'q:' .. fields[1], tid)
  return fields
end
"""

_CANCEL = (
    _REMOVE_FN
    + """
local fields = remove(ARGV[1], ARGV[2])
if not fields then return false end
return fields
"""
)

_EXPIRE = (
    _REMOVE_FN
    + """
local p, q, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local gone = {}
for _, tid in ipairs(redis.call('ZRANGE', p .. 'q:' .. q, 0, -1)) do
  local expires = tonumber(redis.call('HGET', p .. 't:' .. tid, 'expires'))
  if expires and expires <= now then
    local fields = remove(p, tid)
    gone[#gone + 1] = fields
  end
end
return gone
"""
)

_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current then
  local owner, token = string.match(current, '^(.*)|(%d+)$')
  if owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
"""

_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and string.match(current, '^(.*)|') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

_CLAIM = (
    _REMOVE_FN
    + """
local p, q, token = ARGV[1], ARGV[2], ARGV[3]
local results = {}
local current = redis.call('GET', p .. 'lease:' .. q)
local valid = current and string.match(current, '|(%d+)$') == token
for i = 4, #ARGV do
  local proposal = cjson.decode(ARGV[i])
  local ok = valid and 1 or 0
  if ok == 1 then
    for _, tid in ipairs(proposal.tickets) do
      if redis.call('HGET', p .. 't:' .. tid, 'queue') ~= q then ok = 0 break end
    end
  end
  if ok == 1 then
    for _, tid in ipairs(proposal.tickets) do remove(p, tid) end
    redis.call('SET', p .. 'm:' .. proposal.id, proposal.record)
  end
  results[#results + 1] = ok
end
return results
"""
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _waiting(fields: Sequence[Any]) -> Waiting:
    queue, ticket, expires = (_text(f) for f in fields)
    return Waiting(queue, decode_ticket(json.loads(ticket)), float(expires))


class RedisTicketStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._add = client.register_script(_ADD)
        self._cancel = client.register_script(_CANCEL)
        self._expire = client.register_script(_EXPIRE)
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._claim = client.register_script(_CLAIM)

    async def add(self, queue: str, ticket: Ticket, expires_s: float) -> AddOutcome:
        outcome = await self._add(
            args=[
                self._prefix,
                queue,
                ticket.id,
                json.dumps(encode_ticket(ticket), separators=(",", ":")),
                repr(expires_s),
                repr(ticket.waiting_since_s),
                *(m.player for m in ticket.members),
            ]
        )
        return AddOutcome(_text(outcome))

    async def cancel(self, ticket_id: str) -> Waiting | None:
        fields = await self._cancel(args=[self._prefix, ticket_id])
        return None if not fields else _waiting(fields)

    async def of_player(self, player: str) -> Waiting | None:
        ticket_id = await self._client.get(f"{self._prefix}pl:{player}")
        if ticket_id is None:
            return None
        fields = await self._client.hmget(
            f"{self._prefix}t:{_text(ticket_id)}", ["queue", "ticket", "expires"]
        )
        return None if fields[0] is None else _waiting(fields)

    async def set_expiry(self, ticket_id: str, expires_s: float) -> bool:
        key = f"{self._prefix}t:{ticket_id}"
        # HSET only on an existing hash: a ticket matched meanwhile must not reappear.
        script = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSET', KEYS[1], 'expires', ARGV[1]) + 1 end return 0"
        changed = await self._client.eval(script, 1, key, repr(expires_s))
        return bool(changed)

    async def waiting(self, queue: str) -> list[Waiting]:
        ids = await self._client.zrange(f"{self._prefix}q:{queue}", 0, -1)
        if not ids:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for ticket_id in ids:
                pipe.hmget(f"{self._prefix}t:{_text(ticket_id)}", ["queue", "ticket", "expires"])
            rows = await pipe.execute()
        found = [_waiting(row) for row in rows if row[0] is not None]
        return sorted(found, key=lambda w: (w.ticket.waiting_since_s, w.ticket.id))

    async def size(self, queue: str) -> int:
        return int(await self._client.zcard(f"{self._prefix}q:{queue}"))

    async def expire(self, queue: str, now_s: float) -> list[Waiting]:
        gone = await self._expire(args=[self._prefix, queue, repr(now_s)])
        return [_waiting(fields) for fields in gone]

    async def acquire(self, queue: str, owner: str, ttl_s: float) -> int | None:
        token = await self._acquire(
            keys=[f"{self._prefix}lease:{queue}", f"{self._prefix}fence:{queue}"],
            args=[owner, max(1, int(ttl_s * 1000))],
        )
        return None if token is None else int(token)

    async def release(self, queue: str, owner: str) -> None:
        await self._release(keys=[f"{self._prefix}lease:{queue}"], args=[owner])

    async def claim(
        self, queue: str, fencing_token: int, proposals: Sequence[Proposal]
    ) -> list[ClaimedMatch | None]:
        if not proposals:
            return []
        matches = [
            ClaimedMatch(match_id(queue, sorted(p.tickets)), queue, p.teams, fencing_token)
            for p in proposals
        ]
        encoded = [
            json.dumps(
                {"id": m.id, "tickets": sorted(p.tickets), "record": encode_match(m)},
                separators=(",", ":"),
            )
            for m, p in zip(matches, proposals, strict=True)
        ]
        results = await self._claim(args=[self._prefix, queue, str(fencing_token), *encoded])
        return [m if ok else None for m, ok in zip(matches, results, strict=True)]

    async def match(self, match_id: str) -> ClaimedMatch | None:
        raw = await self._client.get(f"{self._prefix}m:{match_id}")
        return None if raw is None else decode_match(raw)

    async def requeue(self, queue: str, tickets: Sequence[Ticket], expires_s: float) -> None:
        for ticket in tickets:
            await self.add(queue, ticket, expires_s)
