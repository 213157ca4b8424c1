"""The matchmaker loop: one process per queue at a time, and never a ticket in two matches,
even with two processes on one Redis and one of them frozen past its lease."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import redis.asyncio as aioredis

from matchmaking.matcher import Member, QueueRules, Ticket
from matchmaking.rating import Rating, RatingModel
from matchmaking.redis_tickets import RedisTicketStore
from matchmaking.service import Expired, Matched, Matchmaker, QueueConfig
from matchmaking.tickets import MemoryTicketStore

ROOT = Path(__file__).resolve().parents[2]
Q = "cs2:1v1:eu"


def solo(name: str, mu: float, since: float) -> Ticket:
    return Ticket(f"t-{name}", (Member(name, Rating(mu, 2.0)),), since)


async def test_a_tick_claims_matches_and_expires_tickets() -> None:
    store = MemoryTicketStore()
    now = [100.0]
    events: list[object] = []

    async def collect(event: object) -> None:
        events.append(event)

    config = QueueConfig(Q, QueueRules(team_size=1), RatingModel())
    matchmaker = Matchmaker(store, {Q: config}, "node", collect, clock=lambda: now[0])  # type: ignore[arg-type]
    await store.add(Q, solo("a", 25, 90.0), 500.0)
    await store.add(Q, solo("b", 25.5, 95.0), 500.0)
    await store.add(Q, solo("c", 40, 99.0), 100.0)  # expires now
    produced = await matchmaker.run_once()
    assert produced == events
    [expired] = [e for e in events if isinstance(e, Expired)]
    [matched] = [e for e in events if isinstance(e, Matched)]
    assert expired.waiting.ticket.id == "t-c"
    assert matched.waited_s == {"t-a": 10.0, "t-b": 5.0}
    assert await store.waiting(Q) == []


async def test_two_processes_never_put_a_ticket_in_two_matches(
    redis_url: str, redis_prefix: str
) -> None:
    def start(owner: str, pause: float) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "matchmaking" / "run_matchmaker.py"),
                *("--redis-url", redis_url, "--prefix", redis_prefix, "--owner", owner),
                *("--queue", Q, "--seconds", "4", "--pause-before-claim-s", str(pause)),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )

    # The frozen one sleeps 0.5 s before each claim: its 0.3 s lease is gone by then, the other
    # takes over and claims the same tickets; the late claim must be refused.
    # The frozen one starts first, so it holds the lease when the first tickets arrive.
    client = aioredis.Redis.from_url(redis_url)
    frozen = start("frozen", 0.5)
    for _ in range(200):
        if await client.get(f"{redis_prefix}lease:{Q}"):
            break
        await asyncio.sleep(0.05)
    processes = [start("steady", 0.0), frozen]
    await asyncio.sleep(0.5)
    store = RedisTicketStore(client, redis_prefix)
    added = 0
    for round_ in range(30):
        for i in range(10):
            await store.add(Q, solo(f"p{round_}-{i}", 20 + i, round_), 1e12)
            added += 1
        await asyncio.sleep(0.08)
    await client.aclose()
    outputs = [p.communicate(timeout=30)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0]
    lines = [json.loads(line) for out in outputs for line in out.splitlines()]
    claims = [line for line in lines if "match" in line]
    refused = {line["owner"]: line["refused"] for line in lines if "refused" in line}
    tickets = [t for claim in claims for t in claim["tickets"]]
    assert len(tickets) == len(set(tickets)), "a ticket was claimed twice"
    assert len(tickets) >= added * 0.9
    owners = {claim["owner"] for claim in claims}
    assert "steady" in owners
    assert refused["frozen"] > 0, "the frozen matchmaker never lost a race: the test proved nothing"
