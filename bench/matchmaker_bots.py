"""The matchmaker end to end: bot players over real websockets, two serve processes sharing
PostgreSQL and Redis, a bot game server playing every match.

Each bot arrives at its time in a Poisson schedule (the same arrivals the simulation uses),
connects to one of the two processes (alternately), authenticates, follows its ``user:``
channel and sends ``queue.join``; its wait is from the ``queue.join`` answer to the
``match.found`` event. It accepts at once and leaves when its match is live. The game server
bot (one registered server in the queues' region, capacity 64) reports a signed result for
every match it is assigned, so matches finish and nobody is requeued by an allocation
timeout. Bots still waiting at the end count with their wait so far.

Ratings are written to the database before the bots arrive (the simulation's mu and sigma).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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

from leetgaming.db import PostgresDatabase
from leetgaming.tokens import issue_access_token
from matchmaking.matcher import Ticket
from matchmaking.queues import mode_of

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu"


@dataclass
class BotResult:
    waits: list[float] = field(default_factory=list)  # seconds, join answered -> match.found
    matched: int = 0
    still_waiting: int = 0
    failures: list[str] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)  # what the bots heard, by kind


@dataclass
class Cluster:
    ports: list[int]
    secret: str
    database_url: str


async def _player(
    cluster: Cluster, n: int, queue: str, ticket: Ticket, start: float, end: float, out: BotResult
) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start + ticket.waiting_since_s - loop.time()))
    name = ticket.members[0].player
    token = issue_access_token(cluster.secret, name, "player", "bench", int(time.time()))
    joined_at: float | None = None  # when its ticket was made
    found_after: float | None = None  # its wait, once a match was found for it
    try:
        async with contextlib.AsyncExitStack() as stack:
            ws = await open_channel(cluster.ports[n % len(cluster.ports)], token, f"user:{name}")
            stack.push_async_callback(ws.close)
            answer = await rpc(ws, "j", "queue.join", queue=queue)
            if answer["type"] != "rpc_result":
                out.failures.append(f"queue.join: {answer['data']}")
                return
            joined_at = loop.time()
            while True:
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), end - loop.time()))
                if frame["type"] == "ping":  # the hub's heartbeat: a client that is silent for
                    await ws.send(PONG)  # 60 s is closed
                if frame["type"] != "pub":
                    continue
                body = frame["data"]["body"]
                kind = body.get("kind")
                out.events[str(kind)] += 1
                if kind == "match.found":
                    found_after = loop.time() - joined_at
                    await send_call(ws, "a", "match.accept", match=body["match"])
                elif kind in ("match.cancelled", "match.aborted"):
                    # requeued at the front (its wait goes on from its first join)
                    found_after = None
                elif kind == "match.live":
                    break
    except TimeoutError:
        pass  # the run ended
    except Exception as exc:  # a bot that broke is reported, not hidden
        out.failures.append(f"{type(exc).__name__}: {exc}")
        return
    if found_after is not None:
        out.waits.append(found_after)
        out.matched += 1
    elif joined_at is not None:  # still waiting at the end: counted with its wait so far
        out.waits.append(loop.time() - joined_at)
        out.still_waiting += 1


async def _game_server(cluster: Cluster, ready: asyncio.Event, stats: dict[str, int]) -> None:
    """Registers one server and finishes every match it is given (the first team wins)."""
    base = f"http://127.0.0.1:{cluster.ports[0]}"
    admin = issue_access_token(
        cluster.secret, "bench-admin", "admin", "bench", int(time.time()), mfa=True
    )
    async with httpx.AsyncClient(base_url=base, timeout=FRAME_TIMEOUT_S) as http:
        issued = await http.post(
            "/v1/admin/game-servers",
            json={"name": "bench-eu-1"},
            headers={"Authorization": f"Bearer {admin}"},
        )
        issued.raise_for_status()
        key = issued.json()["key"]
        exchanged = await http.post("/v1/auth/game-server", json={"key": key})
        exchanged.raise_for_status()
        token, server_id = exchanged.json()["access_token"], exchanged.json()["subject"]
    ws = await open_channel(cluster.ports[1 % len(cluster.ports)], token, f"gameserver:{server_id}")
    try:
        registered = await rpc(
            ws, "r", "server.register", region=REGION, capacity=64, address="127.0.0.1:27015"
        )
        if registered["type"] != "rpc_result":
            raise RuntimeError(f"server.register refused: {registered['data']}")
        ready.set()
        while True:
            frame = orjson.loads(await ws.recv())
            if frame["type"] == "ping":
                await ws.send(PONG)
            if frame["type"] != "pub" or frame["data"]["body"].get("kind") != "match.assigned":
                continue
            match_id = frame["data"]["body"]["match"]
            ranks = [0, 1]
            signature = sign_result(key, match_id, ranks)
            await send_call(
                ws,
                f"r-{match_id}",
                "match.result",
                match=match_id,
                ranks=ranks,
                signature=signature,
            )
            stats["results"] += 1
    finally:
        await ws.close()


@contextlib.asynccontextmanager
async def cluster(postgres_url: str, redis_url: str) -> AsyncIterator[Cluster]:
    """Two ``leetgaming serve`` processes on a fresh PostgreSQL database and a Redis prefix."""
    name = f"lgbench_mm_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database_url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    tmp = Path(tempfile.mkdtemp(prefix="lgbench-mm-"))
    prefix = f"lgbench:{secrets.token_hex(6)}:"
    secret = secrets.token_urlsafe(32)
    started: list[Process] = []
    try:
        ports = [free_port(), free_port()]
        for n, port in enumerate(ports):  # one after the other: the first one migrates
            cwd = tmp / f"node{n}"
            cwd.mkdir()
            node = await start_serve(
                f"node{n}",
                cwd,
                port=port,
                database_url=database_url,
                redis_url=redis_url,
                redis_prefix=prefix,
                secret=secret,
            )
            started.append(node)
        yield Cluster(ports, secret, database_url)
    except BaseException:
        print_logs(started)
        raise
    finally:
        await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)
        await delete_prefix(redis_url, prefix)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(tmp, ignore_errors=True)


async def run_bots(
    postgres_url: str,
    redis_url: str,
    schedules: Mapping[str, tuple[str, Sequence[Ticket]]],
    seconds: float,
) -> tuple[dict[str, BotResult], dict[str, int]]:
    """Play ``schedules`` (per mode: the queue and its arrivals) for ``seconds``; each mode's
    bot results, and the game server's counts."""
    async with cluster(postgres_url, redis_url) as nodes:
        db = await asyncpg.connect(
            nodes.database_url, server_settings={"search_path": PostgresDatabase.schema}
        )
        try:
            rows = [
                (
                    t.members[0].player,
                    mode_of(queue),
                    t.members[0].rating.mu,
                    t.members[0].rating.sigma,
                    0,
                    time.time(),
                )
                for queue, tickets in schedules.values()
                for t in tickets
            ]
            await db.executemany(
                "INSERT INTO ratings (player, mode, mu, sigma, games, updated_s) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                rows,
            )
        finally:
            await db.close()
        stats = {"results": 0}
        ready = asyncio.Event()
        server = asyncio.create_task(_game_server(nodes, ready, stats))
        await asyncio.wait_for(ready.wait(), FRAME_TIMEOUT_S)
        loop = asyncio.get_running_loop()
        start = loop.time() + 1.0
        end = start + seconds
        results = {mode: BotResult() for mode in schedules}
        bots = [
            _player(nodes, n, queue, ticket, start, end, results[mode])
            for mode, (queue, tickets) in schedules.items()
            for n, ticket in enumerate(tickets)
        ]
        await asyncio.gather(*bots)
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await server
        return results, stats
