"""History pages: merged newest first across accounts, stable cursors, no row twice."""

from __future__ import annotations

import random

import pytest

from ledger import Balance, TransferFlags, TransferRecord
from wallet import history as hist


def record(ts: int, ident: int, flags: TransferFlags = TransferFlags.NONE) -> TransferRecord:
    return TransferRecord(ident, 1, 2, 5, "USD", 1, flags, 0, 0, 0, ts, None, Balance(), Balance())


def test_the_cursor_round_trips_and_refuses_anything_else() -> None:
    cursor = hist.Cursor(1_700_000_000_123_456_789, (1 << 128) - 2)
    assert hist.Cursor.decode(cursor.encode()) == cursor
    for bad in ["", "x", "!!!!", "MTIz", "a" * 97, hist.Cursor(5, 1).encode()[:-2]]:
        with pytest.raises(hist.BadCursor):
            hist.Cursor.decode(bad)


def test_pages_walk_every_row_once_in_order_even_with_equal_timestamps() -> None:
    rng = random.Random(3)
    accounts: list[list[TransferRecord]] = []
    ident = 1
    for _ in range(4):
        stamps = sorted(rng.sample(range(1, 60), 25), reverse=True)  # unique per account
        rows = []
        for ts in stamps:
            rows.append(record(ts, ident))
            ident += 1
        accounts.append(rows)
    everything = sorted((r for rows in accounts for r in rows), key=hist.position, reverse=True)
    seen: list[TransferRecord] = []
    after: hist.Cursor | None = None
    while True:
        # what the shell fetches: each account's rows at or before the cursor's timestamp
        pages = [
            [r for r in rows if after is None or r.timestamp <= after.timestamp][:8]
            for rows in accounts
        ]
        page = hist.merge_page(pages, after, 7)
        if not page:
            break
        seen += page
        after = hist.position(page[-1])
    assert seen == everything


def test_a_transfer_between_two_of_the_players_accounts_shows_once() -> None:
    shared = record(10, 99)
    page = hist.merge_page([[shared, record(5, 1)], [shared]], None, 10)
    assert [r.id for r in page] == [99, 1]


def test_states() -> None:
    assert hist.state_of(record(1, 1)) == "posted"
    assert hist.state_of(record(1, 1, TransferFlags.PENDING)) == "held"
    assert hist.state_of(record(1, 1, TransferFlags.POST_PENDING)) == "hold_posted"
    assert hist.state_of(record(1, 1, TransferFlags.VOID_PENDING)) == "hold_released"
    expired = TransferFlags.VOID_PENDING | TransferFlags.EXPIRED
    assert hist.state_of(record(1, 1, expired)) == "hold_expired"
