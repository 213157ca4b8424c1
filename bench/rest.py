"""REST benchmark: the wallet and match creation under an open-loop load at fixed rates.

What it runs, all on 127.0.0.1: ``leetgaming serve`` with two workers on PostgreSQL (a fresh
database) and Redis (a fresh key prefix), and localstripe (a Stripe-compatible server) for the
card rail. Setup: ``--players`` players each deposit $500 by card (paid through localstripe,
credited by its signed webhook). Then, for each rate in ``--rates`` (requests per second), a
load of ``--seconds`` with this mix:

- ``GET /v1/wallet`` 35 %, ``GET /v1/transactions`` 25 %;
- ``POST /v1/deposits`` 15 % (a $20 card deposit: a PaymentIntent at localstripe);
- ``POST /v1/withdrawals`` 15 % ($1.00 back to the player's card: the holds, a refund at
  localstripe, the posts; the risk review is turned off for the run
  (``LEETGAMING_WITHDRAWAL_REVIEW_SCORE``) so every withdrawal takes the whole path);
- ``POST /v1/admin/matches`` 10 % (an organizer's 1v1: the ready check starts).

Open loop: request *i* is due at ``start + i / rate`` whether or not earlier ones have been
answered, and its latency runs from when it was due (a server that falls behind is charged for
the queue it builds, no coordinated omission). The client is a small HTTP/1.1 keep-alive pool
over asyncio streams, so it costs the shared two cores little.

Reference, in the same run at the same rates: a bare Starlette app (one JSON route) under the
same uvicorn with two workers, driven by the same client: the floor of this machine, this
client and the HTTP stack.

Each rate is measured ``--runs`` times; the figures are medians of the runs. The last line is
one JSON object: ``p95_ms_get_wallet``, ``p95_ms_post_deposits``, ``p95_ms_post_withdrawals``,
``p95_ms_get_transactions``, ``p95_ms_create_match`` and ``errors`` at the highest rate (1,000
requests/s unless ``--rates`` says otherwise), the same per rate under ``by_rate``, and the
reference's p95 per rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    BenchError,
    Process,
    clean_environment,
    delete_prefix,
    free_port,
    print_logs,
    spawn,
    start_process,
)
from leetgaming.tokens import issue_access_token

KINDS = ("get_wallet", "get_transactions", "post_deposits", "post_withdrawals", "create_match")
MIX = (35, 25, 15, 15, 10)
POOL_CONNECTIONS_MAX = 256
REQUEST_TIMEOUT_S = 30.0
SETUP_DEPOSIT_CENTS = 50_000
REFERENCE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def ref(request):
    return JSONResponse({"ok": True, "player": request.headers.get("authorization", "")[-8:]})

app = Starlette(routes=[Route("/ref", ref)])
"""


# A small HTTP/1.1 client --------------------------------------------------------------------


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length)
        out = b""
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return status, out
            out += chunk[:-2]

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Keep-alive connections to one port, one request each at a time."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[Connection] = []
        self.open = 0
        self.freed = asyncio.Condition()

    async def _take(self, fresh: bool = False) -> tuple[Connection, bool]:
        async with self.freed:
            while not self.idle and self.open >= POOL_CONNECTIONS_MAX:
                await self.freed.wait()
            if self.idle and not fresh:
                return self.idle.pop(), True
            if self.idle:  # make room: this one may have been closed by the server
                self.idle.pop().close()
                self.open -= 1
            self.open += 1
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except BaseException:
            async with self.freed:
                self.open -= 1
                self.freed.notify()
            raise
        return Connection(reader, writer), False

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: object | None = None,
    ) -> tuple[int, Any]:
        raw = None if body is None else orjson.dumps(body)
        for attempt in range(2):
            conn, reused = await self._take(fresh=attempt > 0)
            ok = False
            try:
                status, payload = await asyncio.wait_for(
                    conn.request(method, path, headers or {}, raw), REQUEST_TIMEOUT_S
                )
                ok = True
                return status, orjson.loads(payload) if payload else None
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                # A kept-alive connection the server closed while it was idle (uvicorn's
                # keep-alive timeout): nothing of the request was read, send it again once
                # on a new connection (every POST here carries an Idempotency-Key).
                partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
                if not reused or partial or attempt:
                    raise
            finally:
                async with self.freed:
                    if ok:
                        self.idle.append(conn)
                    else:
                        conn.close()
                        self.open -= 1
                    self.freed.notify()
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


# The load --------------------------------------------------------------------------------


@dataclass
class Player:
    id: str
    token: str
    deposit: str  # a succeeded card deposit to refund withdrawals to


@dataclass
class Load:
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    late_s: float = 0.0  # how far behind schedule the last request was sent


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_load(
    rate: int,
    seconds: float,
    one: Callable[[int, random.Random], Any],
    seed: int,
) -> Load:
    """Send ``rate * seconds`` requests on schedule; ``one(i, rng)`` makes request i and
    returns (kind, ok, detail)."""
    load = Load()
    rng = random.Random(seed)
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2
    tasks: list[asyncio.Task[None]] = []

    async def fire(i: int, due: float, kind_rng: random.Random) -> None:
        try:
            kind, ok, detail = await one(i, kind_rng)
        except Exception as exc:
            kind, ok, detail = "error", False, f"{type(exc).__name__}: {exc}"
        elapsed_ms = (time.perf_counter() - due) * 1000
        if kind in load.latencies_ms:
            load.latencies_ms[kind].append(elapsed_ms)
        if not ok:
            load.errors += 1
            if len(load.error_samples) < 5:
                load.error_samples.append(f"{kind}: {detail}"[:300])

    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(i, due, random.Random(rng.random()))))
    load.late_s = max(0.0, time.perf_counter() - (start + (total - 1) / rate))
    await asyncio.gather(*tasks)
    return load


def choose(rng: random.Random) -> str:
    return rng.choices(KINDS, weights=MIX)[0]


# Setup -----------------------------------------------------------------------------------


async def make_players(
    pool: Pool, secret: str, count: int, localstripe: str, pay_threads: int = 8
) -> list[Player]:
    import stripe

    sdk = stripe.StripeClient("sk_test_bench", base_addresses={"api": localstripe})
    players: list[Player] = []
    pending: list[tuple[str, str, str, str]] = []
    for n in range(count):
        pid = f"bench{n}-{secrets.token_hex(3)}"
        token = issue_access_token(secret, pid, "player", "bench", int(time.time()), 3600)
        status, body = await pool.request(
            "POST",
            "/v1/deposits",
            {"Authorization": f"Bearer {token}", "Idempotency-Key": f"setup-{pid}"},
            {"method": "card", "asset": "USD", "amount": str(SETUP_DEPOSIT_CENTS)},
        )
        if status != 201:
            raise BenchError(f"a setup deposit was refused: {status} {body}")
        pending.append((pid, token, body["id"], body["payment_intent"]))

    def pay(intent: str) -> None:
        method = sdk.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {
                    "number": "4242424242424242",
                    "exp_month": 12,
                    "exp_year": 2040,
                    "cvc": "123",
                },
            }
        )
        sdk.v1.payment_intents.update(intent, params={"payment_method": method.id})
        sdk.v1.payment_intents.confirm(intent)

    gate = asyncio.Semaphore(pay_threads)

    async def paid(intent: str) -> None:
        async with gate:
            await asyncio.to_thread(pay, intent)

    await asyncio.gather(*(paid(p[3]) for p in pending))
    deadline = time.monotonic() + 120
    for pid, token, deposit, _ in pending:
        while True:
            status, body = await pool.request(
                "GET", f"/v1/deposits/{deposit}", {"Authorization": f"Bearer {token}"}
            )
            if status == 200 and body["state"] == "succeeded":
                break
            if time.monotonic() > deadline:
                raise BenchError(f"a setup deposit was not credited: {status} {body}")
            await asyncio.sleep(0.2)
        players.append(Player(pid, token, deposit))
    return players


def product_request(
    pool: Pool, players: list[Player], admin_token: str, run: str
) -> Callable[[int, random.Random], Any]:
    async def one(i: int, rng: random.Random) -> tuple[str, bool, str]:
        kind = choose(rng)
        p = players[rng.randrange(len(players))]
        auth = {"Authorization": f"Bearer {p.token}"}
        key = {"Idempotency-Key": f"{run}-{i}"}
        if kind == "get_wallet":
            status, body = await pool.request("GET", "/v1/wallet", auth)
            return kind, status == 200, str(body)
        if kind == "get_transactions":
            status, body = await pool.request("GET", "/v1/transactions?limit=25", auth)
            return kind, status == 200, str(body)
        if kind == "post_deposits":
            status, body = await pool.request(
                "POST",
                "/v1/deposits",
                auth | key,
                {"method": "card", "asset": "USD", "amount": "2000"},
            )
            return kind, status == 201, str(body)
        if kind == "post_withdrawals":
            status, body = await pool.request(
                "POST",
                "/v1/withdrawals",
                auth | key,
                {"asset": "USD", "amount": "100", "rail": "card_refund", "destination": p.deposit},
            )
            return kind, status == 201 and body.get("state") == "sent", str(body)
        a, b = f"m{run}-{i}-a", f"m{run}-{i}-b"
        status, body = await pool.request(
            "POST",
            "/v1/admin/matches",
            {"Authorization": f"Bearer {admin_token}"} | key,
            {"queue": "cs2:1v1:eu", "teams": [[a], [b]]},
        )
        return kind, status == 201, str(body)

    return one


def reference_request(pool: Pool, players: list[Player]) -> Callable[[int, random.Random], Any]:
    async def one(i: int, rng: random.Random) -> tuple[str, bool, str]:
        p = players[rng.randrange(len(players))]
        status, body = await pool.request("GET", "/ref", {"Authorization": f"Bearer {p.token}"})
        return "get_wallet", status == 200, str(body)

    return one


def summary(load: Load) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, values in load.latencies_ms.items():
        out[kind] = {
            "n": len(values),
            "p50_ms": round(percentile(values, 0.50), 2),
            "p95_ms": round(percentile(values, 0.95), 2),
            "p99_ms": round(percentile(values, 0.99), 2),
        }
    out["errors"] = load.errors
    out["error_samples"] = load.error_samples
    out["late_s"] = round(load.late_s, 3)
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rates = [int(r) for r in args.rates.split(",")]
    work = Path(tempfile.mkdtemp(prefix="lgbench-rest-"))
    tag = secrets.token_hex(4)
    db_name = f"lgbench_rest_{tag}"
    prefix = f"lgbench:rest:{tag}:"
    admin = await asyncpg.connect(args.postgres_url)
    await admin.execute(f'CREATE DATABASE "{db_name}"')
    database_url = args.postgres_url.rsplit("/", 1)[0] + f"/{db_name}"
    processes: list[Process] = []
    secret = secrets.token_hex(32)
    try:
        stripe_port = free_port()
        localstripe = await spawn(
            "localstripe",
            [
                sys.executable,
                str(ROOT / "scripts" / "localstripe_server.py"),
                "--port",
                str(stripe_port),
            ],
            clean_environment(),
            work,
            stripe_port,
        )
        processes.append(localstripe)
        port = free_port()
        env = clean_environment() | {
            "LEETGAMING_PORT": str(port),
            "LEETGAMING_DATABASE_URL": database_url,
            "LEETGAMING_REDIS_URL": args.redis_url,
            "LEETGAMING_REDIS_PREFIX": prefix,
            "LEETGAMING_SECRET_KEY": secret,
            "LEETGAMING_WORKERS": "2",
            "LEETGAMING_LOG_LEVEL": "warning",
            "LEETGAMING_REST_REQUESTS_PER_MIN": "10000000",
            "LEETGAMING_STRIPE_SECRET_KEY": "sk_test_bench",
            "LEETGAMING_STRIPE_WEBHOOK_SECRET": "whsec_bench",
            "LEETGAMING_STRIPE_API_BASE": f"http://127.0.0.1:{stripe_port}",
            "LEETGAMING_WITHDRAWAL_REVIEW_SCORE": "1000",
            "LEETGAMING_WITHDRAWAL_DAILY_USD_CENTS": str(10**12),
        }
        server = await start_process(
            "serve",
            [sys.executable, "-m", "leetgaming", "serve"],
            env,
            work,
            "LeetGaming is running at",
        )
        processes.append(server)
        ref_port = free_port()
        (work / "bench_ref.py").write_text(REFERENCE_APP)
        reference = await spawn(
            "reference",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench_ref:app",
                "--port",
                str(ref_port),
                "--workers",
                "2",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            clean_environment() | {"PYTHONPATH": str(work)},
            work,
            ref_port,
        )
        processes.append(reference)
        pool = Pool(port)
        await wait_ready(pool)
        ref_pool = Pool(ref_port)
        await wait_ready(ref_pool, "/ref")
        import httpx

        async with httpx.AsyncClient() as http:
            hook = await http.post(
                f"http://127.0.0.1:{stripe_port}/_config/webhooks/bench",
                data={
                    "url": f"http://127.0.0.1:{port}/v1/webhooks/stripe",
                    "secret": "whsec_bench",
                },
            )
            hook.raise_for_status()
        t0 = time.perf_counter()
        players = await make_players(pool, secret, args.players, f"http://127.0.0.1:{stripe_port}")
        setup_s = time.perf_counter() - t0
        print(
            f"setup: {len(players)} players with a $500 card deposit in {setup_s:.1f} s", flush=True
        )
        admin_token = issue_access_token(
            secret, "bench-admin", "admin", "bench", int(time.time()), 3600, mfa=True
        )
        results: dict[int, list[dict[str, Any]]] = {r: [] for r in rates}
        references: dict[int, list[dict[str, Any]]] = {r: [] for r in rates}
        for run in range(args.runs):
            for rate in rates:
                ref = summary(
                    await run_load(rate, args.seconds, reference_request(ref_pool, players), run)
                )
                references[rate].append(ref)
                got = summary(
                    await run_load(
                        rate,
                        args.seconds,
                        product_request(pool, players, admin_token, f"r{run}x{rate}"),
                        run,
                    )
                )
                results[rate].append(got)
                line = ", ".join(
                    f"{k} p50 {got[k]['p50_ms']} p95 {got[k]['p95_ms']} p99 {got[k]['p99_ms']} ms"
                    for k in KINDS
                )
                print(
                    f"run {run + 1} at {rate}/s: {line}; errors {got['errors']}, "
                    f"late {got['late_s']} s | reference p95 {ref['get_wallet']['p95_ms']} ms",
                    flush=True,
                )
                for sample in got["error_samples"]:
                    print(f"  error: {sample}", flush=True)
        pool.close()
        ref_pool.close()
    except BaseException:
        print_logs(processes)
        raise
    finally:
        for process in reversed(processes):
            await process.stop()
        with contextlib.suppress(Exception):
            await admin.execute(f'DROP DATABASE "{db_name}" WITH (FORCE)')
        await admin.close()
        await delete_prefix(args.redis_url, prefix)

    def median(rate: int, kind: str, figure: str) -> float:
        return round(statistics.median(r[kind][figure] for r in results[rate]), 2)

    by_rate: dict[str, Any] = {}
    for rate in rates:
        by_rate[str(rate)] = {
            **{
                f"{fig}_ms_{k}": median(rate, k, f"{fig}_ms")
                for k in KINDS
                for fig in ("p50", "p95", "p99")
            },
            "errors": sum(r["errors"] for r in results[rate]),
            "reference_p95_ms": round(
                statistics.median(r["get_wallet"]["p95_ms"] for r in references[rate]), 2
            ),
            "late_s_max": max(r["late_s"] for r in results[rate]),
        }
    top = by_rate[str(max(rates))]
    return {
        **{f"p95_ms_{k}": top[f"p95_ms_{k}"] for k in KINDS},
        "errors": top["errors"],
        "rate_per_s": max(rates),
        "reference_p95_ms": top["reference_p95_ms"],
        "runs": args.runs,
        "seconds_per_run": args.seconds,
        "players": args.players,
        "setup_s": round(setup_s, 1),
        "by_rate": by_rate,
    }


async def wait_ready(pool: Pool, path: str = "/readyz") -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            status, _ = await pool.request("GET", path)
            if status == 200:
                return
        if time.monotonic() > deadline:
            raise BenchError(f"{path} did not answer 200 within 60 s")
        await asyncio.sleep(0.2)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    parser.add_argument("--rates", help="requests per second, comma-separated (500,1000)")
    parser.add_argument("--seconds", type=float, help="seconds per rate and run (15; quick 3)")
    parser.add_argument("--runs", type=int, help="runs of each rate (3; quick 1)")
    parser.add_argument("--players", type=int, help="players with a card deposit (200; quick 20)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "LEETGAMING_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("LEETGAMING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    args = parser.parse_args()
    quick = args.quick
    args.rates = args.rates or ("100,200" if quick else "500,1000")
    args.seconds = args.seconds or (3.0 if quick else 15.0)
    args.runs = args.runs or (1 if quick else 3)
    args.players = args.players or (20 if quick else 200)
    return args


if __name__ == "__main__":
    arguments = parse()
    print(
        f"REST benchmark: rates {arguments.rates}/s, {arguments.seconds:g} s x {arguments.runs} runs, "
        f"{arguments.players} players; serve with 2 workers on PostgreSQL + Redis, localstripe",
        flush=True,
    )
    figures = asyncio.run(main(arguments))
    print(json.dumps(figures))
