"""Ledger fixtures: every store test runs on both adapters, SQLite and real PostgreSQL.

Each PostgreSQL store gets its own schema in the run's database and drops it afterwards; each
SQLite store its own file. Time comes from a :class:`FakeClock` the test moves by hand.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from ledger import Ledger, LedgerStore
from ledger.postgres_store import PostgresLedgerStore
from ledger.sqlite_store import SqliteLedgerStore

START_NS = 1_800_000_000 * 10**9


class FakeClock:
    def __init__(self, now_ns: int = START_NS) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * 10**9)


async def open_postgres(url: str) -> PostgresLedgerStore:
    store = await PostgresLedgerStore.connect(url, schema=f"t_{secrets.token_hex(6)}")
    await store.migrate()
    return store


async def drop_postgres(url: str, store: PostgresLedgerStore) -> None:
    await store.close()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP SCHEMA {store.schema} CASCADE")
    finally:
        await conn.close()


async def open_sqlite(path: Path) -> SqliteLedgerStore:
    store = await SqliteLedgerStore.open(str(path))
    await store.migrate()
    return store


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend_database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """The run's PostgreSQL database for the postgres backend (resolved outside any loop)."""
    return str(request.getfixturevalue("postgres_url")) if backend == "postgres" else ""


@pytest.fixture
async def store_factory(
    backend: str, backend_database_url: str, tmp_path: Path
) -> AsyncIterator[Callable[[], Awaitable[LedgerStore]]]:
    """Opens stores of the parametrised backend; all are closed and removed at teardown."""
    opened: list[LedgerStore] = []
    postgres_url = backend_database_url

    async def factory() -> LedgerStore:
        store: LedgerStore
        if backend == "postgres":
            store = await open_postgres(postgres_url)
        else:
            store = await open_sqlite(tmp_path / f"ledger-{secrets.token_hex(4)}.sqlite3")
        opened.append(store)
        return store

    yield factory
    for store in opened:
        if isinstance(store, PostgresLedgerStore):
            await drop_postgres(postgres_url, store)
        else:
            await store.close()


@pytest.fixture
async def store(store_factory: Callable[[], Awaitable[LedgerStore]]) -> AsyncIterator[LedgerStore]:
    yield await store_factory()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def ledger(store: LedgerStore, clock: FakeClock) -> AsyncIterator[Ledger]:
    async with Ledger(store, clock_ns=clock, expire_on_timer=False) as running:
        yield running
