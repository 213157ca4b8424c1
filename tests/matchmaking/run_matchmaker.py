"""A matchmaker process for the multi-process test: works one queue on Redis and prints each
match it claimed as a JSON line. ``--pause-before-claim-s`` makes every claim wait first, as a
long GC pause or a frozen VM would, so its lease expires under it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import redis.asyncio as aioredis

from matchmaking.matcher import Proposal, QueueRules
from matchmaking.rating import RatingModel
from matchmaking.redis_tickets import RedisTicketStore
from matchmaking.service import Event, Matched, Matchmaker, QueueConfig
from matchmaking.tickets import ClaimedMatch


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--owner", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--pause-before-claim-s", type=float, default=0.0)
    args = parser.parse_args()
    client = aioredis.Redis.from_url(args.redis_url)
    store = RedisTicketStore(client, args.prefix)
    claim = store.claim
    refused = 0

    async def paused_claim(
        queue: str, token: int, proposals: list[Proposal]
    ) -> list[ClaimedMatch | None]:
        nonlocal refused
        if proposals and args.pause_before_claim_s:
            await asyncio.sleep(args.pause_before_claim_s)
        results = await claim(queue, token, proposals)
        refused += sum(1 for r in results if r is None)
        return results

    store.claim = paused_claim  # type: ignore[method-assign,assignment]

    async def report(event: Event) -> None:
        if isinstance(event, Matched):
            tickets = sorted(t.id for team in event.match.teams for t in team)
            line = {"owner": args.owner, "match": event.match.id, "tickets": tickets}
            print(json.dumps(line), flush=True)

    queue = QueueConfig(
        args.queue, QueueRules(team_size=1, window_start=50.0, window_max=50.0), RatingModel()
    )
    matchmaker = Matchmaker(store, {args.queue: queue}, args.owner, report, tick_s=0.05)
    matchmaker.lease_ttl_s = 0.3
    await matchmaker.start()
    await asyncio.sleep(args.seconds)
    await matchmaker.stop()
    await client.aclose()
    print(json.dumps({"owner": args.owner, "refused": refused}), flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
