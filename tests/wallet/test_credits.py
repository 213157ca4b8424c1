"""Credit lots: expiry days, spending oldest first, breakage once."""

from __future__ import annotations

import datetime as dt

import pytest

from ledger import TransferFlags
from wallet import accounts
from wallet import credits as cr
from wallet.credits import Holding

TODAY = dt.date(2026, 12, 1)


def test_expiry_days() -> None:
    assert cr.day_of("2026-12-02", TODAY) == dt.date(2026, 12, 2)
    for bad in [
        "2026-12-01",
        "2026-11-30",
        "2026-13-01",
        "2026-02-30",
        "tomorrow",
        20261202,
        "2032-12-02",
        None,
    ]:
        with pytest.raises(cr.Refused):
            cr.day_of(bad, TODAY)


def test_a_grant_goes_to_its_lot_or_to_the_wallet() -> None:
    day = dt.date(2027, 1, 31)
    lot = cr.grant("g1", "p1", "LEETCOIN", 100, day)
    assert lot.credit_account_id == cr.lot("p1", "LEETCOIN", day).id
    assert lot.debit_account_id == cr.issued("LEETCOIN").id
    forever = cr.grant("g2", "p1", "LEETCOIN", 100, None)
    assert forever.credit_account_id == accounts.user("p1", "LEETCOIN").id
    with pytest.raises(cr.Refused):
        cr.grant("g3", "p1", "USD", 100, None)


def test_spending_takes_the_lots_that_expire_first_then_the_wallet() -> None:
    soon, later = dt.date(2026, 12, 3), dt.date(2026, 12, 20)
    holdings = [Holding(None, 30), Holding(later, 50), Holding(soon, 100)]
    parts = cr.spend("s", "p1", "LEETCOIN", 160, holdings, 99, 16, TODAY)
    assert [(t.debit_account_id, t.amount) for t in parts] == [
        (cr.lot("p1", "LEETCOIN", soon).id, 100),
        (cr.lot("p1", "LEETCOIN", later).id, 50),
        (accounts.user("p1", "LEETCOIN").id, 10),
    ]
    assert [t.flags for t in parts] == [
        TransferFlags.LINKED,
        TransferFlags.LINKED,
        TransferFlags.NONE,
    ]
    with pytest.raises(cr.Refused):
        cr.spend("s", "p1", "LEETCOIN", 181, holdings, 99, 16, TODAY)


def test_a_lot_whose_day_has_come_is_not_spent_but_broken_once() -> None:
    holdings = [Holding(TODAY, 100), Holding(None, 5)]
    with pytest.raises(cr.Refused):
        cr.spend("s", "p1", "LEETCOIN", 6, holdings, 99, 16, TODAY)
    gone = cr.expire("p1", "LEETCOIN", TODAY, 100)
    assert gone is not None and gone.credit_account_id == cr.breakage("LEETCOIN").id
    assert gone.id == cr.expire("p1", "LEETCOIN", TODAY, 100).id  # type: ignore[union-attr]
    assert cr.expire("p1", "LEETCOIN", TODAY, 0) is None
