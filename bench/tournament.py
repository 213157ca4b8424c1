"""Tournament benchmark: a 256-player double elimination and a 1,024-player Swiss played to the
end over the real hub, with bot players, bot game servers and spectators, on the embedded
defaults (one ``leetgaming serve``, SQLite, in-process broker) and on PostgreSQL + Redis (two
``leetgaming serve`` processes).

Each run: the players' wallets are funded through the ledger (a deposit each, as the wallet
will make them); an admin creates the tournament over REST (entry fee 100 USD cents, rake 10 %,
prizes 50/30/20 %), players register over REST (each fee held in the ledger), the admin seeds
and starts it. Every player bot holds a websocket on its ``user:`` channel and accepts each
``match.found`` at once; ``--servers`` game-server bots (capacity 64 each, keys issued over
REST) play each match they are assigned for a random ``--match-s`` to twice that, then send a
signed result (a random winner). ``--spectators`` spectators follow ``tournament:<id>``.

Figures, exactly:

- ``<run>_total_s``: from the admin's start to the first spectator seeing the phase become
  ``complete``; ``<run>_registration_s``: registering every player over REST.
- ``bracket_event_p50_ms`` / ``_p99_ms``: for every match and every spectator, from the
  moment the game server bot sends the final result to the moment the spectator reads the
  ``tournament.delta`` that carries it (one clock: every bot is in this process), over every
  run.
- ``payout_s``: from the final match's result sent to the last spectator reading its first
  ``tournament.payouts`` publication, which the server sends once the ledger has committed
  every prize (the largest over runs); ``<run>_payouts_repeated``: publications of the payouts
  a spectator had read already (the same outbox row carried out twice).
- ``reference_publish_p99_ms``: the floor, in the same run: lobby chat published by players
  and read by a spectator of the same serve processes (the hub with no result to process).

    python bench/tournament.py            # 256 DE and 1024 Swiss on both backends
    python bench/tournament.py --quick    # 32 DE and 64 Swiss on both backends, under a minute

The last line printed is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
import orjson
from common import (
    FRAME_TIMEOUT_S,
    PONG,
    Process,
    delete_prefix,
    free_port,
    open_channel,
    print_logs,
    rpc,
    send_call,
    sign_result,
    start_serve,
)
from websockets.asyncio.client import ClientConnection

from ledger import Ledger, Transfer, derive_id, open_store
from leetgaming.tokens import issue_access_token
from wallet import accounts

FEE = 100
RUN_TIMEOUT_S = 900.0


@dataclass
class Cluster:
    backend: str
    ports: list[int]
    secret: str
    database_url: str


@contextlib.asynccontextmanager
async def cluster(backend: str, postgres_url: str, redis_url: str) -> AsyncIterator[Cluster]:
    """One serve process on SQLite (embedded), or two on a fresh PostgreSQL database and a
    Redis prefix (distributed)."""
    tmp = Path(tempfile.mkdtemp(prefix="lgbench-tm-"))
    secret = secrets.token_urlsafe(32)
    prefix = f"lgbench:{secrets.token_hex(6)}:"
    name = f"lgbench_tm_{secrets.token_hex(4)}"
    admin = None
    started: list[Process] = []
    try:
        if backend == "embedded":
            database_url, redis, nodes = f"sqlite:///{tmp}/leetgaming.sqlite3", "", 1
        else:
            admin = await asyncpg.connect(postgres_url)
            await admin.execute(f'CREATE DATABASE "{name}"')
            database_url, redis, nodes = postgres_url.rsplit("/", 1)[0] + f"/{name}", redis_url, 2
        ports = [free_port() for _ in range(nodes)]
        for n, port in enumerate(ports):  # one after the other: the first one migrates
            cwd = tmp / f"node{n}"
            cwd.mkdir()
            started.append(
                await start_serve(
                    f"node{n}",
                    cwd,
                    port=port,
                    database_url=database_url,
                    redis_url=redis,
                    redis_prefix=prefix,
                    secret=secret,
                )
            )
        yield Cluster(backend, ports, secret, database_url)
    except BaseException:
        print_logs(started)
        raise
    finally:
        await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)
        if backend != "embedded":
            await delete_prefix(redis_url, prefix)
        if admin is not None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        shutil.rmtree(tmp, ignore_errors=True)


async def fund(database_url: str, players: list[str], amount: int) -> None:
    """A deposit into each player's wallet, written to the product's ledger."""
    store = await open_store(database_url)
    try:
        async with Ledger(store) as ledger:
            source = accounts.settlement("USD")
            for start in range(0, len(players), 1000):
                chunk = players[start : start + 1000]
                await ledger.create_accounts([source, *[accounts.user(p, "USD") for p in chunk]])
                outcomes = await ledger.create_transfers(
                    [
                        Transfer(
                            derive_id("bench.deposit", p),
                            source.id,
                            accounts.user(p, "USD").id,
                            amount,
                            "USD",
                            accounts.Code.DEPOSIT,
                        )
                        for p in chunk
                    ]
                )
                assert all(o.result.succeeded for o in outcomes), outcomes[:3]
    finally:
        await store.close()


def token(c: Cluster, subject: str, role: str = "player") -> str:
    return issue_access_token(
        c.secret, subject, role, "bench", int(time.time()), mfa=role == "admin"
    )


@dataclass
class Observed:
    sent: dict[str, float] = field(default_factory=dict)  # bracket match -> result sent
    seen: list[tuple[str, float]] = field(default_factory=list)  # (match, read) per spectator
    complete: list[float] = field(default_factory=list)
    payouts: list[float] = field(default_factory=list)  # each spectator's first
    payouts_repeated: int = 0  # payouts publications a spectator had seen already
    errors: list[str] = field(default_factory=list)
    accepted: int = 0


def bracket_match(match_id: str) -> str:
    return match_id.split(".")[2]  # t.<tournament>.<match>.<attempt>


async def player_bot(ws: ClientConnection, observed: Observed) -> None:
    """Accept every match found; answer the heartbeat."""
    while True:
        frame = orjson.loads(await ws.recv())
        if frame["type"] == "ping":
            await ws.send(PONG)
        elif frame["type"] == "pub" and frame["data"]["body"].get("kind") == "match.found":
            await send_call(ws, "a", "match.accept", match=frame["data"]["body"]["match"])
            observed.accepted += 1


async def server_bot(
    c: Cluster,
    n: int,
    http: httpx.AsyncClient,
    match_s: float,
    rng: random.Random,
    observed: Observed,
) -> tuple[ClientConnection, asyncio.Task[None]]:
    admin = {"Authorization": f"Bearer {token(c, 'bench-admin', 'admin')}"}
    issued = await http.post("/v1/admin/game-servers", json={"name": f"bench-{n}"}, headers=admin)
    issued.raise_for_status()
    key = issued.json()["key"]
    exchanged = await http.post("/v1/auth/game-server", json={"key": key})
    exchanged.raise_for_status()
    server_token, server_id = exchanged.json()["access_token"], exchanged.json()["subject"]
    ws = await open_channel(c.ports[n % len(c.ports)], server_token, f"gameserver:{server_id}")
    answer = await rpc(ws, "r", "server.register", region="eu", capacity=64, address=f"10.0.0.{n}")
    if answer["type"] != "rpc_result":
        raise RuntimeError(f"server.register refused: {answer['data']}")
    loop = asyncio.get_running_loop()

    async def finish(match_id: str) -> None:
        await asyncio.sleep(rng.uniform(match_s, 2 * match_s))
        ranks = [0, 1] if rng.random() < 0.5 else [1, 0]
        observed.sent[bracket_match(match_id)] = loop.time()
        await send_call(
            ws,
            f"x-{match_id}",
            "match.result",
            match=match_id,
            ranks=ranks,
            signature=sign_result(key, match_id, ranks),
        )

    async def serve() -> None:
        playing: set[asyncio.Task[None]] = set()
        while True:
            frame = orjson.loads(await ws.recv())
            if frame["type"] == "ping":
                await ws.send(PONG)
            elif frame["type"] == "pub" and frame["data"]["body"].get("kind") == "match.assigned":
                task = asyncio.create_task(finish(frame["data"]["body"]["match"]))
                playing.add(task)
                task.add_done_callback(playing.discard)
            elif frame["type"] == "error" or (frame["type"] == "rpc_error"):
                observed.errors.append(str(frame["data"])[:200])

    return ws, asyncio.create_task(serve())


async def spectator_bot(ws: ClientConnection, observed: Observed) -> None:
    loop = asyncio.get_running_loop()
    paid = False
    while True:
        frame = orjson.loads(await ws.recv())
        if frame["type"] == "ping":
            await ws.send(PONG)
            continue
        if frame["type"] != "pub":
            continue
        body = frame["data"]["body"]
        now = loop.time()
        if body["kind"] == "tournament.delta":
            for path, value in body["set"]:
                if path[0] == "matches" and value.get("result") is not None:
                    observed.seen.append((path[1], now))
                elif path == ["phase"] and value == "complete":
                    observed.complete.append(now)
        elif body["kind"] == "tournament.payouts":
            if paid:
                observed.payouts_repeated += 1
            else:
                observed.payouts.append(now)
                paid = True


async def reference_publish(c: Cluster, spectator_port: int, count: int) -> list[float]:
    """Lobby chat, player to spectator: the hub's own latency in this run (ms)."""
    loop = asyncio.get_running_loop()
    watcher = await open_channel(spectator_port, None, "lobby:bench")
    talkers = [
        await open_channel(c.ports[n % len(c.ports)], token(c, f"talker{n}"), "lobby:bench")
        for n in range(max(1, count // 4))
    ]
    latencies: list[float] = []

    async def discard(ws: ClientConnection) -> None:
        async for _ in ws:  # a talker reads what it is sent, as a client does: unread
            pass  # frames would stall its closing handshake (10 s each)

    readers = [asyncio.create_task(discard(ws)) for ws in talkers]
    try:
        for n in range(count):
            ws = talkers[n % len(talkers)]
            sent = loop.time()
            await ws.send(
                orjson.dumps(
                    {
                        "v": 1,
                        "type": "publish",
                        "id": f"p{n}",
                        "ch": "lobby:bench",
                        "data": {"body": {"text": str(sent)}},
                    }
                )
            )
            while True:
                frame = orjson.loads(await asyncio.wait_for(watcher.recv(), FRAME_TIMEOUT_S))
                if frame["type"] == "pub" and frame["data"]["body"].get("text") == str(sent):
                    latencies.append((loop.time() - sent) * 1000)
                    break
            # each talker sends 4 (the chat rate allows a burst of 5): no refusals
    finally:
        await asyncio.gather(*(ws.close() for ws in (watcher, *talkers)))
        await asyncio.gather(*readers, return_exceptions=True)
    return latencies


async def run_tournament(
    c: Cluster, kind: str, size: int, args: argparse.Namespace, rng: random.Random
) -> dict[str, Any]:
    run = f"{kind[:2]}{size}-{secrets.token_hex(3)}"
    players = [f"{run}-p{i}" for i in range(size)]
    await fund(c.database_url, players, 10 * FEE)
    observed = Observed()
    base = f"http://127.0.0.1:{c.ports[0]}"
    admin = {"Authorization": f"Bearer {token(c, 'bench-admin', 'admin')}"}
    loop = asyncio.get_running_loop()
    sockets: list[ClientConnection] = []
    tasks: list[asyncio.Task[None]] = []
    async with httpx.AsyncClient(base_url=base, timeout=FRAME_TIMEOUT_S) as http:
        config = {
            "name": f"bench {run}",
            "queue": "cs2:1v1:eu",
            "team_size": 1,
            "format": {"kind": kind},
            "entry_fee": {"asset": "USD", "amount": str(FEE)},
            "prize_asset": "USD",
            "payout_bps": [5000, 3000, 2000],
            "participants_min": 3,
            "participants_max": size,
            "rake_bps": 1000,
        }
        created = await http.post("/v1/admin/tournaments", json=config, headers=admin)
        created.raise_for_status()
        tid = created.json()["id"]
        (
            await http.post(f"/v1/admin/tournaments/{tid}/open-registration", headers=admin)
        ).raise_for_status()
        gate = asyncio.Semaphore(16)
        registration_started = loop.time()

        async def register(player: str) -> None:
            async with gate:
                answer = await http.post(
                    f"/v1/tournaments/{tid}/registration",
                    headers={"Authorization": f"Bearer {token(c, player)}"},
                )
                if answer.status_code != 201:
                    raise RuntimeError(f"registration refused: {answer.text}")

        await asyncio.gather(*(register(p) for p in players))
        registration_s = loop.time() - registration_started
        (
            await http.post(f"/v1/admin/tournaments/{tid}/seed", json={}, headers=admin)
        ).raise_for_status()
        try:
            connect_gate = asyncio.Semaphore(100)

            async def connected(n: int, player: str) -> ClientConnection:
                async with connect_gate:
                    return await open_channel(
                        c.ports[n % len(c.ports)], token(c, player), f"user:{player}"
                    )

            sockets += await asyncio.gather(*(connected(n, p) for n, p in enumerate(players)))
            tasks += [asyncio.create_task(player_bot(ws, observed)) for ws in sockets]
            for n in range(args.servers):
                ws, task = await server_bot(c, n, http, args.match_s, rng, observed)
                sockets.append(ws)
                tasks.append(task)
            for n in range(args.spectators):
                ws = await open_channel(c.ports[n % len(c.ports)], None, f"tournament:{tid}")
                sockets.append(ws)
                tasks.append(asyncio.create_task(spectator_bot(ws, observed)))
            started = loop.time()
            (
                await http.post(f"/v1/admin/tournaments/{tid}/start", headers=admin)
            ).raise_for_status()
            deadline = started + RUN_TIMEOUT_S
            while (
                len(observed.complete) < args.spectators or len(observed.payouts) < args.spectators
            ) and loop.time() < deadline:
                await asyncio.sleep(0.05)
                broken = [t for t in tasks if t.done()]
                if broken:
                    raise RuntimeError(f"a bot stopped: {broken[0].exception()!r}")
            if len(observed.complete) < args.spectators:
                raise RuntimeError(f"{run}: not complete after {RUN_TIMEOUT_S} s")
            final = max(observed.sent.values())
            bracket = (await http.get(f"/v1/tournaments/{tid}/bracket")).json()
            reference = await reference_publish(c, c.ports[-1], 40 if args.quick else 200)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    latencies = [(at - observed.sent[m]) * 1000 for m, at in observed.seen if m in observed.sent]
    played = sum(1 for m in bracket["matches"].values() if m["result"] is not None)
    return {
        "run": f"{c.backend} {kind} {size}",
        "total_s": min(observed.complete) - started,
        "registration_s": registration_s,
        "matches": played,
        "latencies_ms": latencies,
        "payout_s": max(observed.payouts) - final,
        "reference_ms": reference,
        "errors": observed.errors,
        "payouts_repeated": observed.payouts_repeated,
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    figures: dict[str, Any] = {}
    all_latencies: list[float] = []
    all_reference: list[float] = []
    payouts: list[float] = []
    for backend in args.backends.split(","):
        async with cluster(backend, args.postgres_url, args.redis_url) as c:
            for kind, size, label in (
                ("double_elimination", args.de_size, "de256"),
                ("swiss", args.swiss_size, "swiss1024"),
            ):
                result = await run_tournament(c, kind, size, args, rng)
                lat = result["latencies_ms"]
                print(
                    f"{result['run']:>32}: total {result['total_s']:.1f} s, {result['matches']} matches, "
                    f"registration {result['registration_s']:.1f} s; result -> spectator p50 "
                    f"{percentile(lat, 50):.1f} ms p99 {percentile(lat, 99):.1f} ms "
                    f"max {max(lat, default=math.nan):.1f} ms ({len(lat)} deliveries); final result -> "
                    f"payouts {result['payout_s'] * 1000:.0f} ms | reference chat p99 "
                    f"{percentile(result['reference_ms'], 99):.1f} ms; errors {len(result['errors'])}; "
                    f"payouts published again {result['payouts_repeated']}",
                    flush=True,
                )
                for error in result["errors"][:3]:
                    print(f"    error: {error}")
                key = f"{label}_{backend}"
                figures[f"{key}_total_s"] = round(result["total_s"], 2)
                figures[f"{key}_registration_s"] = round(result["registration_s"], 2)
                figures[f"{key}_bracket_event_p99_ms"] = round(percentile(lat, 99), 2)
                figures[f"{key}_payout_s"] = round(result["payout_s"], 3)
                figures[f"{key}_payouts_repeated"] = result["payouts_repeated"]
                figures[f"{label}_size"] = size
                if backend == "distributed" or f"{label}_total_s" not in figures:
                    figures[f"{label}_total_s"] = round(result["total_s"], 2)
                all_latencies += lat
                all_reference += result["reference_ms"]
                payouts.append(result["payout_s"])
    figures["bracket_event_p50_ms"] = round(percentile(all_latencies, 50), 2)
    figures["bracket_event_p99_ms"] = round(percentile(all_latencies, 99), 2)
    figures["payout_s"] = round(max(payouts), 3)
    figures["reference_publish_p99_ms"] = round(percentile(all_reference, 99), 2)
    figures["reference_publish_p50_ms"] = round(statistics.median(all_reference), 2)
    figures["match_s"] = args.match_s
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    parser.add_argument("--de-size", type=int, help="double elimination players (256; quick 32)")
    parser.add_argument("--swiss-size", type=int, help="Swiss players (1024; quick 64)")
    parser.add_argument("--match-s", type=float, help="shortest match (1.0 s; quick 0.2 s)")
    parser.add_argument("--servers", type=int, default=8, help="game-server bots, 64 slots each")
    parser.add_argument("--spectators", type=int, default=3)
    parser.add_argument("--backends", default="embedded,distributed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    args.de_size = args.de_size or (32 if args.quick else 256)
    args.swiss_size = args.swiss_size or (64 if args.quick else 1024)
    args.match_s = args.match_s if args.match_s is not None else (0.2 if args.quick else 1.0)
    print(
        f"tournament benchmark: DE {args.de_size}, Swiss {args.swiss_size}, matches "
        f"{args.match_s}-{2 * args.match_s} s, {args.servers} game servers, "
        f"{args.spectators} spectators; backends {args.backends}",
        flush=True,
    )
    figures = asyncio.run(main_async(args))
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
