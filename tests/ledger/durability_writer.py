"""Posts transfers at full speed until killed; prints each acknowledged transfer id.

Run by ``tests/ledger/test_durability.py``::

    python tests/ledger/durability_writer.py URL [--schema SCHEMA] [--migrate]

``URL`` is ``sqlite:///path`` or ``postgresql://…``. The writer opens the store (migrating only
with ``--migrate``), opens the accounts and funds them (fixed ids, so a restart answers
``exists``), then runs a :class:`ledger.Ledger` with default settings and :data:`TASKS`
concurrent tasks, each posting transfers with random ``uuid4`` ids between the funded wallets.
After each ``ok`` answer it writes the id (decimal) as one line to stdout and flushes: a line
on stdout means the ledger acknowledged that transfer. Anything else it has to say goes to
stderr. It runs until it is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import uuid

from ledger import (
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    Ledger,
    Transfer,
    derive_id,
    open_store,
)

BANK = 7_000
WALLETS = tuple(range(7_001, 7_017))  # DEBITS_MUST_NOT_EXCEED_CREDITS
FUNDING = 10**15  # never runs out in a test
TASKS = 64


async def open_book(ledger: Ledger) -> None:
    accounts = [Account(BANK, "USD", "platform", "settlement")]
    accounts += [
        Account(w, "USD", f"wallet{w}", "user", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
        for w in WALLETS
    ]
    results = await ledger.create_accounts(accounts)
    if not all(r in (CreateAccountResult.OK, CreateAccountResult.EXISTS) for r in results):
        raise SystemExit(f"opening the accounts failed: {results}")
    funding = [
        Transfer(derive_id("test.durable.fund", w), BANK, w, FUNDING, "USD") for w in WALLETS
    ]
    outcomes = await ledger.create_transfers(funding)
    if not all(o.result.succeeded for o in outcomes):
        raise SystemExit(f"funding failed: {[o.result for o in outcomes]}")


async def post_forever(ledger: Ledger, task_no: int) -> None:
    rng = random.Random()
    write = sys.stdout.write
    flush = sys.stdout.flush
    while True:
        debit, credit = rng.sample(WALLETS, 2)
        transfer = Transfer(uuid.uuid4().int, debit, credit, rng.randint(1, 1_000), "USD", code=9)
        outcome = await ledger.create_transfer(transfer)
        if outcome.result is CreateTransferResult.OK:
            write(f"{transfer.id}\n")
            flush()
        else:
            print(f"task {task_no}: {transfer.id}: {outcome.result}", file=sys.stderr)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--schema", default="ledger")
    parser.add_argument("--migrate", action="store_true")
    args = parser.parse_args()
    store = await open_store(args.url, schema=args.schema)
    if args.migrate:
        await store.migrate()
    async with Ledger(store) as ledger:
        await open_book(ledger)
        print("posting", file=sys.stderr, flush=True)
        await asyncio.gather(*(post_forever(ledger, n) for n in range(TASKS)))


if __name__ == "__main__":
    asyncio.run(main())
