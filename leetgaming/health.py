"""Readiness probes: can this process reach what it depends on?

Invariants:

- A probe's :meth:`Probe.check` returns ``None`` when the dependency answered and raises
  otherwise; it never hangs longer than its ``timeout_s`` (2 s by default).
- A probe holds no connection between checks: each check opens, asks ``SELECT 1`` or
  ``PING``, and closes, so a probe cannot leak connections or mask a dead pool.
- Probes are injectable: :func:`leetgaming.app.create_app` takes any object with this shape,
  so the ledger store's own ping can replace :class:`SqliteProbe` / :class:`PostgresProbe`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Final, Protocol, runtime_checkable

import asyncpg
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from leetgaming.settings import Settings

PROBE_TIMEOUT_S: Final = 2.0


@runtime_checkable
class Probe(Protocol):
    """Something the app needs, checked on ``GET /readyz``."""

    async def check(self) -> None:
        """Return when the dependency answers; raise when it does not."""
        ...


DatabaseProbe = Probe
"""A probe of the database; the ledger store's ping will be one."""


class SqliteProbe:
    """Opens the SQLite file and runs ``SELECT 1``."""

    def __init__(self, path: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self.path = path
        self.timeout_s = timeout_s

    def _select_one(self) -> None:
        connection = sqlite3.connect(self.path, timeout=self.timeout_s)
        try:
            row = connection.execute("SELECT 1").fetchone()
        finally:
            connection.close()
        if row != (1,):
            raise RuntimeError(f"SELECT 1 returned {row!r}")

    async def check(self) -> None:
        await asyncio.wait_for(asyncio.to_thread(self._select_one), self.timeout_s)


class PostgresProbe:
    """Connects with asyncpg and runs ``SELECT 1``."""

    def __init__(self, url: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self.url = url
        self.timeout_s = timeout_s

    async def _select_one(self) -> None:
        connection = await asyncpg.connect(self.url, timeout=self.timeout_s)
        try:
            value = await connection.fetchval("SELECT 1")
        finally:
            await connection.close(timeout=self.timeout_s)
        if value != 1:
            raise RuntimeError(f"SELECT 1 returned {value!r}")

    async def check(self) -> None:
        await asyncio.wait_for(self._select_one(), self.timeout_s)


class RedisProbe:
    """Sends ``PING`` to Redis."""

    def __init__(self, url: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self.url = url
        self.timeout_s = timeout_s

    async def _ping(self) -> None:
        client = aioredis.Redis.from_url(
            self.url,
            socket_connect_timeout=self.timeout_s,
            socket_timeout=self.timeout_s,
            retry_on_timeout=False,
            # One attempt: a probe reports the state now, it does not wait for recovery.
            retry=Retry(NoBackoff(), 0),
        )
        try:
            answer = await client.ping()
        finally:
            await client.aclose()
        if answer is not True:
            raise RuntimeError(f"PING returned {answer!r}")

    async def check(self) -> None:
        await asyncio.wait_for(self._ping(), self.timeout_s)


def database_probe(settings: Settings) -> Probe:
    """The default probe for ``settings.database_url``."""
    path = settings.sqlite_path
    if path is not None:
        return SqliteProbe(path)
    return PostgresProbe(settings.database_url)


def redis_probe(settings: Settings) -> Probe | None:
    """The probe for ``settings.redis_url``, or ``None`` with the in-process broker."""
    if settings.redis_url is None:
        return None
    return RedisProbe(settings.redis_url)
