"""Durability: a test posts transfers at full speed from a subprocess, kills it with SIGKILL,
restarts, and checks that every transfer acknowledged before the kill is there and
reconciliation is clean.

The writer is ``tests/ledger/durability_writer.py``: 64 tasks on one :class:`ledger.Ledger`
with default settings, each printing a transfer's id once the ledger answered ``ok``. The test
reads those lines until it has seen enough, kills the writer with SIGKILL in the middle of its
work, drains the pipe (a line already written was acknowledged), reopens the database and looks
every acknowledged id up. Two kill/restart cycles on the same database, on both stores.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from pathlib import Path

import asyncpg

from ledger import LedgerStore, TransferRecord, open_store, reconcile

from . import durability_writer as writer

REPO = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("durability_writer.py")
CYCLES = 2
ACKS_WANTED = 2_000  # kill once this many transfers were acknowledged...
AFTER_FIRST_ACK_S = 1.5  # ...or this long after the first one, whichever comes first
ACKS_MIN = 100  # a cycle that acknowledged fewer did not really write at full speed
START_TIMEOUT_S = 30.0
LOOKUP_CHUNK = 1_000


def _ids(lines: list[bytes]) -> list[int]:
    return [int(line) for line in lines]


async def run_until_killed(args: list[str], stderr_path: Path) -> list[int]:
    """Runs the writer, SIGKILLs it mid-flight, returns the ids it acknowledged before."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with stderr_path.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WRITER),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=REPO,
            env=env,
        )
    assert process.stdout is not None
    acked: list[int] = []
    pending = b""  # a line not yet ended by its newline is not an acknowledgement yet
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        first_ack_seen = False
        while len(acked) < ACKS_WANTED:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(process.stdout.read(1 << 16), left)
            except TimeoutError:
                break
            if not chunk:  # the writer exited by itself: the assertion below tells why
                break
            *lines, pending = (pending + chunk).split(b"\n")
            acked += _ids(lines)
            if acked and not first_ack_seen:
                first_ack_seen = True
                deadline = loop.time() + AFTER_FIRST_ACK_S
        process.send_signal(signal.SIGKILL)
        # Drain the pipe: every line the writer wrote before it died was acknowledged.
        *lines, pending = (pending + await process.stdout.read()).split(b"\n")
        acked += _ids(lines)
        returncode = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert returncode == -signal.SIGKILL, (
        f"the writer exited by itself ({returncode}):\n"
        + stderr_path.read_text(errors="replace")[-4000:]
    )
    return acked


async def check_acknowledged(store: LedgerStore, acked: list[int]) -> None:
    """Every acknowledged id is recorded, as the transfer the writer posted; books balance."""
    missing: list[int] = []
    for start in range(0, len(acked), LOOKUP_CHUNK):
        chunk = acked[start : start + LOOKUP_CHUNK]
        records: list[TransferRecord] = await store.lookup_transfers(chunk)
        found = {r.id for r in records}
        missing += [i for i in chunk if i not in found]
        for r in records:
            assert r.debit_account_id in writer.WALLETS, r
            assert r.credit_account_id in writer.WALLETS, r
            assert (r.asset, r.code, r.pending_id) == ("USD", 9, 0), r
            assert 1 <= r.amount <= 1_000, r
    assert not missing, (
        f"{len(missing)} of {len(acked)} acknowledged transfers are missing after SIGKILL, "
        f"e.g. {missing[:5]}"
    )
    report = await reconcile(store)
    assert report.ok, report.to_text()
    assert report.transfers >= len(acked) + len(writer.WALLETS)  # funding, and maybe in-flight


async def kill_restart_cycles(url: str, schema: str, tmp_path: Path) -> None:
    stderr_path = tmp_path / "writer.stderr"
    acked_so_far: list[int] = []
    for cycle in range(CYCLES):
        args = [url, "--schema", schema] + (["--migrate"] if cycle == 0 else [])
        acked = await run_until_killed(args, stderr_path)
        assert len(acked) >= ACKS_MIN, (
            f"cycle {cycle}: only {len(acked)} transfers acknowledged:\n"
            + stderr_path.read_text(errors="replace")[-4000:]
        )
        assert len(set(acked)) == len(acked), "an id was acknowledged twice"
        assert not set(acked) & set(acked_so_far), "the restarted writer reused ids"
        acked_so_far += acked
        store = await open_store(url, schema=schema)
        try:
            await check_acknowledged(store, acked_so_far)
        finally:
            await store.close()


async def test_acknowledged_transfers_survive_sigkill(
    backend: str, backend_database_url: str, tmp_path: Path
) -> None:
    if backend == "postgres":
        schema = f"t_{secrets.token_hex(6)}"
        try:
            await kill_restart_cycles(backend_database_url, schema, tmp_path)
        finally:
            conn = await asyncpg.connect(backend_database_url)
            try:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            finally:
                await conn.close()
    else:
        path = tmp_path / "ledger.sqlite3"
        await kill_restart_cycles(f"sqlite:///{path}", "ledger", tmp_path)
