"""``leetgaming migrate`` and ``leetgaming reconcile`` as an operator runs them."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg

from ledger import Account, AccountFlags, Ledger, Transfer, open_store


def run_cli(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEETGAMING_")}
    env["LEETGAMING_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "leetgaming", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def post_some(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        async with Ledger(store) as ledger:
            await ledger.create_accounts(
                [
                    Account(1, "USD", "platform", "settlement"),
                    Account(2, "USD", "alice", "user", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
                ]
            )
            outcomes = await ledger.create_transfers(
                [Transfer(10, 1, 2, 500, "USD"), Transfer(11, 2, 1, 200, "USD")]
            )
            assert all(o.result.succeeded for o in outcomes)
    finally:
        await store.close()


def test_migrate_then_reconcile_on_sqlite(tmp_path: Path) -> None:
    url = "sqlite:///./var/ledger.sqlite3"
    migrated = run_cli("migrate", database_url=url, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.strip() == "migrated"
    assert run_cli("migrate", database_url=url, cwd=tmp_path).returncode == 0  # idempotent
    absolute = f"sqlite:///{tmp_path}/var/ledger.sqlite3"
    asyncio.run(post_some(absolute))

    clean = run_cli("reconcile", "--json", database_url=url, cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    report = json.loads(clean.stdout)
    assert report["ok"] is True and report["transfers"] == 2 and report["accounts"] == 2

    # Someone edits a balance behind the ledger's back: reconciliation says so and exits 1.
    db = sqlite3.connect(tmp_path / "var" / "ledger.sqlite3")
    with db:
        db.execute("UPDATE accounts SET credits_posted = '999' WHERE owner = 'alice'")
    db.close()
    dirty = run_cli("reconcile", database_url=url, cwd=tmp_path)
    assert dirty.returncode == 1
    assert "DIFFERENCES FOUND" in dirty.stdout
    assert "00000000-0000-0000-0000-000000000002" in dirty.stdout  # names the account
    # It never patches anything: the difference is still there.
    assert run_cli("reconcile", database_url=url, cwd=tmp_path).returncode == 1


def test_migrate_then_reconcile_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    migrated = run_cli("migrate", database_url=postgres_url, cwd=tmp_path)
    try:
        assert migrated.returncode == 0, migrated.stderr
        asyncio.run(post_some(postgres_url))
        clean = run_cli("reconcile", database_url=postgres_url, cwd=tmp_path)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "clean" in clean.stdout
        assert "password" not in clean.stdout + clean.stderr

        async def tamper() -> None:
            conn = await asyncpg.connect(postgres_url)
            try:
                await conn.execute(
                    "UPDATE ledger.accounts SET credits_posted = credits_posted + 1 WHERE owner = 'alice'"
                )
            finally:
                await conn.close()

        asyncio.run(tamper())
        dirty = run_cli("reconcile", "--json", database_url=postgres_url, cwd=tmp_path)
        assert dirty.returncode == 1
        kinds = {p["kind"] for p in json.loads(dirty.stdout)["problems"]}
        assert {"balance_differs", "asset_not_zero"} <= kinds
    finally:

        async def drop() -> None:
            conn = await asyncpg.connect(postgres_url)
            try:
                await conn.execute("DROP SCHEMA IF EXISTS ledger CASCADE")
            finally:
                await conn.close()

        asyncio.run(drop())
