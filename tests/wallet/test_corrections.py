"""A correction after payout, as ledger transfers (pure): zero-sum through the pool, the
shortfall the platform's loss, one linked request with ids fixed by the correction."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger import TransferFlags
from wallet import accounts
from wallet.corrections import per_player, possible_ids, repayout

POOL = accounts.prize_pool("t1", "USD").id
EXPENSE = accounts.expense("USD").id


def test_the_old_winner_gives_back_what_is_left_and_the_platform_the_rest() -> None:
    before, after = {"a": 2_520, "b": 1_080}, {"a": 1_080, "b": 2_520}
    transfers = repayout("t1", 7, "USD", before, after, 0, {"a": 1_000, "b": 1_080})
    legs = [(t.debit_account_id, t.credit_account_id, t.amount) for t in transfers]
    assert legs == [
        (accounts.user("a", "USD").id, POOL, 1_000),
        (EXPENSE, POOL, 440),
        (POOL, accounts.user("b", "USD").id, 1_440),
    ]
    assert [t.flags for t in transfers] == [TransferFlags.LINKED] * 2 + [TransferFlags.NONE]
    assert transfers[1].metadata is not None and transfers[1].metadata["loss"] is True
    assert {t.id for t in transfers} <= set(possible_ids("t1", 7, before, after))
    again = repayout("t1", 7, "USD", before, after, 0, {"a": 1_000, "b": 1_080})
    assert [t.id for t in again] == [t.id for t in transfers]  # deterministic
    other = repayout("t1", 8, "USD", before, after, 0, {"a": 1_000, "b": 1_080})
    assert not {t.id for t in other} & {t.id for t in transfers}  # another correction


def test_nothing_changes_nothing_and_the_remainder_moves_with_rounding() -> None:
    assert repayout("t1", 1, "USD", {"a": 5}, {"a": 5}, 0, {"a": 5}) == []
    [back, prize, rounding] = repayout("t1", 1, "USD", {"a": 5}, {"b": 4}, 1, {"a": 5})
    assert (back.amount, rounding.amount, prize.amount) == (5, 1, 4)
    assert rounding.credit_account_id == accounts.rounding("USD").id
    assert per_player([("a", 3), ("b", 1), ("a", 2)]) == {"a": 5, "b": 1}


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 10_000), min_size=1),
    st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 10_000), min_size=1),
    st.dictionaries(st.sampled_from("abcdef"), st.integers(-5, 10_000)),
)
def test_the_pool_ends_where_it_was(
    before: dict[str, int], after: dict[str, int], available: dict[str, int]
) -> None:
    remainder_change = sum(before.values()) - sum(after.values())  # the pool is the same
    transfers = repayout("t1", 3, "USD", before, after, remainder_change, available)
    into = sum(t.amount for t in transfers if t.credit_account_id == POOL)
    out = sum(t.amount for t in transfers if t.debit_account_id == POOL)
    assert into == out
    for player in set(before) | set(after):
        wallet = accounts.user(player, "USD").id
        taken = sum(t.amount for t in transfers if t.debit_account_id == wallet)
        paid = sum(t.amount for t in transfers if t.credit_account_id == wallet)
        change = after.get(player, 0) - before.get(player, 0)
        if change >= 0:
            assert (paid, taken) == (change, 0)
        else:  # what the wallet has of it, never below zero; the platform the rest
            assert (paid, taken) == (0, min(-change, max(available.get(player, 0), 0)))
    assert all(t.amount > 0 for t in transfers)
