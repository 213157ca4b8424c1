"""Idempotency keys in the app database (SQLite and PostgreSQL): one of concurrent first
requests runs, a finished one replays, a different body is refused, a stale claim is taken
over, unkept responses free the key, old keys are purged. And the audit log refuses edits."""

from __future__ import annotations

import asyncio

import pytest

from leetgaming.audit import AuditLog
from leetgaming.db import Database
from leetgaming.idempotency_store import IdempotencyKeys
from wallet import idempotency as idem
from wallet.idempotency import Decision

FP, OTHER = "a" * 64, "b" * 64


async def test_concurrent_first_requests_run_once(database: Database) -> None:
    keys = IdempotencyKeys(database)
    await keys.start()
    claims = await asyncio.gather(*(keys.claim("p1", "k", FP, 1000) for _ in range(20)))
    decisions = [c.decision for c in claims]
    assert decisions.count(Decision.RUN) == 1
    assert decisions.count(Decision.IN_PROGRESS) == 19
    # the same key of another caller is another key
    assert (await keys.claim("p2", "k", FP, 1000)).decision is Decision.RUN


async def test_replay_reuse_takeover_release_and_purge(database: Database) -> None:
    keys = IdempotencyKeys(database)
    await keys.start()
    assert (await keys.claim("p", "done", FP, 1000)).decision is Decision.RUN
    await keys.finish("p", "done", 201, b'{"id": 1}')
    replay = await keys.claim("p", "done", FP, 1001)
    assert replay.decision is Decision.REPLAY
    assert replay.record is not None and (replay.record.status, replay.record.body) == (
        201,
        b'{"id": 1}',
    )
    assert (await keys.claim("p", "done", OTHER, 1001)).decision is Decision.REUSED

    assert (await keys.claim("p", "crashed", FP, 1000)).decision is Decision.RUN
    assert (await keys.claim("p", "crashed", FP, 1000 + idem.CLAIM_TTL_S - 1)).decision is (
        Decision.IN_PROGRESS
    )
    taken = await asyncio.gather(
        *(keys.claim("p", "crashed", FP, 1000 + idem.CLAIM_TTL_S) for _ in range(5))
    )
    assert [c.decision for c in taken].count(Decision.RUN) == 1

    assert (await keys.claim("p", "malformed", FP, 1000)).decision is Decision.RUN
    await keys.finish("p", "malformed", 422, b"{}")
    assert (await keys.claim("p", "malformed", OTHER, 1001)).decision is Decision.RUN

    assert await keys.purge(1000 + idem.RETENTION_S) == 0  # kept at least 24 h
    assert await keys.purge(1000 + idem.RETENTION_S + 1) == 1  # "done", claimed at 1000
    assert await keys.purge(1000 + idem.RETENTION_S + idem.CLAIM_TTL_S + 1) == 2
    later = 1000 + idem.RETENTION_S + idem.CLAIM_TTL_S + 2
    assert (await keys.claim("p", "done", OTHER, later)).decision is Decision.RUN


async def test_the_audit_log_refuses_update_and_delete(database: Database) -> None:
    clock = iter(range(10, 100))
    log = AuditLog(database, lambda: next(clock))
    await log.start()
    async with database.transaction() as tx:
        await log.append(tx, "root", "price.set", "ETH", {"price_usd": "1"})
    await log.append(None, "root", "withdrawal.approve", "w1")
    for statement in ("UPDATE audit_entries SET actor = 'mallory'", "DELETE FROM audit_entries"):
        with pytest.raises(Exception, match="refused"):
            await database.execute(statement)
    if database.dialect == "postgresql":
        with pytest.raises(Exception, match="refused"):
            await database.execute("TRUNCATE audit_entries")
    entries = await log.page(None, 10)
    assert [(e.actor, e.action, e.subject) for e in entries] == [
        ("root", "withdrawal.approve", "w1"),
        ("root", "price.set", "ETH"),
    ]
    assert [e.action for e in await log.page((entries[0].at_ns, entries[0].id), 10)] == [
        "price.set"
    ]
    with pytest.raises(ValueError, match="at most"):
        await log.append(None, "root", "x", "y", {"blob": "z" * 5000})


async def test_the_tournaments_old_audit_rows_move_into_the_one_audit_log(
    database: Database,
) -> None:
    from leetgaming.tournaments import MIGRATIONS

    await database.migrate("tournaments", MIGRATIONS[:1])  # a database of before the move
    await database.execute(
        "INSERT INTO audit_log (at_s, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        1_700_000_000.25,
        "root",
        "tournament.create",
        "t1",
        'Sunday "cup" \\ 1',
    )
    log = AuditLog(database, lambda: 1)
    await log.start()
    await database.migrate("tournaments", MIGRATIONS)
    [entry] = await log.page(None, 10)
    assert (entry.actor, entry.action, entry.subject) == ("root", "tournament.create", "t1")
    # the old column was float seconds: exact to well under a microsecond
    assert abs(entry.at_ns - 1_700_000_000_250_000_000) < 1_000
    assert entry.detail == {"text": 'Sunday "cup" \\ 1'}
    with pytest.raises(Exception, match="audit_log"):
        await database.fetch("SELECT * FROM audit_log")
