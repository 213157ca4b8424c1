"""The application's own tables (identity now; later matchmaking, tournaments, wallet state),
beside the ledger, in the same database: SQLite embedded, PostgreSQL distributed.

One small port, two adapters, SQL written once:

- Queries use ``?`` placeholders; the PostgreSQL adapter rewrites them to ``$1, $2, …``. Keep
  to the common subset (``TEXT``, ``BIGINT``, ``INTEGER``, ``ON CONFLICT``, ``RETURNING``), and
  never put a literal ``?`` inside a query string.
- :meth:`Database.transaction` gives a unit of work that commits or rolls back as one. SQLite
  runs it under ``BEGIN IMMEDIATE`` (the single write lock, across processes; reads outside a
  transaction use a read-only connection of their own and never wait for it); PostgreSQL at
  READ COMMITTED, so conditional ``UPDATE … WHERE`` (compare-and-set) is how a row changes
  safely under concurrency.
- :meth:`Database.migrate` applies a component's numbered steps once, in order; concurrent
  starts take turns (SQLite's write lock; a PostgreSQL advisory lock).
- On PostgreSQL the tables live in the schema ``app`` (the ledger has its own).
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg

T = TypeVar("T")
Row = tuple[Any, ...]
_BUSY_TIMEOUT_MS = 10_000
_PLACEHOLDER = re.compile(r"\?")
_VERSIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_versions "
    "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)

_SET_VERSION = (
    "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
    "ON CONFLICT (component) DO UPDATE SET version = excluded.version"
)


class Conn(Protocol):
    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of arguments (one round trip where possible)."""
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchone(self, sql: str, *args: Any) -> Row | None: ...


class Database(Conn, Protocol):
    dialect: str

    def transaction(self) -> AbstractAsyncContextManager[Conn]: ...

    async def migrate(self, component: str, steps: Sequence[str]) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def is_unique_violation(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.UniqueViolationError) or (
        isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)
    )


async def open_database(url: str) -> Database:
    if url.startswith("sqlite:///"):
        return await SqliteDatabase.open(url.removeprefix("sqlite:///") or ":memory:")
    if url.startswith(("postgresql://", "postgres://")):
        return await PostgresDatabase.connect(url)
    raise ValueError("the database URL must start with sqlite:/// or postgresql://")


# SQLite --------------------------------------------------------------------------------------


Runner = Callable[[Callable[[sqlite3.Connection], Any]], Any]


class _SqliteConn:
    """Statements on a SQLite connection, run on its thread by ``runner``; reads by
    ``reader`` (``runner`` when not given)."""

    def __init__(self, runner: Runner, reader: Runner | None = None) -> None:
        self._runner = runner
        self._reader = reader or runner

    async def execute(self, sql: str, *args: Any) -> int:
        rowcount: int = await self._runner(lambda c: c.execute(sql, args).rowcount)
        return rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._runner(lambda c: c.executemany(sql, rows))

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        rows: list[Row] = await self._reader(lambda c: [tuple(r) for r in c.execute(sql, args)])
        return rows

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        row = await self._reader(lambda c: c.execute(sql, args).fetchone())
        return None if row is None else tuple(row)


_TRIGGER = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?TRIGGER\b", re.IGNORECASE)
_BODY_START = re.compile(r"\bBEGIN\b", re.IGNORECASE)
_BODY_END = re.compile(r"\bEND$", re.IGNORECASE)


def statements(step: str) -> list[str]:
    """The statements of a migration step, separated by ``;``. A ``;`` inside a ``$$`` body
    (a PostgreSQL function) or inside a SQLite trigger's ``BEGIN … END`` does not end the
    statement; no other literal may hold one."""
    out: list[str] = []
    current = ""
    for piece in step.split(";"):
        current = f"{current};{piece}" if current else piece
        text = current.strip()
        if current.count("$$") % 2:
            continue  # inside a $$ body
        if _TRIGGER.match(text) and _BODY_START.search(text) and not _BODY_END.search(text):
            continue  # inside a trigger's BEGIN ... END
        if text:
            out.append(text)
        current = ""
    if current.strip():
        out.append(current.strip())
    return out


class SqliteDatabase(_SqliteConn):
    """See the module docstring. One writing connection on one thread: a write outside a
    transaction waits for the running transaction to end. Reads outside a transaction go to
    a second, read-only connection on a thread of its own (a file database in WAL mode): they
    see every committed write and never wait for a transaction under way (a burst of results
    loading their matches while a batch commits)."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        super().__init__(self._locked, self._read)
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="app-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._reader_executor: ThreadPoolExecutor | None = None
        self._reading: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: str) -> SqliteDatabase:
        db = cls(path)
        await db._call(db._connect)
        if path != ":memory:":  # an in-memory database is one connection's own
            db._reader_executor = ThreadPoolExecutor(1, thread_name_prefix="app-sqlite-read")
            await asyncio.get_running_loop().run_in_executor(db._reader_executor, db._open_reader)
        return db

    def _open_reader(self) -> None:
        reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        reader.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        reader.execute("PRAGMA query_only = ON")
        self._reading = reader

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader_executor is None:
            return await self._locked(fn)
        reader = self._reading
        if reader is None:
            raise RuntimeError("the database is closed")
        return await asyncio.get_running_loop().run_in_executor(
            self._reader_executor, lambda: fn(reader)
        )

    def _connect(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        self._conn = conn

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _unlocked(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(lambda: fn(self._connection()))

    async def _locked(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            return await self._unlocked(fn)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the database is closed")
        return self._conn

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        async with self._lock:
            await self._unlocked(lambda c: c.execute("BEGIN IMMEDIATE"))
            try:
                yield _SqliteConn(self._unlocked)
            except BaseException:
                await self._unlocked(lambda c: c.execute("ROLLBACK"))
                raise
            await self._unlocked(lambda c: c.execute("COMMIT"))

    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        return self._transaction()

    async def migrate(self, component: str, steps: Sequence[str]) -> None:
        async with self.transaction() as tx:
            await tx.execute(_VERSIONS_DDL)
            row = await tx.fetchone(
                "SELECT version FROM schema_versions WHERE component = ?", component
            )
            done = row[0] if row else 0
            for step in steps[done:]:
                for statement in statements(step):
                    await tx.execute(statement)
            if len(steps) > done:
                await tx.execute(_SET_VERSION, component, len(steps))

    async def ping(self) -> None:
        await self.fetchone("SELECT 1")

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._call(close)
        self._executor.shutdown(wait=True)
        if self._reader_executor is not None:

            def close_reader() -> None:
                if self._reading is not None:
                    self._reading.close()
                    self._reading = None

            await asyncio.get_running_loop().run_in_executor(self._reader_executor, close_reader)
            self._reader_executor.shutdown(wait=True)


# PostgreSQL ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _pg(sql: str) -> str:
    counter = iter(range(1, 1_000_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def append_only(table: str, dialect: str, what: str) -> str:
    """The migration statements that make ``table`` refuse UPDATE and DELETE (and TRUNCATE on
    PostgreSQL): ``what`` names its rows in the refusal (\"entries are immutable\")."""
    if dialect == "postgresql":
        return f"""
    CREATE FUNCTION {table}_refuse() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION '{table}: % refused: {what}', TG_OP; END
    $$ LANGUAGE plpgsql;
    CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {table}_refuse();
    CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION {table}_refuse()
"""
    return f"""
    CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
    BEGIN SELECT RAISE(ABORT, '{table}: UPDATE refused: {what}'); END;
    CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
    BEGIN SELECT RAISE(ABORT, '{table}: DELETE refused: {what}'); END
"""


def one_of(dialect: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """A membership test of a column in ``values``, and its arguments: ``= ANY(?)`` with one
    array on PostgreSQL, so a statement's text does not change with the number of values (each
    length of ``IN (?, ?, …)`` is a statement prepared and cached of its own; batches of 1 to
    256 crowd the driver's cache of 100 and every miss costs a round trip); ``IN (…)`` on
    SQLite, which has no arrays."""
    if dialect == "postgresql":
        return "= ANY(?)", (list(values),)
    return f"IN ({', '.join('?' * len(values))})", tuple(values)


def _rowcount(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _PgConn:
    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        return _rowcount(await self._conn.execute(_pg(sql), *args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._conn.executemany(_pg(sql), rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return [tuple(r) for r in await self._conn.fetch(_pg(sql), *args)]

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        row = await self._conn.fetchrow(_pg(sql), *args)
        return None if row is None else tuple(row)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection given back, besides ending an open transaction
    (asyncpg always does that): nothing. The app keeps no session state (no ``SET``, ``LISTEN``,
    cursors or session advisory locks), so the default ``RESET ALL``, one more round trip per
    statement outside a transaction, is saved."""
    del conn


class PostgresDatabase(_PgConn):
    dialect = "postgresql"
    schema = "app"

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self._pool = pool

    @classmethod
    async def connect(cls, url: str, *, pool_size_max: int = 10) -> PostgresDatabase:
        async def init(conn: asyncpg.Connection) -> None:
            exists = "SELECT 1 FROM pg_namespace WHERE nspname = $1"
            if await conn.fetchval(exists, cls.schema):
                return
            # CREATE SCHEMA IF NOT EXISTS is not safe against itself: two processes starting
            # on a fresh database both try, and one fails on the catalog's unique index
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('leetgaming.app.schema'))"
                )
                await conn.execute(  # nosemgrep: sql-built-from-strings
                    f"CREATE SCHEMA IF NOT EXISTS {cls.schema}"
                )

        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=pool_size_max,
            init=init,
            reset=_keep_session,
            server_settings={"search_path": cls.schema, "synchronous_commit": "on"},
        )
        return cls(pool)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield _PgConn(conn)

    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        return self._transaction()

    async def migrate(self, component: str, steps: Sequence[str]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('leetgaming.app.migrate'))")
            await conn.execute(_VERSIONS_DDL)
            done = await conn.fetchval(
                "SELECT version FROM schema_versions WHERE component = $1", component
            )
            for step in steps[done or 0 :]:
                for statement in statements(step):
                    await conn.execute(statement)
            if len(steps) > (done or 0):
                await conn.execute(_pg(_SET_VERSION), component, len(steps))

    async def ping(self) -> None:
        await self.fetchone("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()
