"""The application database port on both adapters: a read outside a transaction sees what is
committed, never what a transaction under way has written, and does not wait for it."""

from __future__ import annotations

import asyncio

from leetgaming.db import Database, one_of


async def test_reads_see_commits_and_do_not_wait_for_a_transaction(database: Database) -> None:
    await database.execute("CREATE TABLE IF NOT EXISTS db_probe (k TEXT PRIMARY KEY, v INTEGER)")
    await database.execute("INSERT INTO db_probe (k, v) VALUES (?, ?)", "a", 1)
    assert await database.fetchone("SELECT v FROM db_probe WHERE k = ?", "a") == (1,)
    written = asyncio.Event()
    release = asyncio.Event()

    async def slow_writer() -> None:
        async with database.transaction() as tx:
            await tx.execute("UPDATE db_probe SET v = ? WHERE k = ?", 2, "a")
            written.set()
            await release.wait()

    writer = asyncio.create_task(slow_writer())
    await written.wait()
    # the transaction holds the write lock; a read goes on, and sees the committed value
    seen = await asyncio.wait_for(database.fetchone("SELECT v FROM db_probe WHERE k = ?", "a"), 2)
    assert seen == (1,)
    assert await database.fetch("SELECT k, v FROM db_probe ORDER BY k") == [("a", 1)]
    release.set()
    await writer
    assert await database.fetchone("SELECT v FROM db_probe WHERE k = ?", "a") == (2,)
    await database.execute("INSERT INTO db_probe (k, v) VALUES (?, ?)", "b", 3)  # autocommit
    assert await database.fetch("SELECT k, v FROM db_probe ORDER BY k") == [("a", 2), ("b", 3)]


async def test_one_of_selects_the_rows_of_any_number_of_values(database: Database) -> None:
    await database.execute("CREATE TABLE IF NOT EXISTS db_members (k TEXT PRIMARY KEY)")
    await database.executemany("INSERT INTO db_members (k) VALUES (?)", [("a",), ("b",), ("c",)])
    for values, expected in ([], []), (["b"], ["b"]), (["c", "a", "zz"], ["a", "c"]):
        among, args = one_of(database.dialect, values)
        rows = await database.fetch(f"SELECT k FROM db_members WHERE k {among} ORDER BY k", *args)
        assert [r[0] for r in rows] == expected


async def test_processes_starting_together_on_a_fresh_database_all_start(
    postgres_server_url: str,
) -> None:
    """Several processes opening their pools at once on a new database (serve with workers):
    each makes sure of the schema, and none fails on the others' doing the same."""
    import secrets

    import asyncpg

    from leetgaming.db import PostgresDatabase

    from ..conftest import _with_database

    name = f"lgtest_race_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(postgres_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        for _ in range(3):  # a race: a few tries
            opened = await asyncio.gather(
                *(
                    PostgresDatabase.connect(_with_database(postgres_server_url, name))
                    for _ in range(8)
                )
            )
            assert [await db.fetchone("SELECT current_schema()") for db in opened] == [("app",)] * 8
            for db in opened:
                await db.close()
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
