"""What the benchmarks share: starting the product's processes and cleaning up after them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import resource
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from leetgaming.play import result_message

ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    pass


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class Process:
    name: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


async def start_process(
    name: str, argv: list[str], env: dict[str, str], cwd: Path, ready: str
) -> Process:
    log = cwd / f"{name}.log"
    with log.open("w") as stderr:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            preexec_fn=raise_nofile,
        )
    started = Process(name, process, log)
    assert process.stdout is not None
    try:
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            if not line:
                raise BenchError(f"{name} exited: {log.read_text()[-2000:]}")
            if line.decode().startswith(ready):
                break
    except BaseException:
        await started.stop()
        raise
    return started


async def spawn(name: str, argv: list[str], env: dict[str, str], cwd: Path, port: int) -> Process:
    """A process that says nothing on stdout when it is up: started, then its port polled."""
    log = cwd / f"{name}.log"
    with log.open("w") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
        )
    started = Process(name, process, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return started
        except OSError:
            if process.returncode is not None or time.monotonic() > deadline:
                await started.stop()
                raise BenchError(f"{name} did not listen: {log.read_text()[-2000:]}") from None
            await asyncio.sleep(0.1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def clean_environment() -> dict[str, str]:
    """This process's environment without any ``LEETGAMING_*`` setting, the repository on the
    path: what a benchmark's child process starts from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEETGAMING_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


async def start_serve(
    name: str,
    cwd: Path,
    *,
    port: int,
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    secret: str,
) -> Process:
    """``leetgaming serve`` on ``port`` with these backends, once it listens (``redis_url``
    empty: the in-process broker)."""
    settings = {
        "LEETGAMING_PORT": str(port),
        "LEETGAMING_DATABASE_URL": database_url,
        "LEETGAMING_SECRET_KEY": secret,
        # every bot of a benchmark comes from 127.0.0.1: the per-address REST limit would
        # turn the load into 429s
        "LEETGAMING_REST_REQUESTS_PER_MIN": "10000000",
    }
    if redis_url:
        settings |= {"LEETGAMING_REDIS_URL": redis_url, "LEETGAMING_REDIS_PREFIX": redis_prefix}
    return await start_process(
        name,
        [sys.executable, "-m", "leetgaming", "serve"],
        clean_environment() | settings,
        cwd,
        "LeetGaming is running at",
    )


def print_logs(processes: list[Process], lines: int = 15) -> None:
    """The last lines each process logged, for a failure report."""
    for process in processes:
        tail = process.log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {process.name} log (last lines):", *tail, sep="\n", file=sys.stderr)


async def delete_prefix(redis_url: str, prefix: str) -> None:
    """Remove every Redis key under ``prefix``."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()


# Talking to the hub as a bot ------------------------------------------------------------------

FRAME_TIMEOUT_S = 30.0
PONG = b'{"v":1,"type":"pong"}'


async def send_call(ws: ClientConnection, ref: str, method: str, **params: Any) -> None:
    """Send an ``rpc`` without waiting for its answer."""
    frame = {"v": 1, "type": "rpc", "id": ref, "data": {"method": method, "params": params}}
    await ws.send(orjson.dumps(frame))


async def rpc(ws: ClientConnection, ref: str, method: str, **params: Any) -> dict[str, Any]:
    """Send an ``rpc`` and return its answer (publications meanwhile are skipped)."""
    await send_call(ws, ref, method, **params)
    while True:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S))
        if frame.get("id") == ref or frame.get("data", {}).get("ref") == ref:
            return frame  # type: ignore[no-any-return]


async def open_channel(port: int, token: str | None, channel: str) -> ClientConnection:
    ws = await connect(
        f"ws://127.0.0.1:{port}/ws",
        open_timeout=FRAME_TIMEOUT_S,
        origin=Origin(f"http://127.0.0.1:{port}"),  # the server's own pages
    )
    auth: dict[str, Any] = {"v": 1, "type": "auth", "id": "a"}
    if token is not None:  # none: an anonymous spectator
        auth["data"] = {"token": token}
    for frame in (
        auth,
        {"v": 1, "type": "subscribe", "id": "s", "ch": channel},
    ):
        await ws.send(orjson.dumps(frame))
        answer = orjson.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S))
        while answer["type"] == "ping":  # the heartbeat may come first
            await ws.send(PONG)
            answer = orjson.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S))
        if answer["type"] not in ("auth_ok", "subscribed"):
            raise RuntimeError(f"{frame['type']} refused: {answer}")
    return ws


def sign_result(key: str, match_id: str, ranks: list[int]) -> str:
    secret = hashlib.sha256(key.encode()).hexdigest()
    return hmac.new(secret.encode(), result_message(match_id, ranks), hashlib.sha256).hexdigest()
