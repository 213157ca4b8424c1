"""The application database port on both adapters: a read outside a transaction sees what is
committed, never what a transaction under way has written, and does not wait for it."""

from __future__ import annotations

import asyncio

from leetgaming.db import Database


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
