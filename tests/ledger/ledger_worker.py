"""One of several OS processes posting against the same PostgreSQL ledger schema.

Run by ``tests/ledger/test_concurrency.py``::

    python tests/ledger/ledger_worker.py DSN SCHEMA SEED COUNT

The worker opens ``PostgresLedgerStore.connect(DSN, schema=SCHEMA)`` (it never migrates: the
test created the schema and the accounts), runs its own :class:`ledger.Ledger`, prints
``{"ready": true}`` and waits for one line on stdin, so that every worker starts posting at the
same moment. Then it posts ``COUNT`` *shared* linked pairs (a payment between two of
:data:`USERS` and a fee to the hot :data:`FEE` account), whose ids are the same in every worker:
workers whose ``SEED // 2`` is equal send identical transfers, the others the same ids with a
different amount. Between the shared pairs it posts pairs of its own (ids derived from SEED).

Each answer is one JSON line on stdout, flushed at once::

    {"id": ..., "result": "ok", "amount": ..., "debit": ..., "credit": ...,
     "record_amount": ...}

``record_amount`` is the amount of the record the ledger answered with (the new record on
``ok``, the first one on ``exists`` / ``exists_with_different_fields``), or null. A request that
raised prints ``{"id": ..., "error": "<exception type>: <message>"}`` for each of its transfers.
The last line is ``{"done": true, "batches": ..., "transfers": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from dataclasses import dataclass

from ledger import AccountFlags, Ledger, Transfer, TransferFlags, derive_id
from ledger.postgres_store import PostgresLedgerStore

BANK = 9_000
USERS = tuple(range(9_001, 9_006))  # DEBITS_MUST_NOT_EXCEED_CREDITS, funded with FUNDING each
FEE = 9_100  # the hot account: every pair pays a fee into it
LIMITED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
FUNDING = 600
TASKS = 16  # concurrent requests in one worker


@dataclass(frozen=True)
class Pair:
    payment: Transfer
    fee: Transfer

    def transfers(self) -> list[Transfer]:
        return [self.payment, self.fee]


def shared_pair(n: int, variant: int) -> Pair:
    """The ``n``-th shared pair; ``variant`` changes the payment's amount, never the ids."""
    rng = random.Random(f"shared:{n}")
    debit, credit = rng.sample(USERS, 2)
    amount = rng.randint(20, 300) + variant
    fee = rng.randint(1, 5)
    return Pair(
        Transfer(
            derive_id("test.race", n, 0),
            debit,
            credit,
            amount,
            "USD",
            code=1,
            flags=TransferFlags.LINKED,
        ),
        Transfer(derive_id("test.race", n, 1), debit, FEE, fee, "USD", code=2),
    )


def own_pair(seed: int, n: int) -> Pair:
    rng = random.Random(f"own:{seed}:{n}")
    debit, credit = rng.sample(USERS, 2)
    return Pair(
        Transfer(
            derive_id("test.own", seed, n, 0),
            debit,
            credit,
            rng.randint(20, 300),
            "USD",
            code=1,
            flags=TransferFlags.LINKED,
        ),
        Transfer(derive_id("test.own", seed, n, 1), debit, FEE, rng.randint(1, 5), "USD", code=2),
    )


def variant_of(seed: int) -> int:
    return seed // 2


def _emit(line: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def main(dsn: str, schema: str, seed: int, count: int) -> None:
    store = await PostgresLedgerStore.connect(dsn, schema=schema)
    try:
        async with Ledger(store, expire_on_timer=False) as ledger:
            pairs: list[Pair] = []
            for n in range(count):
                pairs.append(shared_pair(n, variant_of(seed)))
                if n % 2 == 0:
                    pairs.append(own_pair(seed, n))
            queue: asyncio.Queue[Pair] = asyncio.Queue()
            for pair in pairs:
                queue.put_nowait(pair)

            async def work() -> None:
                while not queue.empty():
                    pair = queue.get_nowait()
                    transfers = pair.transfers()
                    try:
                        outcomes = await ledger.create_transfers(transfers)
                    except Exception as error:
                        for t in transfers:
                            _emit({"id": t.id, "error": f"{type(error).__name__}: {error}"})
                        continue
                    for t, o in zip(transfers, outcomes, strict=True):
                        _emit(
                            {
                                "id": t.id,
                                "result": str(o.result),
                                "amount": t.amount,
                                "debit": t.debit_account_id,
                                "credit": t.credit_account_id,
                                "record_amount": o.record.amount if o.record else None,
                            }
                        )

            _emit({"ready": True})
            await asyncio.to_thread(sys.stdin.readline)
            await asyncio.gather(*(work() for _ in range(TASKS)))
            _emit(
                {
                    "done": True,
                    "batches": ledger.batches_written,
                    "transfers": ledger.transfers_written,
                }
            )
    finally:
        await store.close()


if __name__ == "__main__":
    dsn_arg, schema_arg, seed_arg, count_arg = sys.argv[1:5]
    asyncio.run(main(dsn_arg, schema_arg, int(seed_arg), int(count_arg)))
