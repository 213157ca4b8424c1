"""CS2 ingest benchmark: 200 concurrent best-of-three series reported by get5/MatchZy event logs.

A Swiss tournament of twice ``--matches`` players (1v1 teams, best of three, entry
fee held in the ledger) is started on real ``leetgaming serve`` processes (two on PostgreSQL +
Redis, or one on SQLite); its first round's matches are allocated to ``--matches`` CS2 servers,
stand-ins in this process speaking RCON and the plugins' HTTP (tests/cs2_server.py): each is
told over RCON to load its match, fetches its config with the single-use token, and then
replays a 30-round-per-map BO3 event stream (tests/cs2_plugin.py: round_start, kills,
round_end with cumulative stats, map and series events; half the servers get5, half MatchZy
with its quirks) with resends (duplicates, later) and reordering mixed in, all servers at
once, paced to ``--rate`` events/s in total, one request in flight per server (a plugin's
log is sequential).

Figures, exactly:

- ``events_per_s``: bodies acknowledged (200) per second of the streaming phase;
- ``ingest_p50_ms`` / ``ingest_p99_ms``: request written to acknowledgement read, every body;
- ``lost_events``: distinct bodies acknowledged but absent from the match's stored event log
  (read back over REST, compared by SHA-256); ``double_applied_events``: bodies stored more
  than once, or acknowledged as new more than once; ``wrong_results``: series whose stored
  result differs from the script's;
- ``bracket_update_p99_ms``: from sending the body that decides a series (its last
  map_result or series_end, whichever went first) to a referee (an admin on
  ``referee:tournament.<id>``; the tournament has a 150 s spectator delay, so the public's
  ``tournament:<id>`` gets it later) reading the ``tournament.delta`` with that result;
- ``reference_ingest_p99_ms``: the same client, pacing and concurrency against a bare
  uvicorn + Starlette endpoint that answers 200 at once (this machine's HTTP floor, same run).

    python bench/cs2.py                 # 200 series at 2,000 events/s on PostgreSQL + Redis
    python bench/cs2.py --quick         # 20 shorter series at 500 events/s, under a minute
    python bench/cs2.py --backends embedded,distributed

The last line printed is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import random
import secrets
import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson
from common import FRAME_TIMEOUT_S, PONG, free_port, open_channel
from tournament import FEE, Cluster, Observed, bracket_match, cluster, fund, player_bot, token
from websockets.asyncio.client import ClientConnection

from leetgaming.db import open_database
from tests.cs2_plugin import Roster, reordered, series_events, with_resends
from tests.cs2_server import FakeCs2Server

SETUP_TIMEOUT_S = 40.0
FULL_MAPS = [("de_nuke", (16, 14)), ("de_mirage", (14, 16)), ("de_dust2", (16, 14))]
QUICK_MAPS = [("de_nuke", (13, 7)), ("de_mirage", (7, 13)), ("de_dust2", (13, 9))]


class KeepAlive:
    """A minimal HTTP/1.1 client on one kept-alive connection (httpx costs more CPU per
    request than the server under test on this machine)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Series:
    match: str
    url: str
    header: dict[str, str]
    bodies: list[bytes]
    decisive: set[int]  # indexes of the bodies that can decide the series
    ranks: list[int]
    results: list[tuple[int, int]]
    decided_sent: float | None = None
    acked_new: dict[str, int] = field(default_factory=dict)  # digest -> acks as new


@dataclass
class Streamed:
    latencies_ms: list[float] = field(default_factory=list)
    acked: int = 0
    refused: list[str] = field(default_factory=list)


def script(config: dict[str, Any], flavor: str, maps: list[Any], rng: random.Random) -> Series:
    flip = rng.random() < 0.5
    played = [(name, (b, a) if flip else (a, b)) for name, (a, b) in maps]
    rosters = [
        Roster(config[t]["name"], list(config[t]["players"].items())) for t in ("team1", "team2")
    ]
    clean = series_events(flavor, config["matchid"], rosters, played, seed=rng.randrange(1 << 30))
    messy = reordered(with_resends(clean, rng, 0.05), rng, 3)
    bodies = [orjson.dumps(b) for b in messy]
    decisive = {
        i
        for i, b in enumerate(messy)
        if b["event"] == "series_end"
        or (b["event"] == "map_result" and b["map_number"] == len(played) - 1)
    }
    wins = [1 if a > b else 2 for _, (a, b) in played]
    ranks = [0, 1] if wins.count(1) > wins.count(2) else [1, 0]
    prefix = "get5" if flavor == "get5" else "matchzy"
    cvars = config["cvars"]
    return Series(
        match="",
        url=cvars[f"{prefix}_remote_log_url"],
        header={
            cvars[f"{prefix}_remote_log_header_key"]: cvars[f"{prefix}_remote_log_header_value"]
        },
        bodies=bodies,
        decisive=decisive,
        ranks=ranks,
        results=[score for _, score in played],
    )


async def stream(series: Series, interval_s: float, start: float, out: Streamed) -> None:
    parts = urlsplit(series.url)
    client = KeepAlive(parts.hostname or "127.0.0.1", parts.port or 80)
    loop = asyncio.get_running_loop()
    try:
        for index, body in enumerate(series.bodies):
            wait = start + index * interval_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            sent = loop.time()
            if index in series.decisive and series.decided_sent is None:
                series.decided_sent = sent
            status, answer = await client.post(parts.path, series.header, body)
            out.latencies_ms.append((loop.time() - sent) * 1000)
            if status != 200:
                out.refused.append(f"{status} {answer[:120]!r}")
                continue
            out.acked += 1
            if not orjson.loads(answer)["duplicate"]:
                digest = hashlib.sha256(body).hexdigest()
                series.acked_new[digest] = series.acked_new.get(digest, 0) + 1
    finally:
        await client.close()


async def referee_bot(ws: ClientConnection, seen: dict[str, float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        frame = orjson.loads(await ws.recv())
        if frame["type"] == "ping":
            await ws.send(PONG)
        elif frame["type"] == "pub" and frame["data"]["body"]["kind"] == "tournament.delta":
            for path, value in frame["data"]["body"]["set"]:
                if (
                    path[0] == "matches"
                    and isinstance(value, dict)
                    and value.get("result") is not None
                ):
                    seen.setdefault(path[1], loop.time())


async def link_steam(database_url: str, players: list[str]) -> dict[str, str]:
    db = await open_database(database_url)
    ids = {p: str(76561198000000000 + n) for n, p in enumerate(players)}
    try:
        await db.executemany(
            "INSERT INTO external_identities (provider, subject, user_id, created_s) "
            "VALUES (?, ?, ?, ?)",
            [("steam", steamid, p, int(time.time())) for p, steamid in ids.items()],
        )
    finally:
        await db.close()
    return ids


async def run(c: Cluster, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    n = args.matches
    tag = secrets.token_hex(3)
    players = [f"cs{tag}-p{i}" for i in range(2 * n)]
    await fund(c.database_url, players, 10 * FEE)
    await link_steam(c.database_url, players)
    admin = {"Authorization": f"Bearer {token(c, 'bench-admin', 'admin')}"}
    loop = asyncio.get_running_loop()
    sockets: list[ClientConnection] = []
    tasks: list[asyncio.Task[None]] = []
    servers: list[FakeCs2Server] = []
    seen: dict[str, float] = {}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{c.ports[0]}", timeout=FRAME_TIMEOUT_S
    ) as http:
        try:
            for i in range(n):
                flavor = "get5" if i % 2 == 0 else "matchzy"
                server = FakeCs2Server(flavor, secrets.token_hex(8), http)
                await server.start()
                servers.append(server)
                added = await http.post(
                    "/v1/admin/cs2-servers",
                    json={
                        "name": f"b{tag}-{i}",
                        "flavor": flavor,
                        "region": "eu",
                        "address": f"198.51.100.{i % 250}:27015",
                        "rcon_host": "127.0.0.1",
                        "rcon_port": server.port,
                        "rcon_password": server.password,
                    },
                    headers=admin,
                )
                added.raise_for_status()
            created = await http.post(
                "/v1/admin/tournaments",
                json={
                    "name": f"cs2 bench {tag}",
                    "queue": "cs2:1v1:eu",
                    "team_size": 1,
                    "format": {"kind": "swiss"},
                    "best_of": [3],
                    "entry_fee": {"asset": "USD", "amount": str(FEE)},
                    "prize_asset": "USD",
                    "payout_bps": [5000, 3000, 2000],
                    "participants_min": 4,
                    "participants_max": 2 * n,
                    "rake_bps": 1000,
                    # the public sees the bracket later; referees (below) at once
                    "spectator_delay_s": 150,
                },
                headers=admin,
            )
            created.raise_for_status()
            tid = created.json()["id"]
            opened = await http.post(
                f"/v1/admin/tournaments/{tid}/open-registration", headers=admin
            )
            opened.raise_for_status()
            gate = asyncio.Semaphore(16)

            async def register(player: str) -> None:
                async with gate:
                    answer = await http.post(
                        f"/v1/tournaments/{tid}/registration",
                        headers={"Authorization": f"Bearer {token(c, player)}"},
                    )
                    if answer.status_code != 201:
                        raise RuntimeError(f"registration refused: {answer.text}")

            await asyncio.gather(*(register(p) for p in players))
            seeded = await http.post(f"/v1/admin/tournaments/{tid}/seed", json={}, headers=admin)
            seeded.raise_for_status()
            observed = Observed()
            connect_gate = asyncio.Semaphore(100)

            async def connected(i: int, player: str) -> ClientConnection:
                async with connect_gate:
                    return await open_channel(
                        c.ports[i % len(c.ports)], token(c, player), f"user:{player}"
                    )

            sockets += await asyncio.gather(*(connected(i, p) for i, p in enumerate(players)))
            tasks += [asyncio.create_task(player_bot(ws, observed)) for ws in sockets]
            referee = await open_channel(
                c.ports[-1], token(c, "bench-referee", "admin"), f"referee:tournament.{tid}"
            )
            sockets.append(referee)
            tasks.append(asyncio.create_task(referee_bot(referee, seen)))
            started = await http.post(f"/v1/admin/tournaments/{tid}/start", headers=admin)
            started.raise_for_status()
            configs = await asyncio.wait_for(
                asyncio.gather(*(s.configs.get() for s in servers)), SETUP_TIMEOUT_S
            )
            maps = QUICK_MAPS if args.quick else FULL_MAPS
            scripts = []
            for server, config in zip(servers, configs, strict=True):
                series = script(config, server.flavor, maps, rng)
                series.match = series.url.rsplit("/", 1)[-1]
                scripts.append(series)
            total = sum(len(s.bodies) for s in scripts)
            interval_s = n / args.rate
            out = Streamed()
            begun = loop.time() + 0.5
            await asyncio.gather(
                *(stream(s, interval_s, begun + rng.uniform(0, interval_s), out) for s in scripts)
            )
            streaming_s = loop.time() - begun
            deadline = loop.time() + 60
            wanted = {bracket_match(s.match) for s in scripts}
            while not wanted <= set(seen) and loop.time() < deadline:
                await asyncio.sleep(0.05)
            bracket_ms = [
                (seen[bracket_match(s.match)] - s.decided_sent) * 1000
                for s in scripts
                if bracket_match(s.match) in seen and s.decided_sent is not None
            ]
            lost = double = wrong = 0
            for s in scripts:
                stored: list[str] = []
                after = 0
                while True:
                    page = await http.get(
                        f"/v1/matches/{s.match}/cs2/events?after={after}&limit=1000",
                        headers=admin,
                    )
                    rows = page.json()["events"]
                    if not rows:
                        break
                    stored += [r["digest"] for r in rows]
                    after = rows[-1]["seq"]
                sent = {hashlib.sha256(b).hexdigest() for b in s.bodies}
                acked = set(s.acked_new)
                lost += len(acked - set(stored))
                double += len(stored) - len(set(stored))
                double += sum(k - 1 for k in s.acked_new.values() if k > 1)
                assert set(stored) <= sent
                series_doc = (await http.get(f"/v1/matches/{s.match}/cs2", headers=admin)).json()
                got = [tuple(m["result"]) for m in series_doc["maps"]]
                if series_doc["ranks"] != s.ranks or got != s.results:
                    wrong += 1
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
            for server in servers:
                await server.stop()
    return {
        "events": total,
        "acked": out.acked,
        "refused": out.refused,
        "events_per_s": out.acked / streaming_s,
        "latencies_ms": out.latencies_ms,
        "bracket_ms": bracket_ms,
        "bracket_seen": len(bracket_ms),
        "lost": lost,
        "double": double,
        "wrong": wrong,
        "streaming_s": streaming_s,
    }


BARE_APP = textwrap.dedent(
    """
    import sys, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ingest(request):
        await request.body()
        return JSONResponse({"accepted": True, "duplicate": False})

    app = Starlette(routes=[Route("/ingest", ingest, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                http="httptools", lifespan="off")
    """
)


async def reference(args: argparse.Namespace, bodies: list[bytes]) -> list[float]:
    """The same client, concurrency and pacing against a bare endpoint (the HTTP floor)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)])
    try:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        out = Streamed()
        loop = asyncio.get_running_loop()
        n = args.matches
        per = max(1, len(bodies) // n)
        begun = loop.time() + 0.2
        scripts = [
            Series(
                "",
                f"http://127.0.0.1:{port}/ingest",
                {},
                bodies[i * per : (i + 1) * per],
                set(),
                [],
                [],
            )
            for i in range(n)
        ]
        interval_s = n / args.rate
        spread = random.Random(1)  # each server's first send spread over one interval, as above
        await asyncio.gather(
            *(stream(s, interval_s, begun + spread.uniform(0, interval_s), out) for s in scripts)
        )
        return out.latencies_ms
    finally:
        proc.terminate()
        proc.wait(10)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    figures: dict[str, Any] = {"matches": args.matches, "rate_target_per_s": args.rate}
    runs: list[dict[str, Any]] = []
    for backend in args.backends.split(","):
        async with cluster(backend, args.postgres_url, args.redis_url) as c:
            result = await run(c, args, rng)
        lat = result["latencies_ms"]
        print(
            f"{backend:>12}: {result['events']} bodies in {result['streaming_s']:.1f} s, "
            f"{result['events_per_s']:.0f} acknowledged/s; ingest p50 "
            f"{percentile(lat, 50):.1f} ms p99 {percentile(lat, 99):.1f} ms max "
            f"{max(lat, default=math.nan):.1f} ms; refused {len(result['refused'])}; lost "
            f"{result['lost']}, double-applied {result['double']}, wrong results "
            f"{result['wrong']}; decisive body -> referee bracket p50 "
            f"{percentile(result['bracket_ms'], 50):.1f} ms p99 "
            f"{percentile(result['bracket_ms'], 99):.1f} ms ({result['bracket_seen']}/"
            f"{args.matches} seen)",
            flush=True,
        )
        for refusal in result["refused"][:3]:
            print(f"    refused: {refusal}")
        figures[f"{backend}_events_per_s"] = round(result["events_per_s"], 1)
        figures[f"{backend}_ingest_p99_ms"] = round(percentile(lat, 99), 2)
        figures[f"{backend}_ingest_p50_ms"] = round(percentile(lat, 50), 2)
        figures[f"{backend}_bracket_update_p99_ms"] = round(percentile(result["bracket_ms"], 99), 2)
        runs.append(result)
    bodies = [
        orjson.dumps({"event": "round_end", "matchid": "x", "n": i})
        for i in range(min(sum(r["acked"] for r in runs[-1:]), 40_000))
    ]
    ref = await reference(args, bodies)
    headline = runs[-1]
    figures |= {
        "events_per_s": round(headline["events_per_s"], 1),
        "ingest_p50_ms": round(percentile(headline["latencies_ms"], 50), 2),
        "ingest_p99_ms": round(percentile(headline["latencies_ms"], 99), 2),
        "bracket_update_p99_ms": round(percentile(headline["bracket_ms"], 99), 2),
        "lost_events": sum(r["lost"] for r in runs),
        "double_applied_events": sum(r["double"] for r in runs),
        "wrong_results": sum(r["wrong"] for r in runs),
        "refused_events": sum(len(r["refused"]) for r in runs),
        "reference_ingest_p50_ms": round(statistics.median(ref), 2) if ref else None,
        "reference_ingest_p99_ms": round(percentile(ref, 99), 2),
        "headline_backend": args.backends.split(",")[-1],
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    parser.add_argument("--matches", type=int, help="concurrent series (200; quick 20)")
    parser.add_argument("--rate", type=float, help="events/s in total (2000; quick 500)")
    parser.add_argument("--backends", default="distributed")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    args.matches = args.matches or (20 if args.quick else 200)
    args.rate = args.rate or (500.0 if args.quick else 2000.0)
    print(
        f"CS2 ingest benchmark: {args.matches} concurrent BO3 series, {args.rate:.0f} events/s "
        f"in total; backends {args.backends}",
        flush=True,
    )
    figures = asyncio.run(main_async(args))
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
