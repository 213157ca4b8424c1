"""The ledger store port's conformance suite: the same tests on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import asyncpg
import pytest

from ledger import (
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    Ledger,
    LedgerStore,
    Transfer,
    TransferFlags,
    TransferOutcome,
    expire_id,
    nft_asset,
    reconcile,
)
from ledger.postgres_store import PostgresLedgerStore

from .conftest import FakeClock

R = CreateTransferResult
A = CreateAccountResult
LIMITED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
PENDING = TransferFlags.PENDING
POST = TransferFlags.POST_PENDING
VOID = TransferFlags.VOID_PENDING
LINKED = TransferFlags.LINKED

BANK, ALICE, BOB, FEES, ALICE_EUR, ISSUER_ETH, ALICE_ETH = 1, 2, 3, 4, 5, 6, 7


async def open_accounts(ledger: Ledger) -> None:
    results = await ledger.create_accounts(
        [
            Account(BANK, "USD", "platform", "settlement"),
            Account(ALICE, "USD", "alice", "user", LIMITED),
            Account(BOB, "USD", "bob", "user", LIMITED),
            Account(FEES, "USD", "platform", "revenue"),
            Account(ALICE_EUR, "EUR", "alice", "user", LIMITED),
            Account(ISSUER_ETH, "ETH", "chain", "settlement"),
            Account(ALICE_ETH, "ETH", "alice", "user", LIMITED),
        ]
    )
    assert results == [A.OK] * 7


async def results(ledger: Ledger, transfers: Sequence[Transfer]) -> list[R]:
    return [o.result for o in await ledger.create_transfers(transfers)]


async def balances(ledger: Ledger, *ids: int) -> list[tuple[int, int, int, int]]:
    return [a.balance.as_tuple() for a in await ledger.lookup_accounts(list(ids))]


async def fund(ledger: Ledger, account: int, amount: int, transfer_id: int) -> None:
    assert await results(ledger, [Transfer(transfer_id, BANK, account, amount, "USD")]) == [R.OK]


async def test_transfer_moves_value_and_sums_to_zero(ledger: Ledger, store: LedgerStore) -> None:
    await open_accounts(ledger)
    await fund(ledger, ALICE, 10_000, 100)
    assert await results(ledger, [Transfer(101, ALICE, BOB, 2_500, "USD", code=7)]) == [R.OK]
    assert await balances(ledger, BANK, ALICE, BOB) == [
        (0, 10_000, 0, 0),
        (0, 2_500, 0, 10_000),
        (0, 0, 0, 2_500),
    ]
    report = await reconcile(store)
    assert report.ok, report.to_text()
    assert report.assets["USD"]["posted_net"] == 0


async def test_retry_answers_exists_with_the_first_record(ledger: Ledger, clock: FakeClock) -> None:
    await open_accounts(ledger)
    await fund(ledger, ALICE, 1_000, 100)
    first = (
        await ledger.create_transfers(
            [Transfer(101, ALICE, BOB, 300, "USD", metadata={"why": "x"})]
        )
    )[0]
    clock.advance(5)
    again = (
        await ledger.create_transfers(
            [Transfer(101, ALICE, BOB, 300, "USD", metadata={"why": "x"})]
        )
    )[0]
    assert (first.result, again.result) == (R.OK, R.EXISTS)
    assert again.record == first.record  # the first record, its time included
    changed = await results(ledger, [Transfer(101, ALICE, BOB, 301, "USD", metadata={"why": "x"})])
    assert changed == [R.EXISTS_WITH_DIFFERENT_FIELDS]
    changed_meta = await results(
        ledger, [Transfer(101, ALICE, BOB, 300, "USD", metadata={"why": "y"})]
    )
    assert changed_meta == [R.EXISTS_WITH_DIFFERENT_FIELDS]
    assert await balances(ledger, ALICE, BOB) == [(0, 300, 0, 1_000), (0, 0, 0, 300)]


async def test_retry_of_a_spent_transfer_is_exists_not_insufficient_funds(ledger: Ledger) -> None:
    """The exists check comes before the balance check, so a client retrying a transfer that
    emptied the account learns that it went through."""
    await open_accounts(ledger)
    await fund(ledger, ALICE, 500, 100)
    assert await results(ledger, [Transfer(101, ALICE, BOB, 500, "USD")]) == [R.OK]
    assert await results(ledger, [Transfer(101, ALICE, BOB, 500, "USD")]) == [R.EXISTS]


async def test_same_id_twice_in_one_batch(ledger: Ledger) -> None:
    await open_accounts(ledger)
    await fund(ledger, ALICE, 500, 100)
    out = await results(
        ledger,
        [
            Transfer(101, ALICE, BOB, 100, "USD"),
            Transfer(101, ALICE, BOB, 100, "USD"),
            Transfer(101, ALICE, BOB, 99, "USD"),
        ],
    )
    assert out == [R.OK, R.EXISTS, R.EXISTS_WITH_DIFFERENT_FIELDS]
    assert await balances(ledger, ALICE) == [(0, 100, 0, 500)]


@pytest.mark.parametrize(
    ("transfer", "expected"),
    [
        (Transfer(0, ALICE, BOB, 1, "USD"), R.ID_INVALID),
        (Transfer((1 << 128) - 1, ALICE, BOB, 1, "USD"), R.ID_INVALID),
        (Transfer(-5, ALICE, BOB, 1, "USD"), R.ID_INVALID),
        (Transfer(200, ALICE, BOB, 1, "USD", flags=PENDING | POST), R.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (Transfer(200, ALICE, BOB, 1, "USD", flags=TransferFlags.EXPIRED), R.FLAGS_INVALID),
        (Transfer(200, 0, BOB, 1, "USD"), R.DEBIT_ACCOUNT_ID_INVALID),
        (Transfer(200, ALICE, 0, 1, "USD"), R.CREDIT_ACCOUNT_ID_INVALID),
        (Transfer(200, ALICE, ALICE, 1, "USD"), R.ACCOUNTS_MUST_BE_DIFFERENT),
        (Transfer(200, ALICE, BOB, 1, "USD", pending_id=9), R.PENDING_ID_MUST_BE_ZERO),
        (Transfer(200, ALICE, BOB, 1, "USD", timeout_s=5), R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
        (Transfer(200, ALICE, BOB, 1, "USD", flags=PENDING, timeout_s=-1), R.TIMEOUT_INVALID),
        (Transfer(200, ALICE, BOB, 0, "USD"), R.AMOUNT_INVALID),
        (Transfer(200, ALICE, BOB, -1, "USD"), R.AMOUNT_INVALID),
        (Transfer(200, ALICE, BOB, 1 << 128, "USD"), R.AMOUNT_INVALID),
        (Transfer(200, ALICE, BOB, 1.5, "USD"), R.AMOUNT_INVALID),  # type: ignore[arg-type]
        (Transfer(200, ALICE, BOB, 1, "usd"), R.ASSET_INVALID),
        (Transfer(200, ALICE, BOB, 1, "USD", code=70_000), R.CODE_INVALID),
        (Transfer(200, ALICE, BOB, 1, "USD", metadata={"x": object()}), R.METADATA_INVALID),
        (Transfer(200, ALICE, BOB, 1, "USD", metadata={"x": "y" * 2000}), R.METADATA_TOO_LARGE),
        (Transfer(200, 99, BOB, 1, "USD"), R.DEBIT_ACCOUNT_NOT_FOUND),
        (Transfer(200, ALICE, 99, 1, "USD"), R.CREDIT_ACCOUNT_NOT_FOUND),
        (Transfer(200, ALICE, ALICE_EUR, 1, "USD"), R.ASSET_MISMATCH),
        (Transfer(200, ALICE, BOB, 1, "EUR"), R.TRANSFER_ASSET_MISMATCH),
        (Transfer(200, ALICE, BOB, 1_001, "USD"), R.INSUFFICIENT_FUNDS),
        (
            Transfer(200, ALICE, BOB, 1, "USD", flags=POST, pending_id=9),
            R.PENDING_TRANSFER_NOT_FOUND,
        ),
        (
            Transfer(200, ALICE, BOB, 1, "USD", flags=VOID, pending_id=200),
            R.PENDING_ID_MUST_BE_DIFFERENT,
        ),
        (Transfer(200, 0, 0, 0, "", flags=POST, pending_id=100), R.PENDING_TRANSFER_NOT_PENDING),
    ],
)
async def test_bad_input_gets_its_result_code_and_changes_nothing(
    ledger: Ledger, store: LedgerStore, transfer: Transfer, expected: R
) -> None:
    await open_accounts(ledger)
    await fund(ledger, ALICE, 1_000, 100)
    before = await balances(ledger, BANK, ALICE, BOB, ALICE_EUR)
    assert await results(ledger, [transfer]) == [expected]
    assert not expected.succeeded
    assert await balances(ledger, BANK, ALICE, BOB, ALICE_EUR) == before
    assert await ledger.lookup_transfers([200]) == []
    assert (await reconcile(store)).ok


async def test_credit_limited_account(ledger: Ledger) -> None:
    await open_accounts(ledger)
    await ledger.create_accounts(
        [Account(50, "USD", "platform", "liability", AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)]
    )
    assert await results(ledger, [Transfer(200, BANK, 50, 1, "USD")]) == [R.EXCEEDS_DEBITS]
    assert await results(
        ledger, [Transfer(201, 50, BANK, 5, "USD"), Transfer(202, BANK, 50, 5, "USD")]
    ) == [R.OK, R.OK]


async def test_hold_post_partially_then_no_second_resolution(
    ledger: Ledger, store: LedgerStore
) -> None:
    await open_accounts(ledger)
    await fund(ledger, ALICE, 1_000, 100)
    assert await results(
        ledger, [Transfer(200, ALICE, BOB, 600, "USD", flags=PENDING, timeout_s=60)]
    ) == [R.OK]
    assert await balances(ledger, ALICE, BOB) == [(600, 0, 0, 1_000), (0, 0, 600, 0)]
    # The hold counts against the balance limit.
    assert await results(ledger, [Transfer(201, ALICE, BOB, 401, "USD")]) == [R.INSUFFICIENT_FUNDS]
    assert await results(ledger, [Transfer(202, flags=POST, pending_id=200, amount=601)]) == [
        R.EXCEEDS_PENDING_TRANSFER_AMOUNT
    ]
    assert await results(
        ledger, [Transfer(202, ALICE, FEES, 0, "", flags=POST, pending_id=200)]
    ) == [R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT]
    out = (await ledger.create_transfers([Transfer(202, flags=POST, pending_id=200, amount=450)]))[
        0
    ]
    assert out.result == R.OK and out.record is not None
    assert (out.record.debit_account_id, out.record.credit_account_id, out.record.amount) == (
        ALICE,
        BOB,
        450,
    )
    assert await balances(ledger, ALICE, BOB) == [(0, 450, 0, 1_000), (0, 0, 0, 450)]
    assert await results(ledger, [Transfer(202, flags=POST, pending_id=200, amount=450)]) == [
        R.EXISTS
    ]
    assert await results(ledger, [Transfer(203, flags=POST, pending_id=200)]) == [
        R.PENDING_TRANSFER_ALREADY_POSTED
    ]
    assert await results(ledger, [Transfer(204, flags=VOID, pending_id=200)]) == [
        R.PENDING_TRANSFER_ALREADY_POSTED
    ]
    assert (await reconcile(store)).ok


async def test_void_releases_the_hold(ledger: Ledger) -> None:
    await open_accounts(ledger)
    await fund(ledger, ALICE, 1_000, 100)
    await results(ledger, [Transfer(200, ALICE, BOB, 700, "USD", flags=PENDING)])
    assert await results(ledger, [Transfer(201, flags=VOID, pending_id=200, amount=5)]) == [
        R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
    ]
    assert await results(ledger, [Transfer(201, flags=VOID, pending_id=200)]) == [R.OK]
    assert await balances(ledger, ALICE, BOB) == [(0, 0, 0, 1_000), (0, 0, 0, 0)]
    assert await results(ledger, [Transfer(202, flags=POST, pending_id=200)]) == [
        R.PENDING_TRANSFER_ALREADY_VOIDED
    ]


async def test_hold_times_out_and_the_ledger_voids_it(
    ledger: Ledger, clock: FakeClock, store: LedgerStore
) -> None:
    await open_accounts(ledger)
    await fund(ledger, ALICE, 1_000, 100)
    await results(ledger, [Transfer(200, ALICE, BOB, 700, "USD", flags=PENDING, timeout_s=30)])
    await results(ledger, [Transfer(201, ALICE, BOB, 100, "USD", flags=PENDING, timeout_s=90)])
    clock.advance(29)
    assert await ledger.expire_due() == 0
    clock.advance(2)
    # Past its timeout a hold can no longer be posted, even before the sweep.
    assert await results(ledger, [Transfer(202, flags=POST, pending_id=200)]) == [
        R.PENDING_TRANSFER_EXPIRED
    ]
    assert await ledger.expire_due() == 1
    assert await balances(ledger, ALICE, BOB) == [(100, 0, 0, 1_000), (0, 0, 100, 0)]
    [void] = await ledger.lookup_transfers([expire_id(200)])
    assert void.flags == VOID | TransferFlags.EXPIRED and void.pending_id == 200
    assert await results(ledger, [Transfer(203, flags=VOID, pending_id=200)]) == [
        R.PENDING_TRANSFER_EXPIRED
    ]
    assert await ledger.expire_due() == 0  # exactly once
    clock.advance(60)
    assert await ledger.expire_due() == 1
    assert await balances(ledger, ALICE) == [(0, 0, 0, 1_000)]
    assert (await reconcile(store)).ok


async def test_expiry_timer_runs_by_itself(store: LedgerStore, clock: FakeClock) -> None:
    from ledger import LedgerLimits

    async with Ledger(store, clock_ns=clock, limits=LedgerLimits(expiry_interval_s=0.01)) as ledger:
        await open_accounts(ledger)
        await fund(ledger, ALICE, 100, 100)
        await results(ledger, [Transfer(200, ALICE, BOB, 100, "USD", flags=PENDING, timeout_s=1)])
        clock.advance(2)
        for _ in range(500):
            if await balances(ledger, ALICE) == [(0, 0, 0, 100)]:
                break
            import asyncio

            await asyncio.sleep(0.01)
        assert await balances(ledger, ALICE) == [(0, 0, 0, 100)]


async def test_linked_batch_with_one_bad_member_fails_whole(
    ledger: Ledger, store: LedgerStore
) -> None:
    await open_accounts(ledger)
    await fund(ledger, ALICE, 1_000, 100)
    out = await results(
        ledger,
        [
            Transfer(200, ALICE, BOB, 100, "USD", flags=LINKED),
            Transfer(201, ALICE, FEES, 10, "USD", flags=LINKED),
            Transfer(202, BOB, ALICE, 5_000, "USD"),  # BOB cannot pay this
            Transfer(203, ALICE, BOB, 1, "USD"),  # not in the chain
        ],
    )
    assert out == [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_FAILED, R.INSUFFICIENT_FUNDS, R.OK]
    assert await ledger.lookup_transfers([200, 201, 202]) == []
    assert await balances(ledger, ALICE, BOB, FEES) == [
        (0, 1, 0, 1_000),
        (0, 0, 0, 1),
        (0, 0, 0, 0),
    ]
    # The same chain, all good, applies whole; a chain left open at the end of a request fails.
    ok = await results(
        ledger,
        [
            Transfer(200, ALICE, BOB, 100, "USD", flags=LINKED),
            Transfer(201, ALICE, FEES, 10, "USD"),
        ],
    )
    assert ok == [R.OK, R.OK]
    open_chain = await results(
        ledger,
        [
            Transfer(300, ALICE, BOB, 1, "USD", flags=LINKED),
            Transfer(301, ALICE, BOB, 1, "USD", flags=LINKED),
        ],
    )
    assert open_chain == [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_CHAIN_OPEN]
    assert (await reconcile(store)).ok


async def test_linked_chain_sees_its_own_earlier_members(ledger: Ledger) -> None:
    await open_accounts(ledger)
    out = await results(
        ledger,
        [
            Transfer(200, BANK, ALICE, 50, "USD", flags=LINKED),
            Transfer(201, ALICE, BOB, 50, "USD", flags=LINKED),
            Transfer(202, BOB, FEES, 50, "USD"),
        ],
    )
    assert out == [R.OK, R.OK, R.OK]


async def test_requests_batched_together_do_not_link_into_each_other(ledger: Ledger) -> None:
    import asyncio

    await open_accounts(ledger)
    await fund(ledger, ALICE, 100, 100)
    open_request = ledger.create_transfers([Transfer(200, ALICE, BOB, 1, "USD", flags=LINKED)])
    other = ledger.create_transfers([Transfer(201, ALICE, BOB, 1, "USD")])
    a, b = await asyncio.gather(open_request, other)
    assert [o.result for o in a] == [R.LINKED_EVENT_CHAIN_OPEN]
    assert [o.result for o in b] == [R.OK]


async def test_wei_amounts_beyond_64_bits(ledger: Ledger, store: LedgerStore) -> None:
    await open_accounts(ledger)
    big = 123_456_789 * 10**18  # 123 million ETH in wei: > 2**64
    assert big > 1 << 64
    assert await results(ledger, [Transfer(200, ISSUER_ETH, ALICE_ETH, big, "ETH")]) == [R.OK]
    assert await results(ledger, [Transfer(201, ISSUER_ETH, ALICE_ETH, (1 << 128) - 1, "ETH")]) == [
        R.OVERFLOWS_DEBITS
    ]
    [alice] = await ledger.lookup_accounts([ALICE_ETH])
    assert alice.balance.credits_posted == big
    [record] = await ledger.lookup_transfers([200])
    assert record.amount == big and record.credit_after.credits_posted == big
    assert (await reconcile(store)).ok


async def test_nft_is_a_unit_asset(ledger: Ledger, store: LedgerStore) -> None:
    nft = nft_asset("leet-skins", 42)
    assert await store.create_assets([nft]) == [A.OK]
    assert await store.create_assets([nft]) == [A.EXISTS]
    assert await ledger.create_accounts(
        [
            Account(60, nft.code, "mint", "settlement"),
            Account(61, nft.code, "alice", "user", LIMITED),
        ]
    ) == [A.OK, A.OK]
    assert await results(ledger, [Transfer(200, 60, 61, 2, nft.code)]) == [
        R.UNIT_ASSET_AMOUNT_MUST_BE_ONE
    ]
    assert await results(ledger, [Transfer(200, 60, 61, 1, nft.code)]) == [R.OK]


async def test_account_creation_results(ledger: Ledger) -> None:
    assert await ledger.create_accounts(
        [
            Account(1, "USD", "a", "user"),
            Account(1, "USD", "a", "user"),
            Account(1, "EUR", "a", "user"),
            Account(0, "USD", "a", "user"),
            Account(2, "XYZ", "a", "user"),
            Account(3, "usd!", "a", "user"),
            Account(4, "USD", "", "user"),
            Account(5, "USD", "a", "User Kind"),
            Account(
                6,
                "USD",
                "a",
                "user",
                AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
                | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
            ),
            Account(7, "USD", "a", "user", code=-1),
        ]
    ) == [
        A.OK,
        A.EXISTS,
        A.EXISTS_WITH_DIFFERENT_FIELDS,
        A.ID_INVALID,
        A.ASSET_NOT_FOUND,
        A.ASSET_INVALID,
        A.OWNER_INVALID,
        A.KIND_INVALID,
        A.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
        A.CODE_INVALID,
    ]
    assert [a.id for a in await ledger.lookup_accounts([1, 2, 3, 4, 5, 6, 7])] == [1]
    linked = await ledger.create_accounts(
        [Account(10, "USD", "a", "user", AccountFlags.LINKED), Account(11, "XYZ", "a", "user")]
    )
    assert linked == [A.LINKED_EVENT_FAILED, A.ASSET_NOT_FOUND]
    assert await ledger.lookup_accounts([10, 11]) == []


async def test_history_pages_and_balance_at_a_point_in_time(
    ledger: Ledger, clock: FakeClock
) -> None:
    await open_accounts(ledger)
    times = []
    for n in range(7):
        clock.advance(1)
        out = await ledger.create_transfers([Transfer(100 + n, BANK, ALICE, 10 * (n + 1), "USD")])
        assert out[0].record is not None
        times.append(out[0].record.timestamp)
    clock.advance(1)
    await results(ledger, [Transfer(200, ALICE, BOB, 5, "USD")])
    seen: list[int] = []
    cursor = None
    while True:
        page = await ledger.history(ALICE, cursor=cursor, limit=3)
        seen += [r.id for r in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [100, 101, 102, 103, 104, 105, 106, 200]
    newest = await ledger.history(ALICE, limit=2, newest_first=True)
    assert [r.id for r in newest.records] == [200, 106]
    assert (await ledger.balance_at(ALICE, times[0] - 1)).as_tuple() == (0, 0, 0, 0)
    assert (await ledger.balance_at(ALICE, times[2])).posted == 10 + 20 + 30
    assert (await ledger.balance_at(BANK, times[2])).posted == -(10 + 20 + 30)
    assert (await ledger.balance_at(ALICE, clock.now_ns)).posted == 280 - 5


async def test_database_refuses_update_and_delete_of_transfers(
    store: LedgerStore, ledger: Ledger
) -> None:
    await open_accounts(ledger)
    await fund(ledger, ALICE, 100, 100)
    if isinstance(store, PostgresLedgerStore):
        conn = await asyncpg.connect(_dsn_of(store))
        try:
            for statement in (
                f"UPDATE {store.schema}.transfers SET amount = 1",
                f"DELETE FROM {store.schema}.transfers",
                f"TRUNCATE {store.schema}.transfers",
                f"DELETE FROM {store.schema}.accounts",
                f"UPDATE {store.schema}.accounts SET owner = 'mallory'",
                f"UPDATE {store.schema}.accounts SET credits_posted = 0",
            ):
                with pytest.raises(asyncpg.PostgresError, match=r"refused|violat"):
                    await conn.execute(statement)
        finally:
            await conn.close()
    else:
        db = sqlite3.connect(store.path)  # type: ignore[attr-defined]
        try:
            for statement in (
                "UPDATE transfers SET amount = '1'",
                "DELETE FROM transfers",
                "DELETE FROM accounts",
                "UPDATE accounts SET owner = 'mallory'",
            ):
                with pytest.raises(sqlite3.DatabaseError, match=r"refused|never changes"):
                    db.execute(statement)
        finally:
            db.close()
    assert await balances(ledger, ALICE) == [(0, 0, 0, 100)]


def _dsn_of(store: PostgresLedgerStore) -> str:
    return store.dsn


async def test_reconciliation_reports_a_tampered_balance(
    store: LedgerStore, ledger: Ledger
) -> None:
    await open_accounts(ledger)
    await fund(ledger, ALICE, 100, 100)
    assert (await reconcile(store)).ok
    if isinstance(store, PostgresLedgerStore):
        conn = await asyncpg.connect(_dsn_of(store))
        try:
            await conn.execute(
                f"UPDATE {store.schema}.accounts SET credits_posted = credits_posted + 1 WHERE owner = 'alice' AND asset = 'USD'"
            )
        finally:
            await conn.close()
    else:
        db = sqlite3.connect(store.path)  # type: ignore[attr-defined]
        with db:
            db.execute(
                "UPDATE accounts SET credits_posted = '101' WHERE owner = 'alice' AND asset = 'USD'"
            )
        db.close()
    report = await reconcile(store)
    assert not report.ok
    kinds = {p.kind for p in report.problems}
    assert {"balance_differs", "latest_balance_differs", "asset_not_zero"} <= kinds
    assert any(p.account_id == ALICE for p in report.problems)
    assert "DIFFERENCES FOUND" in report.to_text()


def _outcomes_ok(outcomes: Sequence[TransferOutcome]) -> bool:
    return all(o.result.succeeded for o in outcomes)


async def test_open_chain_over_an_existing_id_reports_the_member_failure(ledger: Ledger) -> None:
    """Found by the model: a store that skips reading ids it expects to be new must not report
    a chain as merely open when one of its members repeats an id with other fields."""
    await open_accounts(ledger)
    await fund(ledger, ALICE, 100, 100)
    assert await results(ledger, [Transfer(200, ALICE, BOB, 5, "USD")]) == [R.OK]
    assert await results(ledger, [Transfer(200, ALICE, BOB, 6, "USD", flags=LINKED)]) == [
        R.EXISTS_WITH_DIFFERENT_FIELDS
    ]
    assert await results(
        ledger,
        [Transfer(300, ALICE, BOB, 1, "USD", flags=LINKED), Transfer(200, ALICE, BOB, 6, "USD")],
    ) == [R.LINKED_EVENT_FAILED, R.EXISTS_WITH_DIFFERENT_FIELDS]
