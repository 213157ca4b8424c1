"""Fixtures shared by the whole suite: real PostgreSQL and Redis, isolated per run.

Invariants:

- The servers are the ones at ``LEETGAMING_TEST_DATABASE_URL`` and ``LEETGAMING_TEST_REDIS_URL``
  (default 127.0.0.1:5432 and 6379). ``scripts/test`` starts throwaway ones when nothing
  answers there.
- A test that needs a server and cannot reach it FAILS, naming the URL: it never skips.
- Each run creates its own database (``lgtest_<hex>``) and each test its own Redis key prefix
  (``lgtest:<hex>:``), and removes them afterwards.
- The fixtures are synchronous (they run their own event loop), so sync and async tests can
  use them alike.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis
from hypothesis import settings as hypothesis_settings

from leetgaming.db import Database, open_database

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"
CONNECT_TIMEOUT_S = 5.0

hypothesis_settings.register_profile("ci", deadline=None, print_blob=True)
hypothesis_settings.load_profile("ci")


def _unreachable(what: str, url: str, exc: BaseException) -> None:
    pytest.fail(
        f"\n\n*** {what} is not reachable at {url}: {type(exc).__name__}: {exc}\n"
        f"*** This test needs it and does not skip. Run the suite with ./scripts/test, which\n"
        f"*** starts throwaway servers when none answer, or point LEETGAMING_TEST_DATABASE_URL /\n"
        f"*** LEETGAMING_TEST_REDIS_URL at running ones.\n",
        pytrace=False,
    )


async def _pg_execute(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(server_url, timeout=CONNECT_TIMEOUT_S)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL server the suite may create databases on."""
    return os.environ.get("LEETGAMING_TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL


@pytest.fixture(scope="session")
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """The URL of a fresh database ``lgtest_<hex>``, dropped at the end of the session."""
    database = f"lgtest_{secrets.token_hex(4)}"

    try:
        asyncio.run(_pg_execute(postgres_server_url, f'CREATE DATABASE "{database}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        _unreachable("PostgreSQL", postgres_server_url, exc)
    try:
        yield _with_database(postgres_server_url, database)
    finally:
        asyncio.run(
            _pg_execute(postgres_server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        )


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server the suite may use, checked with ``PING``."""
    url = os.environ.get("LEETGAMING_TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL
    client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unreachable("Redis", url, exc)
    finally:
        client.close()
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix ``lgtest:<hex>:`` of this test alone; its keys are deleted afterwards."""
    prefix = f"lgtest:{secrets.token_hex(8)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=prefix + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
    finally:
        client.close()


@pytest.fixture(params=["embedded", "distributed"])
def backends(
    request: pytest.FixtureRequest,
    tmp_path: object,
    postgres_url: str,
    redis_url: str,
    redis_prefix: str,
) -> dict[str, str]:
    """``LEETGAMING_*`` settings for the app's backends, once embedded (a SQLite file in the
    test's folder, the in-process broker) and once distributed (this run's PostgreSQL
    database, Redis under the test's prefix)."""
    if request.param == "embedded":
        return {"LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    return {
        "LEETGAMING_DATABASE_URL": postgres_url,
        "LEETGAMING_REDIS_URL": redis_url,
        "LEETGAMING_REDIS_PREFIX": redis_prefix,
    }


@pytest.fixture(params=["embedded", "distributed"])
def own_backends(
    request: pytest.FixtureRequest,
    tmp_path: object,
    postgres_server_url: str,
    redis_url: str,
    redis_prefix: str,
) -> Iterator[dict[str, str]]:
    """Like ``backends``, but distributed on a PostgreSQL database of the test's own (dropped
    afterwards): for a test that changes what is shared by every player, such as the price
    table, which the session's database must not carry into other tests."""
    if request.param == "embedded":
        yield {"LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
        return
    database = f"lgtest_own_{secrets.token_hex(4)}"

    asyncio.run(_pg_execute(postgres_server_url, f'CREATE DATABASE "{database}"'))
    try:
        yield {
            "LEETGAMING_DATABASE_URL": _with_database(postgres_server_url, database),
            "LEETGAMING_REDIS_URL": redis_url,
            "LEETGAMING_REDIS_PREFIX": redis_prefix,
        }
    finally:
        asyncio.run(
            _pg_execute(postgres_server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        )


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest, tmp_path: object, postgres_server_url: str
) -> AsyncIterator[Database]:
    """The application's database (``leetgaming.db``), once on a SQLite file and once on a
    fresh PostgreSQL database of its own (dropped afterwards)."""
    if request.param == "sqlite":
        db = await open_database(f"sqlite:///{tmp_path}/app.sqlite3")
        yield db
        await db.close()
        return
    name = f"lgtest_db_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(postgres_server_url, timeout=CONNECT_TIMEOUT_S)
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = await open_database(_with_database(postgres_server_url, name))
    try:
        yield db
    finally:
        await db.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server on 127.0.0.1 (moto's: the S3 wire protocol), for this run."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
