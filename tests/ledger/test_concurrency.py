"""Concurrency: many tasks (and several processes, on PostgreSQL) posting against the same
accounts never lose an update, never drive a flagged balance negative, never post a transfer id
twice. Hot accounts must not serialize all traffic on one row lock.

- Many asyncio tasks on one :class:`Ledger`, on both stores: linked (payment, fee) pairs between
  a few small wallets and one shared fee account, with retries of the same ids (same fields and
  changed amount), some of them sent twice at the same moment.
- Three OS processes on one PostgreSQL schema (``tests/ledger/ledger_worker.py``), racing on the
  same transfer ids, some with a different amount.
- A hot fee account credited by 5,000 transfers is written many transfers per transaction.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg

from ledger import (
    Account,
    AccountFlags,
    AccountState,
    CreateAccountResult,
    CreateTransferResult,
    Ledger,
    LedgerStore,
    Transfer,
    TransferFlags,
    TransferOutcome,
    TransferRecord,
    derive_id,
    reconcile,
)
from ledger.postgres_store import PostgresLedgerStore

from . import ledger_worker as worker
from .conftest import drop_postgres, open_postgres

R = CreateTransferResult
LIMITED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
LINKED = TransferFlags.LINKED
REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ledger_worker.py")
PROCESS_TIMEOUT_S = 60.0


# Shared helpers ----------------------------------------------------------------------------


async def all_records(store: LedgerStore) -> list[TransferRecord]:
    return [record async for record in store.scan_transfers()]


async def all_accounts(store: LedgerStore) -> dict[int, AccountState]:
    return {account.id: account async for account in store.scan_accounts()}


def expected_counters(transfers: Sequence[Transfer]) -> dict[int, tuple[int, int, int, int]]:
    """Each account's (debits pending, debits posted, credits pending, credits posted) after
    exactly these posted transfers, each applied once."""
    debits: Counter[int] = Counter()
    credits: Counter[int] = Counter()
    for t in transfers:
        debits[t.debit_account_id] += t.amount
        credits[t.credit_account_id] += t.amount
    return {a: (0, debits[a], 0, credits[a]) for a in debits.keys() | credits.keys()}


def assert_counters_match(
    accounts: dict[int, AccountState], expected: dict[int, tuple[int, int, int, int]]
) -> None:
    differences = {
        account_id: (state.balance.as_tuple(), expected.get(account_id, (0, 0, 0, 0)))
        for account_id, state in accounts.items()
        if state.balance.as_tuple() != expected.get(account_id, (0, 0, 0, 0))
    }
    assert not differences, f"stored counters differ from the acknowledged transfers: {differences}"
    assert set(expected) <= set(accounts), "a transfer names an account that does not exist"


def assert_no_flagged_account_negative(accounts: dict[int, AccountState]) -> None:
    for state in accounts.values():
        b = state.balance
        if state.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS:
            assert b.debits_pending + b.debits_posted <= b.credits_posted, (state.id, b)


# Many tasks on one ledger, both stores -----------------------------------------------------

BANK = 100
WALLETS = tuple(range(101, 109))  # 8 small wallets, DEBITS_MUST_NOT_EXCEED_CREDITS
FEES = 200  # the shared fee account every pair pays into
WALLET_FUNDING = 500
TASKS = 240
PAIRS_PER_TASK = 5


@dataclass(frozen=True)
class Answer:
    transfers: tuple[Transfer, ...]
    outcomes: tuple[TransferOutcome, ...]


async def open_wallets(ledger: Ledger) -> list[Transfer]:
    accounts = [Account(BANK, "USD", "platform", "settlement")]
    accounts += [Account(w, "USD", f"player{w}", "user", LIMITED) for w in WALLETS]
    accounts.append(Account(FEES, "USD", "platform", "fee", LIMITED))
    assert await ledger.create_accounts(accounts) == [CreateAccountResult.OK] * len(accounts)
    funding = [Transfer(derive_id("test.fund", w), BANK, w, WALLET_FUNDING, "USD") for w in WALLETS]
    assert [o.result for o in await ledger.create_transfers(funding)] == [R.OK] * len(funding)
    return funding


async def client(ledger: Ledger, task_no: int, answers: list[Answer]) -> None:
    """Posts its pairs; retries some with the same fields, some with a changed amount, and
    sends some twice at the same moment."""
    rng = random.Random(task_no)

    async def post(transfers: Sequence[Transfer]) -> None:
        outcomes = await ledger.create_transfers(transfers)
        answers.append(Answer(tuple(transfers), tuple(outcomes)))

    for k in range(PAIRS_PER_TASK):
        debit, credit = rng.sample(WALLETS, 2)
        pair = [
            Transfer(
                derive_id("test.pair", task_no, k, 0),
                debit,
                credit,
                rng.randint(50, 400),
                "USD",
                code=1,
                flags=LINKED,
            ),
            Transfer(
                derive_id("test.pair", task_no, k, 1), debit, FEES, rng.randint(1, 9), "USD", code=2
            ),
        ]
        changed = [replace(pair[0], amount=pair[0].amount + 1), pair[1]]
        if rng.random() < 0.25:
            await asyncio.gather(post(pair), post(pair))  # the same request twice at once
        else:
            await post(pair)
        retries = [pair] * rng.randint(0, 2) + [changed] * rng.randint(0, 1)
        rng.shuffle(retries)
        for retry in retries:
            await post(retry)


async def test_many_tasks_never_lose_an_update_nor_overdraw_nor_post_an_id_twice(
    store: LedgerStore,
) -> None:
    answers: list[Answer] = []
    async with Ledger(store, expire_on_timer=False) as ledger:
        funding = await open_wallets(ledger)
        await asyncio.gather(*(client(ledger, n, answers) for n in range(TASKS)))

    results = Counter(o.result for a in answers for o in a.outcomes)
    assert set(results) <= {
        R.OK,
        R.EXISTS,
        R.EXISTS_WITH_DIFFERENT_FIELDS,
        R.INSUFFICIENT_FUNDS,
        R.LINKED_EVENT_FAILED,
    }, results
    # The wallets are small: many pairs must have been refused, and many must have gone through.
    assert results[R.INSUFFICIENT_FUNDS] >= 100, results
    assert results[R.OK] >= 200, results
    assert results[R.EXISTS] >= 100 and results[R.EXISTS_WITH_DIFFERENT_FIELDS] >= 20, results

    # A linked pair is applied whole or not at all, and is retried whole.
    for a in answers:
        first, second = (o.result for o in a.outcomes)
        assert (first is R.OK) == (second is R.OK), a
        assert (first is R.EXISTS) == (second is R.EXISTS), a
        if not first.succeeded or not second.succeeded:
            assert R.LINKED_EVENT_FAILED in (first, second), a

    # Every id is recorded by exactly one ok answer; every other answer points at that record.
    ok: dict[int, tuple[Transfer, TransferRecord]] = {}
    for a in answers:
        for t, o in zip(a.transfers, a.outcomes, strict=True):
            if o.result is R.OK:
                assert t.id not in ok, f"transfer {t.id:x} was answered ok twice"
                assert o.record is not None
                ok[t.id] = (t, o.record)
    for a in answers:
        for t, o in zip(a.transfers, a.outcomes, strict=True):
            if o.result in (R.EXISTS, R.EXISTS_WITH_DIFFERENT_FIELDS):
                assert t.id in ok, f"{o.result} for {t.id:x}, which no one recorded"
                first_transfer, first_record = ok[t.id]
                assert o.record == first_record, "exists must answer with the first record"
                assert (t == first_transfer) == (o.result is R.EXISTS), (t, first_transfer)

    # The database holds exactly the acknowledged transfers, as they were acknowledged.
    records = await all_records(store)
    recorded_ids = [r.id for r in records]
    funding_ids = {t.id for t in funding}
    assert len(recorded_ids) == len(set(recorded_ids)) == len(ok) + len(funding)
    assert set(recorded_ids) == ok.keys() | funding_ids
    ok_ids = list(ok)
    assert await store.lookup_transfers(ok_ids) == [ok[i][1] for i in ok_ids]

    # No lost update: each account's counters are the sum of the acknowledged transfers.
    accounts = await all_accounts(store)
    assert_counters_match(accounts, expected_counters([*funding, *(t for t, _ in ok.values())]))
    assert_no_flagged_account_negative(accounts)
    assert accounts[FEES].balance.credits_posted == sum(
        t.amount for t, _ in ok.values() if t.credit_account_id == FEES
    )
    report = await reconcile(store)
    assert report.ok, report.to_text()
    assert report.transfers == len(ok) + len(funding)


# A hot account: many transfers per transaction -----------------------------------------------

PAYERS = tuple(range(301, 321))
HOT_FEES = 400
HOT_CLIENTS = 100
HOT_TRANSFERS_PER_CLIENT = 50  # 5,000 transfers, every one crediting HOT_FEES


async def test_a_hot_fee_account_is_written_many_transfers_per_transaction(
    store: LedgerStore,
) -> None:
    """Structural, not timed: with 100 clients each waiting for its previous answer, the writer
    must put many transfers (each locking the hot account) into one database transaction."""
    async with Ledger(store, expire_on_timer=False) as ledger:
        accounts = [Account(BANK, "USD", "platform", "settlement")]
        accounts += [Account(p, "USD", f"payer{p}", "user", LIMITED) for p in PAYERS]
        accounts.append(Account(HOT_FEES, "USD", "platform", "fee"))
        assert set(await ledger.create_accounts(accounts)) == {CreateAccountResult.OK}
        funding = [Transfer(derive_id("test.hotfund", p), BANK, p, 1_000, "USD") for p in PAYERS]
        assert {o.result for o in await ledger.create_transfers(funding)} == {R.OK}
        batches_before, transfers_before = ledger.batches_written, ledger.transfers_written

        async def pay(client_no: int) -> list[R]:
            results = []
            for n in range(HOT_TRANSFERS_PER_CLIENT):
                payer = PAYERS[(client_no + n) % len(PAYERS)]
                t = Transfer(derive_id("test.hot", client_no, n), payer, HOT_FEES, 1, "USD")
                results.append((await ledger.create_transfer(t)).result)
            return results

        per_client = await asyncio.gather(*(pay(c) for c in range(HOT_CLIENTS)))
        batches = ledger.batches_written - batches_before
        transfers = ledger.transfers_written - transfers_before

    total = HOT_CLIENTS * HOT_TRANSFERS_PER_CLIENT
    assert [r for results in per_client for r in results] == [R.OK] * total
    assert transfers == total
    assert transfers / batches >= 10, f"{transfers} transfers in {batches} transactions"
    [hot] = await store.lookup_accounts([HOT_FEES])
    assert hot.balance.as_tuple() == (0, 0, 0, total)
    for payer in await store.lookup_accounts(list(PAYERS)):
        assert payer.balance.as_tuple() == (0, total // len(PAYERS), 0, 1_000)
    report = await reconcile(store)
    assert report.ok, report.to_text()


# Several processes on one PostgreSQL schema ----------------------------------------------------

PROCESS_SEEDS = (0, 1, 2)  # 0 and 1 send identical shared transfers; 2 changes their amounts
SHARED_PAIRS = 300


async def start_worker(dsn: str, schema: str, seed: int, stderr: Any) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        dsn,
        schema,
        str(seed),
        str(SHARED_PAIRS),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        cwd=REPO,
        env=env,
    )


async def run_workers(dsn: str, schema: str, tmp_path: Path) -> dict[int, list[dict[str, Any]]]:
    """Starts one worker per seed, lets them all go at once, returns each one's JSON lines."""
    processes: dict[int, asyncio.subprocess.Process] = {}
    logs = {seed: tmp_path / f"worker-{seed}.stderr" for seed in PROCESS_SEEDS}
    files = {seed: logs[seed].open("wb") for seed in PROCESS_SEEDS}

    def stderr_of(seed: int) -> str:
        files[seed].flush()
        return logs[seed].read_text(errors="replace")[-4000:]

    try:
        for seed in PROCESS_SEEDS:
            processes[seed] = await start_worker(dsn, schema, seed, files[seed])
        for seed, process in processes.items():
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), PROCESS_TIMEOUT_S)
            assert json.loads(line or b"null") == {"ready": True}, stderr_of(seed)
        for process in processes.values():
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
            process.stdin.close()
            await process.stdin.wait_closed()

        async def finish(seed: int, process: asyncio.subprocess.Process) -> bytes:
            assert process.stdout is not None
            out = await process.stdout.read()
            assert await process.wait() == 0, f"worker {seed} failed:\n{stderr_of(seed)}"
            return out

        outputs = await asyncio.wait_for(
            asyncio.gather(*(finish(seed, p) for seed, p in processes.items())),
            PROCESS_TIMEOUT_S,
        )
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.kill()
                await process.wait()
        for f in files.values():
            f.close()
    return {
        seed: [json.loads(line) for line in out.splitlines()]
        for seed, out in zip(processes, outputs, strict=True)
    }


async def test_several_processes_on_one_postgres_schema(postgres_url: str, tmp_path: Path) -> None:
    store: PostgresLedgerStore = await open_postgres(postgres_url)
    try:
        async with Ledger(store, expire_on_timer=False) as ledger:
            accounts = [Account(worker.BANK, "USD", "platform", "settlement")]
            accounts += [Account(u, "USD", f"p{u}", "user", worker.LIMITED) for u in worker.USERS]
            accounts.append(Account(worker.FEE, "USD", "platform", "fee", worker.LIMITED))
            assert set(await ledger.create_accounts(accounts)) == {CreateAccountResult.OK}
            funding = [
                Transfer(derive_id("test.procfund", u), worker.BANK, u, worker.FUNDING, "USD")
                for u in worker.USERS
            ]
            assert {o.result for o in await ledger.create_transfers(funding)} == {R.OK}

        lines = await run_workers(postgres_url, store.schema, tmp_path)

        # What each process was asked to send, by id.
        sent: dict[int, dict[int, Transfer]] = {seed: {} for seed in PROCESS_SEEDS}
        partner: dict[int, int] = {}  # fee id -> payment id
        for seed in PROCESS_SEEDS:
            pairs = [worker.shared_pair(n, worker.variant_of(seed)) for n in range(SHARED_PAIRS)]
            pairs += [worker.own_pair(seed, n) for n in range(0, SHARED_PAIRS, 2)]
            for pair in pairs:
                sent[seed][pair.payment.id] = pair.payment
                sent[seed][pair.fee.id] = pair.fee
                partner[pair.fee.id] = pair.payment.id

        answers: dict[int, dict[int, dict[str, Any]]] = {seed: {} for seed in PROCESS_SEEDS}
        for seed, out in lines.items():
            assert out and out[-1].get("done") is True, f"worker {seed} did not finish: {out[-3:]}"
            errors = [line for line in out if "error" in line]
            assert not errors, f"worker {seed}: requests raised instead of answering: {errors[:5]}"
            for line in out[:-1]:  # the "ready" line was read before "go"
                assert line["id"] not in answers[seed], "one answer per transfer"
                answers[seed][line["id"]] = line
            assert answers[seed].keys() == sent[seed].keys(), f"worker {seed} left some unanswered"
            for fee_id, payment_id in partner.items():
                if fee_id in answers[seed]:
                    pair = (answers[seed][payment_id]["result"], answers[seed][fee_id]["result"])
                    assert (pair[0] == "ok") == (pair[1] == "ok"), pair
            # The hot account did not serialise the process: its writer batched.
            assert out[-1]["transfers"] / out[-1]["batches"] >= 2, out[-1]

        scanned = await all_records(store)
        records = {r.id: r for r in scanned}
        assert len(records) == len(scanned), "a transfer id is recorded twice"
        by_id: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for seed in PROCESS_SEEDS:
            for transfer_id, line in answers[seed].items():
                by_id[transfer_id].append((seed, line))

        results = Counter(line["result"] for seed in answers for line in answers[seed].values())
        assert set(results) <= {
            "ok",
            "exists",
            "exists_with_different_fields",
            "insufficient_funds",
            "linked_event_failed",
        }, results
        for transfer_id, said in by_id.items():
            oks = [seed for seed, line in said if line["result"] == "ok"]
            record = records.get(transfer_id)
            if record is None:
                assert not oks, f"{transfer_id:x} answered ok by {oks} but not recorded"
                assert all(
                    line["result"] in ("insufficient_funds", "linked_event_failed")
                    for _, line in said
                ), said
                continue
            assert len(oks) == 1, f"{transfer_id:x} answered ok by processes {oks}"
            for seed, line in said:
                t = sent[seed][transfer_id]
                same = (t.debit_account_id, t.credit_account_id, t.amount) == (
                    record.debit_account_id,
                    record.credit_account_id,
                    record.amount,
                )
                if line["result"] in ("ok", "exists"):
                    assert same and line["record_amount"] == record.amount, (line, record)
                elif line["result"] == "exists_with_different_fields":
                    assert not same and line["record_amount"] == record.amount, (line, record)
        # The race happened: processes met each other's records, identical and changed.
        assert results["ok"] >= 100, results
        assert results["exists"] >= 20 and results["exists_with_different_fields"] >= 20, results
        assert results["insufficient_funds"] >= 20, results

        acknowledged = [
            sent[seed][transfer_id]
            for transfer_id, said in by_id.items()
            for seed, line in said
            if line["result"] == "ok"
        ]
        assert len(records) == len(acknowledged) + len(funding)
        accounts = await all_accounts(store)
        assert_counters_match(accounts, expected_counters([*funding, *acknowledged]))
        assert_no_flagged_account_negative(accounts)
        report = await reconcile(store)
        assert report.ok, report.to_text()
    finally:
        await drop_postgres(postgres_url, store)


# Two writers meeting on the same accounts: answered, never a database deadlock ------------------


async def wait_for_lock_waiters(url: str, schema: str, count: int) -> None:
    """Until ``count`` backends wait for a lock in a statement on ``schema``'s tables."""
    watcher = await asyncpg.connect(url)
    try:
        for _ in range(500):
            waiting = await watcher.fetchval(  # each call its own transaction: a fresh view
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND position($1 in query) > 0",
                f"{schema}.",
            )
            if waiting >= count:
                return
            await asyncio.sleep(0.01)
    finally:
        await watcher.close()
    raise AssertionError(f"expected {count} writers waiting for a lock on {schema}.accounts")


async def test_two_processes_meeting_on_the_same_accounts_are_both_answered(
    postgres_url: str,
) -> None:
    """Two writers (two stores on one schema, as two processes) post against wallets A and B
    while a third session briefly holds A. Writer 1's batch holds a refused transfer, so it
    cannot be decided on a stale view: it locks A and B (in id order) and waits for A. Writer 2
    then posts a plain payment B -> A. Both must be answered: no writer may take the locks of a
    batch in an order that lets another writer wait on it the other way round (a deadlock,
    which PostgreSQL breaks by failing one of the two with ``DeadlockDetectedError``)."""
    a, b, bank = 1, 2, 9
    first: PostgresLedgerStore = await open_postgres(postgres_url)
    second = await PostgresLedgerStore.connect(postgres_url, schema=first.schema)
    holder = await asyncpg.connect(postgres_url)
    hold = holder.transaction()
    try:
        async with (
            Ledger(first, expire_on_timer=False) as one,
            Ledger(second, expire_on_timer=False) as two,
        ):
            # B is created before A: on disk B's row comes first, while A's id sorts first.
            await one.create_accounts(
                [
                    Account(bank, "USD", "platform", "settlement"),
                    Account(b, "USD", "b", "user", LIMITED),
                    Account(a, "USD", "a", "user", LIMITED),
                ]
            )
            funding = [Transfer(10, bank, a, 100, "USD"), Transfer(11, bank, b, 100, "USD")]
            assert [o.result for o in await one.create_transfers(funding)] == [R.OK, R.OK]
            # Each writer posts against both accounts once; writer 2 last, so that what it saw
            # of A and B is still current when the race starts.
            assert (await one.create_transfer(Transfer(13, b, a, 1, "USD"))).result is R.OK
            assert (await two.create_transfer(Transfer(12, a, b, 1, "USD"))).result is R.OK

            await hold.start()
            try:
                await holder.execute(
                    f"SELECT 1 FROM {first.schema}.accounts WHERE id = $1::uuid FOR UPDATE",
                    "00000000-0000-0000-0000-000000000001",
                )
                locking = asyncio.ensure_future(
                    one.create_transfers(
                        [Transfer(20, a, b, 5, "USD"), Transfer(21, b, a, 10**9, "USD")]
                    )
                )
                await wait_for_lock_waiters(postgres_url, first.schema, 1)
                plain = asyncio.ensure_future(two.create_transfer(Transfer(30, b, a, 7, "USD")))
                await wait_for_lock_waiters(postgres_url, first.schema, 2)
            finally:
                await hold.rollback()  # never leave the writers waiting, even on failure
            answered = await asyncio.wait_for(
                asyncio.gather(locking, plain, return_exceptions=True), 30
            )
        assert not [x for x in answered if isinstance(x, BaseException)], answered
        locking_out, plain_out = answered
        assert isinstance(locking_out, list) and isinstance(plain_out, TransferOutcome)
        assert [o.result for o in locking_out] == [R.OK, R.INSUFFICIENT_FUNDS]
        assert plain_out.result is R.OK
        accounts = await all_accounts(first)
        assert accounts[a].balance.as_tuple() == (0, 1 + 5, 0, 100 + 1 + 7)
        assert accounts[b].balance.as_tuple() == (0, 1 + 7, 0, 100 + 1 + 5)
        report = await reconcile(first)
        assert report.ok, report.to_text()
    finally:
        await holder.close()
        await second.close()
        await drop_postgres(postgres_url, first)


async def test_two_processes_crossing_on_the_same_ids_are_both_answered(postgres_url: str) -> None:
    """Two writers on disjoint accounts post the same three ids, in opposite orders, while a
    third transaction (a writer about to fail, or a process about to be killed) holds the middle
    id uncommitted and then rolls back. Both writers wait for that id while each holds one of
    the others' ids; the ledger must still answer both: one records all three, the other learns
    ``exists_with_different_fields`` for each, and nothing fails with a database error."""
    x, z, y = 100, 200, 300
    first: PostgresLedgerStore = await open_postgres(postgres_url)
    second = await PostgresLedgerStore.connect(postgres_url, schema=first.schema)
    holder = await asyncpg.connect(postgres_url)
    hold = holder.transaction()
    try:
        async with (
            Ledger(first, expire_on_timer=False) as one,
            Ledger(second, expire_on_timer=False) as two,
        ):
            assert set(
                await one.create_accounts([Account(i, "USD", "o", "user") for i in (1, 2, 3, 4)])
            ) == {CreateAccountResult.OK}
            await hold.start()
            try:
                await holder.execute(
                    f"INSERT INTO {first.schema}.transfers (id, debit_account_id, "
                    "credit_account_id, amount, asset, code, flags, pending_id, timeout_s, "
                    "expires_at, timestamp, metadata, dr_debits_pending, dr_debits_posted, "
                    "dr_credits_pending, dr_credits_posted, cr_debits_pending, cr_debits_posted, "
                    "cr_credits_pending, cr_credits_posted) VALUES ($1::uuid, $2::uuid, $3::uuid, "
                    "1, 'USD', 0, 0, NULL, 0, 0, 1, NULL, 0, 1, 0, 0, 0, 0, 0, 1)",
                    str(uuid.UUID(int=z)),
                    str(uuid.UUID(int=1)),
                    str(uuid.UUID(int=2)),
                )
                forward = asyncio.ensure_future(
                    one.create_transfers([Transfer(i, 1, 2, 1, "USD") for i in (x, z, y)])
                )
                await wait_for_lock_waiters(postgres_url, first.schema, 1)
                backward = asyncio.ensure_future(
                    two.create_transfers([Transfer(i, 3, 4, 1, "USD") for i in (y, z, x)])
                )
                await wait_for_lock_waiters(postgres_url, first.schema, 2)
            finally:
                await hold.rollback()
            answered = await asyncio.wait_for(
                asyncio.gather(forward, backward, return_exceptions=True), 30
            )
        assert not [x for x in answered if isinstance(x, BaseException)], answered
        results = sorted([o.result for o in out] for out in answered if isinstance(out, list))
        assert results == [[R.EXISTS_WITH_DIFFERENT_FIELDS] * 3, [R.OK] * 3]
        assert len(await all_records(first)) == 3
        report = await reconcile(first)
        assert report.ok, report.to_text()
    finally:
        await holder.close()
        await second.close()
        await drop_postgres(postgres_url, first)


async def test_two_processes_resolving_one_hold_while_its_accounts_are_locked(
    postgres_url: str,
) -> None:
    """Two writers resolve the same hold (one posts it, the other voids it) and both read it
    unresolved, then wait for its accounts, held by a third transaction. When the lock is
    released, the first resolves the hold; the second must see that resolution (it committed
    while the second waited for the lock) and answer ``already posted``/``voided``, not apply
    it again to the counters it locked (a negative pending amount, which the database's CHECK
    refuses: a 500 in a withdrawal that the sweeper and its request both finished)."""
    first: PostgresLedgerStore = await open_postgres(postgres_url)
    second = await PostgresLedgerStore.connect(postgres_url, schema=first.schema)
    holder = await asyncpg.connect(postgres_url)
    try:
        async with (
            Ledger(first, expire_on_timer=False) as one,
            Ledger(second, expire_on_timer=False) as two,
        ):
            await one.create_accounts(
                [Account(1, "USD", "p", "user", LIMITED), Account(2, "USD", "w", "settlement")]
            )
            [funded, held] = await one.create_transfers(
                [
                    Transfer(10, 2, 1, 500, "USD"),
                    Transfer(11, 1, 2, 100, "USD", 0, TransferFlags.PENDING),
                ]
            )
            assert (funded.result, held.result) == (R.OK, R.OK)
            async with holder.transaction():
                await holder.execute(
                    f"SELECT 1 FROM {first.schema}.accounts WHERE id = ANY($1::uuid[]) FOR UPDATE",
                    [str(uuid.UUID(int=1)), str(uuid.UUID(int=2))],
                )
                post = asyncio.ensure_future(
                    one.create_transfers(
                        [Transfer(12, pending_id=11, flags=TransferFlags.POST_PENDING)]
                    )
                )
                await wait_for_lock_waiters(postgres_url, first.schema, 1)
                void = asyncio.ensure_future(
                    two.create_transfers(
                        [Transfer(13, pending_id=11, flags=TransferFlags.VOID_PENDING)]
                    )
                )
                await wait_for_lock_waiters(postgres_url, first.schema, 2)
            answered = await asyncio.wait_for(
                asyncio.gather(post, void, return_exceptions=True), 30
            )
        assert not [x for x in answered if isinstance(x, BaseException)], answered
        results = sorted(out[0].result for out in answered if isinstance(out, list))
        assert results in (
            sorted([R.OK, R.PENDING_TRANSFER_ALREADY_POSTED]),
            sorted([R.OK, R.PENDING_TRANSFER_ALREADY_VOIDED]),
        ), results
        [wallet] = await first.lookup_accounts([1])
        assert wallet.balance.debits_pending == 0
        assert (await reconcile(first)).ok
    finally:
        await holder.close()
        await second.close()
        await drop_postgres(postgres_url, first)


async def test_two_processes_creating_the_same_account_are_both_answered(
    postgres_url: str,
) -> None:
    """A writer creates an account that another transaction is inserting right then (two
    processes opening one wallet for its first deposit): when that one commits, the writer's
    insert collides; it must answer ``exists``, not fail with a database error."""
    store: PostgresLedgerStore = await open_postgres(postgres_url)
    holder = await asyncpg.connect(postgres_url)
    try:
        async with Ledger(store, expire_on_timer=False) as ledger:
            async with holder.transaction():
                await holder.execute(
                    f"INSERT INTO {store.schema}.accounts (id, asset, owner, kind, flags, code, "
                    "timestamp, debits_pending, debits_posted, credits_pending, credits_posted, "
                    "last_timestamp) VALUES ($1::uuid, 'USD', 'p', 'user', 2, 0, 1, 0, 0, 0, 0, 1)",
                    str(uuid.UUID(int=7)),
                )
                creating = asyncio.ensure_future(
                    ledger.create_accounts([Account(7, "USD", "p", "user", LIMITED)])
                )
                await wait_for_lock_waiters(postgres_url, store.schema, 1)
            answered = await asyncio.wait_for(creating, 30)
        assert answered == [CreateAccountResult.EXISTS]
    finally:
        await holder.close()
        await drop_postgres(postgres_url, store)
