"""Hub benchmark: the websocket hub on two ``leetgaming serve`` processes and Redis, next to a
bare ``websockets.broadcast()`` server measured in the same run, from one load client.

Setup. Two ``python -m leetgaming serve`` processes on two ports share one Redis (a unique key
prefix, deleted at the end) and a throwaway SQLite file each; the reference is this file run
with ``--reference-server``: a ``websockets.asyncio.server.serve`` (no compression) that keeps
rooms as sets of connections and, for each publish, builds the same ``pub`` frame once and calls
``websockets.broadcast(room, frame)``, timing that call. The load client is this process: uvloop
and websockets' sans-I/O protocol under an ``asyncio.Protocol`` (no task per connection), so
20,000 sockets cost it little; where one process would pass the file-descriptor limit (idle
phase), helper processes of this file (``--hold``) hold the connections. Client connections
alternate between the two serve processes; a room's publisher is on one of them, so
publications cross Redis to reach the other process's subscribers. Publishers stay within the
hub's rates: lobby chat (``{"text": ...}``, the send time as its text) 1/s per connection, so a
room has several publisher connections used in turn; other messages 20/s. Rooms are built with
at most ``--setup-concurrency`` connects in flight, and a client whose connect, auth or
subscribe fails retries (as a real one would); failed attempts are counted and printed.

Each figure, exactly:

- ``idle_connections`` / ``bytes_per_connection``: N connections (half on each process), each
  authenticated (a player access token) and subscribed to one room of 10; memory per connection
  is (sum of both processes' VmRSS with the N open - the sum before) / N. The reference holds
  min(N, 10,000) bare connections, each in a room set (``reference_bytes_per_connection``).
- ``deliveries_per_s`` / ``delivery_p50_ms`` / ``delivery_p99_ms``: rooms of 10-100
  subscribers (sizes drawn uniformly, seeded), one publisher per room publishing at a fixed
  schedule so that the offered load is ``--rate`` deliveries/s, for ``--seconds``. A delivery is
  one ``pub`` frame read by one subscriber; the rate is deliveries read / (last delivery - first
  publish). Latency is end to end: the publisher puts ``time.monotonic_ns()`` in the body just
  before sending, the subscriber reads the clock when the bytes arrive (same host, one clock).
  ``lost_messages`` = for every subscriber, publications to its room after it subscribed minus
  those it read; ``out_of_order`` counts offsets read at or below one already read. The same
  rooms and schedule are run against the reference (``reference_deliveries_per_s`` ...).
- ``fanout_<N>_p99_ms``: one room of N subscribers, one publication at a time (the next once
  every subscriber read the previous one); p99 over every delivery of every event, end to end.
  ``fanout_<N>_server_ms``: the median over events of the server-side time, which for ours is
  ``leetgaming_hub_fanout_seconds`` (the time to queue the frame for every local subscriber
  and, on the fast path ``leetgaming serve`` uses, write it to each socket) read from each
  process's /metrics after each event, the larger of the two processes; for the reference it
  is the time of the ``websockets.broadcast()`` call, which writes to every socket. Every
  subscribe to a room of at most 200 sends a ``join`` to every member already there, so
  building a room costs up to N x 200 frames:
  a size whose build, extrapolated from the previous size, would pass
  ``--fanout-build-budget-s`` is skipped for ours (null in the JSON, the reason printed).
- ``reconnect_storm_s``: N clients in rooms of 10, each having read one publication; all their
  TCP connections are aborted at once, a few publications go to every room while they are
  away, then all reconnect (at most ``--connect-concurrency`` connects in flight), authenticate
  and resubscribe with ``since_offset`` / ``since_epoch``. The figure is the time from the
  drop to the last client holding ``recovered: true`` with exactly the missed offsets.
  ``reference_reconnect_storm_s``: N clients reconnecting to the reference (no recovery there).
- ``slow_consumer_p99_change_pct``: a room of N - 1 subscribers (admins on a game server's
  channel, where a game-server token may publish bodies up to the 64 KiB frame limit; lobby
  chat is capped at 500 characters); a burst of ``--slow-messages`` publications of
  ``--slow-body`` bytes at ``--slow-rate``/s is sent and the others' p99 measured; then one more
  subscriber joins (its socket's SO_RCVBUF set to 4 KiB) and stops reading (its transport's
  reading is paused: its TCP window closes, the server's socket buffer and then its 1 MiB send
  queue fill), the same burst is sent again; the figure is (p99 with - p99 without) / p99
  without x 100. ``slow_consumer_cut``: the server cut the slow client off before it caught up:
  reading again, it found the close code 4001 (or a ``disconnect`` frame with it) after the
  backlog, or the server had already dropped the connection (a client that reads nothing for
  ``send_stall_s`` is dropped, buffers and all); ``slow_consumer_cut_how`` says which.

``--repeat N`` runs every phase N times and reports medians (runs listed in ``detail``); the
default is 1 (a full run takes several minutes). The last line printed is one JSON object with
the headline figures; ``sizes`` says which sizes were used: ``fanout_100/1000/10000_*`` are the
three fan-out sizes given (``fanout_<slot>_size`` says which; --quick uses 100, 300, 600).
``lost_messages`` adds the sustained, fan-out and storm losses of ours.

    python bench/hub.py            # full run (the issue's sizes; several minutes)
    python bench/hub.py --quick    # under a minute, smaller sizes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import resource
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.typing import Origin
from websockets.uri import parse_uri

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import (  # noqa: E402
    BenchError,
    Process,
    clean_environment,
    delete_prefix,
    free_port,
    print_logs,
    raise_nofile,
    start_process,
    start_serve,
)

from leetgaming.tokens import issue_access_token  # noqa: E402

PUB_PREFIX = b'{"v":1,"type":"pub"'
CONNECT_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0
KEEPALIVE_S = 20.0  # our server closes a connection that sent nothing for 60 s
TOKEN_TTL_S = 3600
CHAT_RATE_PER_S = 0.8  # the hub allows 1 chat publication/s per connection (burst 5)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def median(values: Iterable[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


# --- the load client --------------------------------------------------------------------------


def chat(now_ns: int) -> dict[str, Any]:
    """A lobby chat body carrying the send time (lobby publishes are ``{"text": ...}``)."""
    return {"text": str(now_ns)}


def sent_ns(body: Any) -> int:
    """The send time a publication's body carries (chat text, or ``t``), 0 if none."""
    if type(body) is dict:
        if "t" in body:
            return int(body["t"])
        text = body.get("text")
        if type(text) is str and text.isdigit():
            return int(text)
    return 0


class Tally:
    """Deliveries read by a set of clients: counts, order, end-to-end latency."""

    def __init__(self) -> None:
        self.latencies_ns: list[int] = []
        self.count = 0
        self.stale = 0  # an offset at or below one already read
        self.first_ns = 0
        self.last_ns = 0
        self.record = True

    def pub(self, client: Client, data: bytes, now_ns: int) -> None:
        frame = orjson.loads(data)["data"]
        offset = frame["offset"]
        if offset <= client.last_offset:
            self.stale += 1
            return
        client.last_offset = offset
        client.epoch = frame["epoch"]
        client.read += 1
        self.count += 1
        self.last_ns = now_ns
        if self.record:
            sent = sent_ns(frame["body"])
            if sent:
                self.latencies_ns.append(now_ns - sent)

    def sorted_ms(self) -> list[float]:
        return sorted(v / 1e6 for v in self.latencies_ns)


class Client(asyncio.Protocol):
    """One websocket connection: websockets' sans-I/O protocol, frames handled as they arrive."""

    def __init__(self, port: int, tally: Tally | None = None) -> None:
        self.ws = ClientProtocol(
            parse_uri(f"ws://127.0.0.1:{port}/ws"),
            origin=Origin(f"http://127.0.0.1:{port}"),  # the server's own pages
            max_size=None,
        )
        self.port = port
        self.tally = tally
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.next_id = 0
        self.last_offset = 0
        self.epoch = ""
        self.read = 0
        self.presence_events = 0
        self.disconnect_code: int | None = None
        self.close_code: int | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Response):
                if ws.handshake_exc is not None or event.status_code != 101:
                    self.opened.set_exception(BenchError(f"handshake: {event.status_code}"))
                else:
                    self.opened.set_result(None)
            elif event.opcode is Opcode.TEXT:
                self._text(event.data, now)
            elif event.opcode is Opcode.CLOSE:
                self.close_code = ws.close_code
        self._flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = self.ws.close_code
        why = f"close code {self.close_code}, disconnect {self.disconnect_code}, {exc!r}"
        if not self.opened.done():
            self.opened.set_exception(BenchError(f"lost before the handshake: {why}"))
        for waiter in self.waiting.values():
            if not waiter.done():
                waiter.set_exception(BenchError(f"connection lost: {why}"))
        self.waiting.clear()
        if not self.lost.done():
            self.lost.set_result(None)

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            elif not transport.is_closing():
                transport.close()

    def _text(self, data: bytes, now_ns: int) -> None:
        if data.startswith(PUB_PREFIX):
            if self.tally is not None:
                self.tally.pub(self, data, now_ns)
            return
        frame = orjson.loads(data)
        kind = frame["type"]
        if kind in ("join", "leave"):
            self.presence_events += 1
            return
        if kind == "ping":  # the server's heartbeat
            self.ws.send_text(b'{"v":1,"type":"pong"}')
            self._flush()
            return
        if kind == "disconnect":
            self.disconnect_code = frame["data"]["code"]
            return
        if kind == "error":
            waiter = self.waiting.pop(frame["data"].get("ref") or "", None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(BenchError(f"error frame: {frame['data']}"))
            return
        waiter = self.waiting.pop(frame.get("id") or "", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(frame)

    # commands
    def send(self, frame: dict[str, Any]) -> str:
        self.next_id += 1
        ref = str(self.next_id)
        self.ws.send_text(orjson.dumps({"v": 1, "id": ref, **frame}))
        self._flush()
        return ref

    def request(self, frame: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[self.send(frame)] = waiter
        return waiter

    async def call(self, frame: dict[str, Any], timeout: float = CALL_TIMEOUT_S) -> dict[str, Any]:
        return await asyncio.wait_for(self.request(frame), timeout)

    def ping(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.ws.send_text(b'{"v":1,"type":"ping"}')
            self._flush()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()


async def connect(port: int, tally: Tally | None = None, rcvbuf: int | None = None) -> Client:
    loop = asyncio.get_running_loop()
    sock = None
    if rcvbuf is not None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        _, client = await loop.create_connection(lambda: Client(port, tally), sock=sock)
    else:
        _, client = await loop.create_connection(lambda: Client(port, tally), "127.0.0.1", port)
    try:
        await asyncio.wait_for(client.opened, CONNECT_TIMEOUT_S)
    except BaseException:
        client.abort()
        raise
    return client


class Tokens:
    """Access tokens minted here with the servers' secret (as the identity service would)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._cache: dict[tuple[str, str], str] = {}

    def get(self, subject: str, role: str = "player") -> str:
        token = self._cache.get((subject, role))
        if token is None:
            now = int(time.time())
            token = issue_access_token(
                self.secret, subject, role, "bench", now, TOKEN_TTL_S, mfa=role == "admin"
            )
            self._cache[(subject, role)] = token
        return token


@dataclass
class Target:
    """A server to measure: ours (two processes) or the reference (one)."""

    name: str
    ports: list[int]
    pids: list[int]
    tokens: Tokens
    ours: bool

    def port(self, i: int) -> int:
        return self.ports[i % len(self.ports)]

    async def client(
        self,
        i: int,
        tally: Tally | None = None,
        channel: str | None = None,
        since: tuple[int, str] | None = None,
        rcvbuf: int | None = None,
        role: str = "player",
        subject: str | None = None,
    ) -> tuple[Client, dict[str, Any] | None]:
        """Connect client ``i``, authenticate it and subscribe it to ``channel``."""
        client = await connect(self.port(i), tally, rcvbuf)
        try:
            token = self.tokens.get(subject or f"u{i}", role)
            await client.call({"type": "auth", "data": {"token": token}})
            subscribed = None
            if channel is not None:
                data = {} if since is None else {"since_offset": since[0], "since_epoch": since[1]}
                subscribed = (
                    await client.call({"type": "subscribe", "ch": channel, "data": data})
                )["data"]
                client.last_offset = subscribed["offset"]
                client.epoch = subscribed["epoch"]
            return client, subscribed
        except BaseException:
            client.abort()
            raise


async def gather_bounded(
    count: int, make: Callable[[int], Awaitable[Any]], concurrency: int
) -> list[Any]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with semaphore:
            return await make(i)

    return await asyncio.gather(*(one(i) for i in range(count)))


async def open_room(
    target: Target,
    channel: str,
    count: int,
    tally: Tally,
    concurrency: int,
    first: int = 0,
    role: str = "player",
) -> list[Client]:
    async def make(i: int) -> Client:
        client, _ = await target.client(first + i, tally, channel, role=role)
        return client

    return list(await gather_bounded(count, make, concurrency))


async def publishers(
    target: Target, count: int, first: int, role: str = "player", subject: str | None = None
) -> list[Client]:
    async def make(i: int) -> Client:
        client, _ = await target.client(first + i, role=role, subject=subject)
        return client

    return list(await gather_bounded(count, make, 100))


def close_all(clients: Iterable[Client]) -> None:
    for client in clients:
        client.abort()


class Keepalive:
    """Sends a protocol ping on every registered client now and then (idle timeout: 60 s)."""

    def __init__(self) -> None:
        self.groups: list[list[Client]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            for group in self.groups:
                for client in group:
                    client.ping()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# --- processes: ours, the reference, helpers -------------------------------------------------


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for {pid}")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def http_get(port: int, path: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return data.decode().split("\r\n\r\n", 1)[1]


async def fanout_metrics(port: int) -> tuple[float, float]:
    """(sum, count) of ``leetgaming_hub_fanout_seconds`` on one process."""
    total = count = 0.0
    for line in (await http_get(port, "/metrics")).splitlines():
        if line.startswith("leetgaming_hub_fanout_seconds_sum "):
            total = float(line.split()[1])
        elif line.startswith("leetgaming_hub_fanout_seconds_count "):
            count = float(line.split()[1])
    return total, count


async def settle(pids: list[int], quiet_cpu: float = 0.05, timeout_s: float = 120.0) -> float:
    """Wait until the processes use less than ``quiet_cpu`` of a core each (work drained)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = [cpu_s(p) for p in pids]
        await asyncio.sleep(0.25)
        after = [cpu_s(p) for p in pids]
        if all((b - a) / 0.25 < quiet_cpu for a, b in zip(before, after, strict=True)):
            break
    return time.monotonic() - started


# --- the reference server --------------------------------------------------------------------


async def reference_server(port: int) -> None:
    """A bare websockets server: rooms are sets; a publish is one websockets.broadcast()."""
    import websockets
    from websockets.asyncio.server import ServerConnection, serve

    rooms: dict[str, set[ServerConnection]] = {}
    offsets: dict[str, int] = {}

    async def handler(ws: ServerConnection) -> None:
        joined: list[str] = []
        try:
            async for message in ws:
                frame = orjson.loads(message)
                kind, ref, channel = frame["type"], frame.get("id"), frame.get("ch")
                if kind == "publish":
                    offset = offsets[channel] = offsets.get(channel, 0) + 1
                    pub = (
                        b'{"v":1,"type":"pub","ch":'
                        + orjson.dumps(channel)
                        + b',"data":{"epoch":"reference","offset":'
                        + str(offset).encode()
                        + b',"body":'
                        + orjson.dumps(frame["data"]["body"])
                        + b"}}"
                    ).decode()
                    started = time.perf_counter()
                    websockets.broadcast(rooms.get(channel, ()), pub)
                    took = time.perf_counter() - started
                    reply = {"type": "published", "offset": offset, "broadcast_s": took}
                elif kind == "subscribe":
                    rooms.setdefault(channel, set()).add(ws)
                    joined.append(channel)
                    reply = {
                        "type": "subscribed",
                        "epoch": "reference",
                        "offset": offsets.get(channel, 0),
                        "recovered": False,
                        "publications": [],
                    }
                elif kind == "auth":
                    reply = {"type": "auth_ok"}
                else:
                    continue
                kind = reply.pop("type")
                await ws.send(
                    orjson.dumps(
                        {"v": 1, "type": kind, "id": ref, "ch": channel, "data": reply}
                    ).decode()
                )
        finally:
            for channel in joined:
                rooms[channel].discard(ws)

    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        max_size=65536,
        ping_interval=None,
        backlog=2048,  # uvicorn's default (asyncio's is 100)
    ):
        print("ready", flush=True)
        await asyncio.Future()


# --- the idle holders (helper processes) -----------------------------------------------------


async def hold(args: argparse.Namespace) -> None:
    """Hold ``--count`` connections, authenticated and subscribed (rooms of 10), until stdin
    closes; print one JSON line when they are all open."""
    raise_nofile()
    ports = [int(p) for p in args.ports.split(",")]
    target = Target("held", ports, [], Tokens(os.environ["LGBENCH_SECRET"]), True)
    rooms = max(1, args.count // 10)

    failed = 0

    async def make(i: int) -> Client | None:
        nonlocal failed
        for attempt in range(1, 11):  # as a client would: retry, with a growing pause
            try:
                client, _ = await target.client(
                    args.first + i, None, f"lobby:{args.room_prefix}-{i % rooms}"
                )
            except (OSError, BenchError, TimeoutError):
                failed += 1
                await asyncio.sleep(random.uniform(0.05, 0.2) * attempt)
                continue
            return client
        return None

    started = time.monotonic()
    clients = [c for c in await gather_bounded(args.count, make, 100) if c is not None]
    print(
        json.dumps(
            {
                "open": len(clients),
                "failed_attempts": failed,
                "seconds": round(time.monotonic() - started, 2),
            }
        ),
        flush=True,
    )
    keepalive = Keepalive()
    keepalive.groups.append(clients)
    keepalive.start()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await keepalive.stop()
    still = sum(1 for c in clients if c.is_open)
    close_all(clients)
    print(json.dumps({"still_open": still}), flush=True)


# --- the phases ------------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    ours: Target
    reference: Target
    nodes: list[Process]
    tmp: Path
    secret: str
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    next_client: int = 0

    def ids(self, count: int) -> int:
        first = self.next_client
        self.next_client += count
        return first

    async def quiet(self) -> float:
        return await settle(self.ours.pids + self.reference.pids)


async def phase_idle(bench: Bench, target: Target, count: int) -> dict[str, Any]:
    """Hold ``count`` connections in helper processes (each under the descriptor limit)."""
    per_helper = 9_000
    helpers = max(1, math.ceil(count / per_helper))
    await bench.quiet()
    before = sum(rss_bytes(p) for p in target.pids)
    env = dict(os.environ, LGBENCH_SECRET=bench.secret)
    env = {k: v for k, v in env.items() if not k.startswith("LEETGAMING_")}
    processes = []
    started = time.monotonic()
    for h in range(helpers):
        n = count // helpers + (1 if h < count % helpers else 0)
        # Helper h's connections alternate over the target's ports, as everywhere else.
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--hold",
            "--ports",
            ",".join(str(p) for p in target.ports),
            "--count",
            str(n),
            "--first",
            str(bench.ids(n)),
            "--room-prefix",
            f"idle-{bench.run_id}-{target.name}-{h}",
        ]
        processes.append(
            await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                preexec_fn=raise_nofile,
            )
        )
    try:
        opened = failed = 0
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 600)
            if not line:
                raise BenchError("an idle holder died")
            opened += json.loads(line)["open"]
            failed += json.loads(line)["failed_attempts"]
        took = time.monotonic() - started
        await asyncio.sleep(2.0)
        await settle(target.pids)
        after = sum(rss_bytes(p) for p in target.pids)
    finally:
        for process in processes:
            assert process.stdin is not None
            with contextlib.suppress(Exception):
                process.stdin.close()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
    return {
        "asked": count,
        "held": opened,
        "failed_attempts": failed,
        "open_s": round(took, 2),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "bytes_per_connection": round((after - before) / max(opened, 1)),
    }


def room_sizes(rooms: int, low: int, high: int, seed: int = 3) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(low, high) for _ in range(rooms)]


async def phase_sustained(
    bench: Bench, target: Target, sizes: list[int], rate: float, seconds: float
) -> dict[str, Any]:
    """Rooms of ``sizes`` subscribers; publishers offer ``rate`` deliveries/s for ``seconds``."""
    tally = Tally()
    subscribers = sum(sizes)
    per_room_rate = rate / subscribers  # publications/s in every room
    # Lobby chat is limited to 1 publication/s per connection (burst 5): each room has enough
    # publisher connections to stay under it, used in turn.
    per_sender = math.ceil(per_room_rate / CHAT_RATE_PER_S)
    channels = [f"lobby:s-{bench.run_id}-{target.name}-{r}" for r in range(len(sizes))]
    started = time.monotonic()
    rooms: list[list[Client]] = []
    for channel, size in zip(channels, sizes, strict=True):
        rooms.append(await open_room(target, channel, size, tally, 200, first=bench.ids(size)))
    senders = await publishers(target, len(sizes) * per_sender, bench.ids(len(sizes) * per_sender))
    setup_s = time.monotonic() - started
    await bench.quiet()
    bases = [[c.last_offset for c in room] for room in rooms]
    cpu_before = [cpu_s(p) for p in target.pids]
    rusage_before = resource.getrusage(resource.RUSAGE_SELF)
    begin = time.monotonic()
    end = begin + seconds
    tally.first_ns = time.monotonic_ns()
    finals = [0] * len(sizes)

    failures = {"publish_errors": 0, "publisher_reconnects": 0}

    async def publish(r: int) -> None:
        mine, channel = senders[r * per_sender : (r + 1) * per_sender], channels[r]
        interval = 1.0 / per_room_rate
        due = begin + random.random() * interval
        acks = []
        while due < end:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            k = len(acks) % per_sender
            if not mine[k].is_open:  # the server dropped it: count it, connect again
                failures["publisher_reconnects"] += 1
                mine[k], _ = await target.client(bench.ids(1))
                senders.append(mine[k])
            acks.append(
                mine[k].request(
                    {"type": "publish", "ch": channel, "data": {"body": chat(time.monotonic_ns())}}
                )
            )
            due += interval
        done = await asyncio.wait_for(asyncio.gather(*acks, return_exceptions=True), 60)
        offsets = [a["data"]["offset"] for a in done if isinstance(a, dict)]
        failures["publish_errors"] += len(done) - len(offsets)
        finals[r] = max(offsets, default=0)

    await asyncio.gather(*(publish(r) for r in range(len(sizes))))
    published_s = time.monotonic() - begin
    await asyncio.sleep(0.5)
    # A publication whose answer was lost may still have gone out: the room's last offset is
    # the highest one anybody saw.
    finals = [
        max([final, *(c.last_offset for c in room)])
        for final, room in zip(finals, rooms, strict=True)
    ]
    expected = sum(
        final - base for final, room_bases in zip(finals, bases, strict=True) for base in room_bases
    )
    deadline = time.monotonic() + 30
    while tally.count < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    cpu_after = [cpu_s(p) for p in target.pids]
    rusage_after = resource.getrusage(resource.RUSAGE_SELF)
    span_s = max(1e-9, (tally.last_ns - tally.first_ns) / 1e9)
    latencies = tally.sorted_ms()
    publications = sum(finals) - sum(b[0] if b else 0 for b in bases)
    server_cpu = sum(cpu_after) - sum(cpu_before)
    client_cpu = (rusage_after.ru_utime + rusage_after.ru_stime) - (
        rusage_before.ru_utime + rusage_before.ru_stime
    )
    for room in rooms:
        close_all(room)
    close_all(senders)
    return {
        "rooms": len(sizes),
        "subscribers": subscribers,
        "offered_per_s": round(rate),
        "publications": publications,
        "publish_s": round(published_s, 2),
        "deliveries": tally.count,
        "deliveries_per_s": round(tally.count / span_s),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "lost": expected - tally.count,
        "out_of_order": tally.stale,
        **failures,
        "setup_s": round(setup_s, 1),
        "server_cpu_us_per_delivery": round(server_cpu / max(tally.count, 1) * 1e6, 1),
        "client_cpu_us_per_delivery": round(client_cpu / max(tally.count, 1) * 1e6, 1),
    }


async def phase_fanout(bench: Bench, target: Target, size: int, events: int) -> dict[str, Any]:
    """One room of ``size``; ``events`` publications one at a time."""
    tally = Tally()
    channel = f"lobby:f{size}-{bench.run_id}-{target.name}"
    started = time.monotonic()
    room = await open_room(
        target, channel, size, tally, bench.args.setup_concurrency, first=bench.ids(size)
    )
    senders = await publishers(target, events, bench.ids(events))  # chat: 1/s per connection
    subscribed_s = time.monotonic() - started
    # Each subscribe announces a join to every member already there: wait for them all.
    await bench.quiet()
    build_s = time.monotonic() - started
    presence_events = sum(c.presence_events for c in room)
    server_ms: list[float] = []
    last_ms: list[float] = []
    timeouts = 0
    for k in range(events):
        before = [await fanout_metrics(p) for p in target.ports] if target.ours else []
        mark = len(tally.latencies_ns)
        reply = await senders[k].call(
            {"type": "publish", "ch": channel, "data": {"body": chat(time.monotonic_ns())}}
        )
        deadline = time.monotonic() + 60
        while tally.count < size * (k + 1) and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        if tally.count < size * (k + 1):
            timeouts += 1
        if target.ours:
            after = [await fanout_metrics(p) for p in target.ports]
            server_ms.append(max((a[0] - b[0]) * 1000 for a, b in zip(after, before, strict=True)))
        else:
            server_ms.append(reply["data"]["broadcast_s"] * 1000)
        event = tally.latencies_ns[mark:]
        last_ms.append(max(event) / 1e6 if event else float("nan"))
        await asyncio.sleep(0.05)
    latencies = tally.sorted_ms()
    expected = size * events
    close_all(room)
    close_all(senders)
    return {
        "size": size,
        "events": events,
        "subscribe_s": round(subscribed_s, 2),
        "build_s": round(build_s, 2),
        "presence_events": presence_events,
        "server_ms": round(median(server_ms), 3),
        "server_max_ms": round(max(server_ms), 3),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "last_delivery_ms": round(median(last_ms), 2),
        "lost": expected - tally.count,
        "timeouts": timeouts,
    }


async def phase_storm(
    bench: Bench, target: Target, count: int, missed: int, concurrency: int
) -> dict[str, Any]:
    """``count`` clients in rooms of 10 drop at once, miss ``missed`` publications per room,
    come back (``concurrency`` connects in flight, retrying failed attempts) and recover."""
    tally = Tally()
    rooms = max(1, count // 10)
    channels = [f"lobby:r{r}-{bench.run_id}-{target.name}" for r in range(rooms)]
    first = bench.ids(count)

    async def make(i: int) -> Client:
        client, _ = await target.client(first + i, tally, channels[i % rooms])
        return client

    clients = list(await gather_bounded(count, make, bench.args.setup_concurrency))
    # Chat is 1/s per connection (burst 5): enough publishers for one round of every room.
    per_sender = 1
    senders = await publishers(target, math.ceil(rooms / per_sender), bench.ids(rooms))

    async def publish_round() -> list[int]:
        async def one(r: int) -> int:
            reply = await senders[r // per_sender].call(
                {"type": "publish", "ch": channels[r], "data": {"body": chat(time.monotonic_ns())}}
            )
            return int(reply["data"]["offset"])

        # At most 50 in flight: with redis-py's default pool (100 connections, raising instead
        # of waiting), more concurrent publishes had some fail; kept as a modest burst.
        return list(await gather_bounded(rooms, one, 50))

    await publish_round()  # every client now has an epoch and an offset to recover from
    deadline = time.monotonic() + 30
    while tally.count < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await bench.quiet()
    if any(c.read == 0 for c in clients):
        raise BenchError("storm: some clients never read the first publication")
    positions = [(c.last_offset, c.epoch) for c in clients]
    dropped = time.monotonic()
    close_all(clients)
    finals = [0] * rooms
    for _ in range(missed):
        await asyncio.sleep(1.0)  # the chat rate: one publication a second per connection
        finals = await publish_round()
    published_s = time.monotonic() - dropped
    failures = 0
    wrong = 0
    back_tally = Tally()
    back_tally.record = False

    async def back(i: int) -> Client:
        nonlocal failures, wrong
        attempt = 0
        while True:
            attempt += 1
            try:
                client, subscribed = await target.client(
                    first + i, back_tally, channels[i % rooms], since=positions[i]
                )
            except (OSError, BenchError, TimeoutError):
                failures += 1
                if attempt >= 20:
                    raise
                await asyncio.sleep(random.uniform(0.05, 0.5) * attempt)
                continue
            assert subscribed is not None
            got = [p["data"]["offset"] for p in subscribed["publications"]]
            want = list(range(positions[i][0] + 1, finals[i % rooms] + 1))
            if not subscribed["recovered"] or got != want:
                wrong += 1
            return client

    reconnect_started = time.monotonic()
    returned = list(await gather_bounded(count, back, concurrency))
    done = time.monotonic()
    close_all(returned)
    close_all(senders)
    return {
        "clients": count,
        "rooms": rooms,
        "missed_per_room": missed,
        "concurrency": concurrency,
        "storm_s": round(done - dropped, 2),
        "reconnect_s": round(done - reconnect_started, 2),
        "publish_while_away_s": round(published_s, 2),
        "failed_attempts": failures,
        "not_recovered": wrong,
    }


async def phase_reference_storm(
    bench: Bench, target: Target, count: int, concurrency: int
) -> dict[str, Any]:
    """The reference: ``count`` clients reconnect and resubscribe (it has nothing to recover)."""
    first = bench.ids(count)
    failures = 0

    async def make(i: int) -> Client:
        nonlocal failures
        for attempt in range(1, 21):
            try:
                client, _ = await target.client(
                    first + i, None, f"lobby:r{i % max(1, count // 10)}"
                )
            except (OSError, BenchError, TimeoutError):
                failures += 1
                if attempt == 20:
                    raise
                await asyncio.sleep(random.uniform(0.05, 0.5) * attempt)
                continue
            return client
        raise AssertionError("unreachable")

    clients = list(await gather_bounded(count, make, bench.args.setup_concurrency))
    await bench.quiet()
    failures = 0
    dropped = time.monotonic()
    close_all(clients)
    returned = list(await gather_bounded(count, make, concurrency))
    took = time.monotonic() - dropped
    close_all(returned)
    return {"clients": count, "storm_s": round(took, 2), "failed_attempts": failures}


async def phase_slow(
    bench: Bench, target: Target, size: int, messages: int, body_bytes: int, rate: float
) -> dict[str, Any]:
    """A room of ``size`` (admins on a game server's channel: large bodies are allowed there);
    ``messages`` publications of ``body_bytes`` at ``rate``/s without, then with, one subscriber
    that stops reading."""
    channel_name = f"gs{bench.run_id}{target.name}"
    channel = f"gameserver:{channel_name}"
    others = await open_room(
        target,
        channel,
        size - 1,
        Tally(),
        bench.args.setup_concurrency,
        first=bench.ids(size),
        role="admin",
    )
    per_sender = 12.0  # under the 20/s message rate of one connection
    senders = await publishers(
        target,
        max(1, math.ceil(rate / per_sender)),
        bench.ids(8),
        role="game_server",
        subject=channel_name,
    )
    pad = "x" * body_bytes

    async def burst() -> tuple[list[float], float]:
        tally = Tally()
        for client in others:
            client.tally = tally
        await bench.quiet()
        started = time.monotonic()
        acks = []
        for k in range(messages):
            due = started + k / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            acks.append(
                senders[k % len(senders)].request(
                    {
                        "type": "publish",
                        "ch": channel,
                        "data": {"body": {"t": time.monotonic_ns(), "pad": pad}},
                    }
                )
            )
        await asyncio.wait_for(asyncio.gather(*acks), 120)
        deadline = time.monotonic() + 60
        while tally.count < messages * len(others) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        lost = messages * len(others) - tally.count
        return tally.sorted_ms(), lost

    without, lost_without = await burst()
    slow, _ = await target.client(bench.ids(1), Tally(), channel, rcvbuf=4096, role="admin")
    assert slow.transport is not None
    slow.transport.pause_reading()
    with_slow, lost_with = await burst()
    slow.transport.resume_reading()
    deadline = time.monotonic() + 30
    caught_up: float | None = None  # read everything: it was never cut
    while not slow.lost.done() and 4001 not in (slow.close_code, slow.disconnect_code):
        now = time.monotonic()
        if slow.read >= messages and caught_up is None:
            caught_up = now
        if now > deadline or (caught_up is not None and now - caught_up > 2):
            break
        await asyncio.sleep(0.05)
    coded = 4001 in (slow.close_code, slow.disconnect_code)
    dropped = slow.lost.done() and not coded and slow.read < messages
    cut = coded or dropped
    how = "4001" if coded else "dropped" if dropped else "not cut"
    slow_read = slow.read
    close_all([slow, *others, *senders])
    p99_without = percentile(without, 0.99)
    p99_with = percentile(with_slow, 0.99)
    return {
        "subscribers": size,
        "messages": messages,
        "body_bytes": body_bytes,
        "rate_per_s": rate,
        "p50_without_ms": round(percentile(without, 0.5), 2),
        "p99_without_ms": round(p99_without, 2),
        "p50_with_ms": round(percentile(with_slow, 0.5), 2),
        "p99_with_ms": round(p99_with, 2),
        "p99_change_pct": round((p99_with - p99_without) / p99_without * 100, 1),
        "cut": cut,
        "cut_how": how,
        "slow_read_before_cut": slow_read,
        "lost_by_others": lost_without + lost_with,
    }


# --- setup and main --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def servers(args: argparse.Namespace) -> Any:
    """Two serve processes on one Redis prefix, and the reference; all gone afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="lgbench-hub-"))
    prefix = f"lgbench:{secrets.token_hex(6)}:"
    secret = secrets.token_urlsafe(32)
    started: list[Process] = []
    try:
        ports = [free_port(), free_port()]
        launches = []
        for n, port in enumerate(ports):
            cwd = tmp / f"node{n}"
            cwd.mkdir()
            launches.append(
                start_serve(
                    f"node{n}",
                    cwd,
                    port=port,
                    database_url=f"sqlite:///{cwd}/lg.sqlite3",
                    redis_url=args.redis_url,
                    redis_prefix=prefix,
                    secret=secret,
                )
            )
        reference_port = free_port()
        launches.append(
            start_process(
                "reference",
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--reference-server",
                    str(reference_port),
                ],
                clean_environment(),
                tmp,
                "ready",
            )
        )
        results = await asyncio.gather(*launches, return_exceptions=True)
        started = [r for r in results if isinstance(r, Process)]
        for r in results:
            if isinstance(r, BaseException):
                raise r
        nodes, reference = started[:2], started[2]
        tokens = Tokens(secret)
        ours = Target("ours", ports, [n.pid for n in nodes], tokens, True)
        ref = Target("reference", [reference_port], [reference.pid], tokens, False)
        yield Bench(args, ours, ref, nodes, tmp, secret)
    except BaseException:
        print_logs(started)  # what the servers said, for the failure report
        raise
    finally:
        await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)
        await delete_prefix(args.redis_url, prefix)
        shutil.rmtree(tmp, ignore_errors=True)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key: the median of the runs' numbers (booleans: all true; differing strings: each
    run's), else the first value."""
    out: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [r[key] for r in runs]
        if isinstance(first, bool):
            out[key] = all(values)
        elif isinstance(first, int | float) and all(isinstance(v, int | float) for v in values):
            value = median(values)
            out[key] = round(value, 3) if isinstance(value, float) else value
        elif isinstance(first, str) and any(v != first for v in values):
            out[key] = "/".join(str(v) for v in values)  # each run's, when they differ
        else:
            out[key] = first
    if len(runs) > 1:
        out["runs"] = runs
    return out


async def repeated(repeat: int, run: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    return medians([await run() for _ in range(repeat)])


def ratio(ours: float | None, reference: float | None) -> str:
    if not ours or not reference or math.isnan(ours) or math.isnan(reference):
        return "n/a"
    return f"{ours / reference:.2f}x"


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    sizes = {
        "idle": args.idle,
        "reference_idle": min(args.idle, 10_000),
        "sustained_rooms": args.rooms,
        "sustained_room_sizes": [10, 100],
        "sustained_offered_per_s": args.rate,
        "sustained_seconds": args.seconds,
        "fanout": args.fanout,
        "fanout_events": args.events,
        "storm": args.storm,
        "slow_room": args.slow,
        "slow_messages": args.slow_messages,
        "slow_body_bytes": args.slow_body,
    }
    repeat = args.repeat
    async with servers(args) as bench:
        print(
            f"hub benchmark: 2 serve processes (ports {bench.ours.ports}) on Redis, reference "
            f"websockets.broadcast() server (port {bench.reference.ports[0]}); {os.cpu_count()} "
            f"cores; median of {repeat} (idle memory: once, on fresh processes); sizes {json.dumps(sizes)}",
            flush=True,
        )

        marks = [time.monotonic()]

        def took() -> str:
            """The wall time since the last phase ended."""
            marks.append(time.monotonic())
            return f" [phase {marks[-1] - marks[-2]:.0f} s]"

        # 1. idle connections: once, on the fresh processes (memory a process has grown to is
        # not returned to the system, so a second run would measure almost nothing)
        idle = await phase_idle(bench, bench.ours, args.idle)
        ref_idle = await phase_idle(bench, bench.reference, sizes["reference_idle"])
        print(
            f"idle       ours: {idle['held']:,} held of {idle['asked']:,} (opened in "
            f"{idle['open_s']} s, {idle['failed_attempts']} failed attempts retried), "
            f"{idle['bytes_per_connection'] / 1024:.1f} KB/connection "
            f"(RSS {idle['rss_before_mb']} -> {idle['rss_after_mb']} MB, two processes) | "
            f"reference: {ref_idle['held']:,} held, {ref_idle['bytes_per_connection'] / 1024:.1f}"
            f" KB/connection | ratio {ratio(idle['bytes_per_connection'], ref_idle['bytes_per_connection'])}"
            f" | target 20,000 at <= 40 KB: "
            f"{verdict(idle['held'] >= 20_000 and idle['bytes_per_connection'] <= 40_960)}{took()}",
            flush=True,
        )
        await bench.quiet()

        # 2. sustained deliveries
        room_list = room_sizes(args.rooms, 10, 100)
        sustained = await repeated(
            repeat,
            lambda: phase_sustained(bench, bench.ours, room_list, args.rate, args.seconds),
        )
        await bench.quiet()
        ref_sustained = await repeated(
            repeat,
            lambda: phase_sustained(bench, bench.reference, room_list, args.rate, args.seconds),
        )
        for name, r in (("ours", sustained), ("reference", ref_sustained)):
            print(
                f"sustained  {name}: {r['deliveries_per_s']:,} deliveries/s (offered "
                f"{r['offered_per_s']:,}, {r['rooms']} rooms, {r['subscribers']:,} subscribers), "
                f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms, lost "
                f"{r['lost']}, out of order {r['out_of_order']}, publishes refused/failed "
                f"{r['publish_errors']} (publisher connections dropped by the server "
                f"{r['publisher_reconnects']}); server CPU "
                f"{r['server_cpu_us_per_delivery']} us/delivery, client CPU "
                f"{r['client_cpu_us_per_delivery']} us/delivery",
                flush=True,
            )
        print(
            f"sustained  ours/reference: rate {ratio(sustained['deliveries_per_s'], ref_sustained['deliveries_per_s'])}"
            f", p99 {ratio(sustained['p99_ms'], ref_sustained['p99_ms'])} | target >= 15,000/s, "
            f"p99 <= 100 ms, none lost: "
            f"{verdict(sustained['deliveries_per_s'] >= 15_000 and sustained['p99_ms'] <= 100 and sustained['lost'] == 0 and sustained['out_of_order'] == 0)}{took()}",
            flush=True,
        )
        await bench.quiet()

        # 3. fan-out
        fanout: dict[int, dict[str, Any]] = {}
        ref_fanout: dict[int, dict[str, Any]] = {}
        built: tuple[int, float] | None = None
        for size in args.fanout:
            predicted = built[1] * (size / built[0]) ** 2 if built else 0.0
            if predicted > args.fanout_build_budget_s:
                fanout[size] = {
                    "size": size,
                    "skipped": f"building the room would take about {predicted:.0f} s "
                    f"(every subscribe sends a join to every member: O(N^2) frames; "
                    f"{built[0] if built else 0} took {built[1] if built else 0:.1f} s) > "
                    f"--fanout-build-budget-s {args.fanout_build_budget_s:g}",
                }
            else:
                fanout[size] = await repeated(
                    repeat, lambda size=size: phase_fanout(bench, bench.ours, size, args.events)
                )
                built = (size, fanout[size]["build_s"])
            await bench.quiet()
            ref_fanout[size] = await repeated(
                repeat, lambda size=size: phase_fanout(bench, bench.reference, size, args.events)
            )
            await bench.quiet()
            ours_f, ref_f = fanout[size], ref_fanout[size]
            if "skipped" in ours_f:
                print(f"fanout {size:>6,} ours: not measured: {ours_f['skipped']}", flush=True)
            else:
                print(
                    f"fanout {size:>6,} ours: server {ours_f['server_ms']} ms (queued and written, "
                    f"leetgaming_hub_fanout_seconds; max {ours_f['server_max_ms']}), end to end "
                    f"p50 {ours_f['p50_ms']} ms p99 {ours_f['p99_ms']} ms, last delivery "
                    f"{ours_f['last_delivery_ms']} ms, lost {ours_f['lost']}; room built in "
                    f"{ours_f['build_s']} s ({ours_f['presence_events']:,} join frames)",
                    flush=True,
                )
            print(
                f"fanout {size:>6,} reference: server {ref_f['server_ms']} ms (the broadcast() "
                f"call), end to end p50 {ref_f['p50_ms']} ms p99 {ref_f['p99_ms']} ms, last "
                f"delivery {ref_f['last_delivery_ms']} ms | ours/reference p99 "
                f"{ratio(ours_f.get('p99_ms'), ref_f['p99_ms'])}{took()}",
                flush=True,
            )

        # 4. reconnect storm
        storm = await repeated(
            repeat,
            lambda: phase_storm(bench, bench.ours, args.storm, 2, args.connect_concurrency),
        )
        print(
            f"storm      ours: {storm['clients']:,} dropped at once, all back and recovered in "
            f"{storm['storm_s']} s (reconnecting {storm['reconnect_s']} s, "
            f"{storm['concurrency']} connects in flight; {storm['failed_attempts']} failed "
            f"attempts retried; {storm['not_recovered']} not recovered) | target <= 30 s: "
            f"{verdict(storm['storm_s'] <= 30 and storm['not_recovered'] == 0)}",
            flush=True,
        )
        await bench.quiet()
        ref_storm = await repeated(
            repeat,
            lambda: phase_reference_storm(
                bench, bench.reference, args.storm, args.connect_concurrency
            ),
        )
        await bench.quiet()
        print(
            f"storm      reference (reconnect and subscribe, nothing to recover): "
            f"{ref_storm['storm_s']} s ({ref_storm['failed_attempts']} failed attempts retried)"
            f" | ours/reference {ratio(storm['storm_s'], ref_storm['storm_s'])}{took()}",
            flush=True,
        )

        # 5. slow consumer
        slow = await repeated(
            repeat,
            lambda: phase_slow(
                bench, bench.ours, args.slow, args.slow_messages, args.slow_body, args.slow_rate
            ),
        )
        print(
            f"slow       ours: {slow['subscribers']:,} subscribers, {slow['messages']} x "
            f"{slow['body_bytes'] // 1024} KB at {slow['rate_per_s']:g}/s: others' p99 "
            f"{slow['p99_without_ms']} ms without, {slow['p99_with_ms']} ms with one stalled "
            f"reader: {slow['p99_change_pct']:+} %; cut: {slow['cut']} ({slow['cut_how']}) | target "
            f"<= 10 %, cut: {verdict(slow['p99_change_pct'] <= 10 and slow['cut'])}{took()}",
            flush=True,
        )

    def pick(result: dict[str, Any], key: str) -> Any:
        return result.get(key)

    slots = dict(zip((100, 1000, 10000), args.fanout, strict=False))
    summary: dict[str, Any] = {
        "idle_connections": idle["held"],
        "bytes_per_connection": idle["bytes_per_connection"],
        "reference_idle_connections": ref_idle["held"],
        "reference_bytes_per_connection": ref_idle["bytes_per_connection"],
        "deliveries_per_s": sustained["deliveries_per_s"],
        "offered_deliveries_per_s": sustained["offered_per_s"],
        "delivery_p50_ms": sustained["p50_ms"],
        "delivery_p99_ms": sustained["p99_ms"],
        "lost_messages": sustained["lost"]
        + sum(f.get("lost", 0) for f in fanout.values())
        + storm["not_recovered"],
        "out_of_order": sustained["out_of_order"],
        "reference_deliveries_per_s": ref_sustained["deliveries_per_s"],
        "reference_delivery_p99_ms": ref_sustained["p99_ms"],
        "reference_lost_messages": ref_sustained["lost"]
        + sum(f.get("lost", 0) for f in ref_fanout.values()),
    }
    for slot, size in slots.items():
        summary[f"fanout_{slot}_size"] = size
        summary[f"fanout_{slot}_p99_ms"] = pick(fanout[size], "p99_ms")
        summary[f"fanout_{slot}_server_ms"] = pick(fanout[size], "server_ms")
        summary[f"reference_fanout_{slot}_p99_ms"] = pick(ref_fanout[size], "p99_ms")
        summary[f"reference_fanout_{slot}_server_ms"] = pick(ref_fanout[size], "server_ms")
    summary.update(
        {
            "reconnect_storm_s": storm["storm_s"],
            "reconnect_failed_attempts": storm["failed_attempts"],
            "reconnect_not_recovered": storm["not_recovered"],
            "reference_reconnect_storm_s": ref_storm["storm_s"],
            "slow_consumer_p99_change_pct": slow["p99_change_pct"],
            "slow_consumer_cut": slow["cut"],
            "slow_consumer_cut_how": slow["cut_how"],
            "sizes": sizes,
            "repeat": repeat,
            "cores": os.cpu_count(),
            "detail": {
                "idle": idle,
                "reference_idle": ref_idle,
                "sustained": sustained,
                "reference_sustained": ref_sustained,
                "fanout": {str(k): v for k, v in fanout.items()},
                "reference_fanout": {str(k): v for k, v in ref_fanout.items()},
                "storm": storm,
                "reference_storm": ref_storm,
                "slow": slow,
            },
        }
    )
    return summary


async def main(args: argparse.Namespace) -> None:
    hard = raise_nofile()
    if hard < 12_000:
        print(f"warning: the descriptor limit is {hard}; large phases may fail", file=sys.stderr)
    summary = await run_all(args)
    print(json.dumps(summary))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per phase (median; default 1)"
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("LEETGAMING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="the Redis both serve processes share (a unique key prefix, deleted afterwards)",
    )
    parser.add_argument("--idle", type=int, help="idle connections (20,000; quick 2,000)")
    parser.add_argument("--rooms", type=int, help="sustained: rooms of 10-100 (100; quick 20)")
    parser.add_argument(
        "--rate",
        type=float,
        help="sustained: offered deliveries/s (16,000: above the 15,000 target, so that what is "
        "delivered can show it; quick 5,000)",
    )
    parser.add_argument("--seconds", type=float, help="sustained: publishing time (20; quick 4)")
    parser.add_argument("--fanout", help="fan-out room sizes (100,1000,10000; quick 100,300,600)")
    parser.add_argument("--events", type=int, help="fan-out: publications per size (10; quick 5)")
    parser.add_argument(
        "--fanout-build-budget-s",
        type=float,
        default=300.0,
        help="skip our fan-out at a size whose room would take longer than this to build, "
        "extrapolated from the previous size (joins are O(N^2)) (default %(default)s)",
    )
    parser.add_argument("--storm", type=int, help="reconnect storm clients (10,000; quick 1,500)")
    parser.add_argument("--slow", type=int, help="slow consumer room size (1,000; quick 100)")
    parser.add_argument(
        "--slow-messages",
        type=int,
        help="publications per burst (140: with the body, enough bytes to fill the stalled "
        "reader's 1 MiB send queue and the socket buffers under it, about 4 MB here)",
    )
    parser.add_argument("--slow-body", type=int, default=32_768, help="body bytes (32,768)")
    parser.add_argument("--slow-rate", type=float, help="publications/s (8; quick 35)")
    parser.add_argument(
        "--connect-concurrency",
        type=int,
        default=500,
        help="reconnect storm: connects in flight at once (default %(default)s)",
    )
    parser.add_argument(
        "--setup-concurrency",
        type=int,
        default=100,
        help="connects in flight while rooms are built (default %(default)s)",
    )
    # helper modes
    parser.add_argument("--reference-server", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--hold", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ports", default="", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--room-prefix", default="idle", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick

    def default(name: str, full: Any, small: Any) -> None:
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)

    default("repeat", 1, 1)
    default("idle", 20_000, 2_000)
    default("rooms", 100, 20)
    default("rate", 16_000.0, 5_000.0)
    default("seconds", 20.0, 4.0)
    default("fanout", "100,1000,10000", "100,300,600")
    default("events", 10, 5)
    default("storm", 10_000, 1_500)
    default("slow", 1_000, 100)
    default("slow_messages", 140, 140)
    default("slow_rate", 8.0, 35.0)
    args.fanout = [int(n) for n in str(args.fanout).split(",")]
    return args


def entry() -> None:
    import uvloop

    args = parse_args()
    if args.reference_server is not None:
        uvloop.run(reference_server(args.reference_server))
    elif args.hold:
        uvloop.run(hold(args))
    else:
        uvloop.run(main(args))


if __name__ == "__main__":
    entry()
