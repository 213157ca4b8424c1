"""The ticket store's rules, on the in-process and the Redis adapter alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from matchmaking.matcher import Member, QueueRules, Ticket, tick
from matchmaking.rating import Rating, RatingModel
from matchmaking.redis_tickets import RedisTicketStore
from matchmaking.tickets import AddOutcome, MemoryTicketStore, TicketStore, match_id

Q = "cs2:1v1:eu"
MODEL = RatingModel()
RULES = QueueRules(team_size=1)


def solo(name: str, mu: float = 25.0, since: float = 0.0) -> Ticket:
    return Ticket(f"t-{name}", (Member(name, Rating(mu, 2.5)),), since)


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[TicketStore]:
    if request.param == "memory":
        yield MemoryTicketStore()
        return
    client = aioredis.Redis.from_url(redis_url)
    yield RedisTicketStore(client, redis_prefix)
    await client.aclose()


async def test_a_player_waits_in_one_ticket_at_a_time(store: TicketStore) -> None:
    alice = solo("alice", since=1.0)
    assert await store.add(Q, alice, 100.0) is AddOutcome.OK
    assert await store.add(Q, alice, 100.0) is AddOutcome.EXISTS
    duo = Ticket("t-duo", (Member("bob", Rating(25, 2)), Member("alice", Rating(25, 2))), 2.0)
    assert await store.add("cs2:2v2:eu", duo, 100.0) is AddOutcome.PLAYER_BUSY
    assert await store.of_player("bob") is None  # a refused add changed nothing
    waiting = await store.of_player("alice")
    assert waiting is not None and (waiting.queue, waiting.ticket, waiting.expires_s) == (
        Q,
        alice,
        100.0,
    )
    cancelled = await store.cancel(alice.id)
    assert cancelled is not None and cancelled.ticket == alice
    assert await store.cancel(alice.id) is None
    assert await store.add("cs2:2v2:eu", duo, 100.0) is AddOutcome.OK


async def test_waiting_is_oldest_first_and_exact(store: TicketStore) -> None:
    tickets = [solo(f"p{i}", mu=20 + i * 0.123456789, since=10.0 - i) for i in range(5)]
    for t in tickets:
        await store.add(Q, t, 50.0)
    await store.add("other", solo("x"), 50.0)
    waiting = await store.waiting(Q)
    assert [w.ticket for w in waiting] == list(reversed(tickets))  # ratings round-trip exactly


async def test_expiry_and_the_disconnect_grace(store: TicketStore) -> None:
    await store.add(Q, solo("a"), 10.0)
    await store.add(Q, solo("b"), 20.0)
    assert await store.set_expiry("t-b", 5.0)  # b disconnected: a short grace
    assert not await store.set_expiry("t-nobody", 5.0)
    gone = await store.expire(Q, 6.0)
    assert [w.ticket.id for w in gone] == ["t-b"]
    assert await store.of_player("b") is None
    assert [w.ticket.id for w in await store.waiting(Q)] == ["t-a"]
    assert await store.set_expiry("t-a", 30.0)  # a came back within the grace
    assert await store.expire(Q, 12.0) == []


async def test_one_lease_holder_with_growing_fencing_tokens(store: TicketStore) -> None:
    first = await store.acquire(Q, "node-a", 5.0)
    assert first is not None
    assert await store.acquire(Q, "node-b", 5.0) is None
    assert await store.acquire(Q, "node-a", 5.0) == first  # renewed, same token
    await store.release(Q, "node-b")  # not the holder: nothing happens
    assert await store.acquire(Q, "node-b", 5.0) is None
    await store.release(Q, "node-a")
    second = await store.acquire(Q, "node-b", 5.0)
    assert second is not None and second > first


async def test_claim_is_all_or_nothing_and_needs_the_current_token(store: TicketStore) -> None:
    for name, mu in (("a", 25.0), ("b", 25.5), ("c", 30.0), ("d", 30.2)):
        await store.add(Q, solo(name, mu), 100.0)
    tickets = [w.ticket for w in await store.waiting(Q)]
    proposals = tick(tickets, 0.0, RULES, MODEL)
    assert len(proposals) == 2
    token = await store.acquire(Q, "node-a", 5.0)
    assert token is not None
    assert await store.claim(Q, token + 1, proposals) == [None, None]  # a stale or forged token
    await store.cancel("t-c")  # c left between the tick and the claim
    first, second = await store.claim(Q, token, proposals)
    claimed = first or second
    assert (first is None) != (second is None) and claimed is not None
    assert claimed.id == match_id(Q, sorted(claimed_ids := {"t-a", "t-b"}))
    assert {t.id for team in claimed.teams for t in team} == claimed_ids
    assert await store.match(claimed.id) == claimed
    assert await store.of_player("a") is None and await store.of_player("d") is not None
    assert await store.claim(Q, token, proposals) == [None, None]  # nothing twice


async def test_requeue_keeps_the_place_in_line(store: TicketStore) -> None:
    old = solo("old", since=1.0)
    await store.add(Q, solo("new", since=50.0), 100.0)
    await store.requeue(Q, [old], 100.0)
    assert [w.ticket.id for w in await store.waiting(Q)] == ["t-old", "t-new"]


async def test_concurrent_claims_never_share_a_ticket(redis_url: str, redis_prefix: str) -> None:
    """Two matchmakers on one Redis, racing on overlapping proposals: each ticket is claimed
    at most once, by the lease holder only."""
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
    stores = [RedisTicketStore(c, redis_prefix) for c in clients]
    for i in range(40):
        await stores[0].add(Q, solo(f"p{i}", 25 + (i % 7) * 0.3, since=i), 100.0)
    tickets = [w.ticket for w in await stores[0].waiting(Q)]
    proposals = tick(tickets, 10.0, RULES, MODEL)
    token_a = await stores[0].acquire(Q, "a", 5.0)
    assert token_a is not None and await stores[1].acquire(Q, "b", 5.0) is None
    results = await asyncio.gather(
        stores[0].claim(Q, token_a, proposals), stores[1].claim(Q, token_a - 1, proposals)
    )
    assert all(r is None for r in results[1])
    claimed = [m for m in results[0] if m is not None]
    ids = [t.id for m in claimed for team in m.teams for t in team]
    assert len(ids) == len(set(ids)) == 40
    for client in clients:
        await client.aclose()
