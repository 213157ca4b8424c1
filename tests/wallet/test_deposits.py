"""The deposit core: transitions, the credit pair, reversals that never overdraw a wallet."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import TransferFlags
from wallet import accounts
from wallet import deposits as dp
from wallet.deposits import Deposit, Method, State


def pending(amount: int = 10_000, fee: int = 250) -> Deposit:
    return dp.move(Deposit("dep_1", "p1", Method.CARD, "USD", amount, fee), State.PENDING)


def test_a_deposit_id_is_the_players_key() -> None:
    assert dp.deposit_id("p1", "k") == dp.deposit_id("p1", "k")
    assert dp.deposit_id("p1", "k") != dp.deposit_id("p2", "k")
    assert dp.deposit_id("p1", "k") != dp.deposit_id("p1", "k2")


def test_credit_posts_gross_then_fee_linked() -> None:
    done, (gross, fee) = dp.credit(pending())
    assert done.state is State.SUCCEEDED
    assert (gross.debit_account_id, gross.credit_account_id, gross.amount) == (
        accounts.settlement("USD").id,
        accounts.user("p1", "USD").id,
        10_000,
    )
    assert gross.flags == TransferFlags.LINKED and gross.code == accounts.Code.DEPOSIT
    assert (fee.debit_account_id, fee.credit_account_id, fee.amount, fee.flags) == (
        accounts.user("p1", "USD").id,
        accounts.revenue("USD").id,
        250,
        TransferFlags.NONE,
    )
    again = dp.credit(pending())[1]
    assert [t.id for t in again] == [gross.id, fee.id]  # a re-run posts the same ids


def test_a_fee_free_deposit_is_one_transfer() -> None:
    _, transfers = dp.credit(pending(fee=0))
    assert len(transfers) == 1 and transfers[0].flags == TransferFlags.NONE


def test_illegal_transitions_are_refused() -> None:
    with pytest.raises(dp.IllegalTransition):
        dp.credit(Deposit("d", "p", Method.CARD, "USD", 1, 0))  # never handed to a rail
    failed = dp.move(pending(), State.FAILED)
    with pytest.raises(dp.IllegalTransition):
        dp.credit(failed)
    with pytest.raises(dp.IllegalTransition):
        dp.reverse(pending(), "re_1", 10, 10)


def test_a_reversal_takes_what_the_wallet_has_and_books_the_rest_as_loss() -> None:
    done, _ = dp.credit(pending())
    after, (taken, lost) = dp.reverse(done, "re_1", 6_000, available=4_000)
    assert (taken.debit_account_id, taken.amount, taken.flags) == (
        accounts.user("p1", "USD").id,
        4_000,
        TransferFlags.LINKED,
    )
    assert (lost.debit_account_id, lost.amount, lost.flags) == (
        accounts.expense("USD").id,
        2_000,
        TransferFlags.NONE,
    )
    assert taken.id == dp.reversal_id(done, "re_1")
    assert (after.state, after.reversed_amount) == (State.SUCCEEDED, 6_000)
    final, [rest] = dp.reverse(after, "re_2", 4_000, available=0)
    assert (
        rest.id == dp.reversal_id(done, "re_2")
        and rest.debit_account_id == accounts.expense("USD").id
    )
    assert final.state is State.REVERSED
    with pytest.raises(ValueError):
        dp.reverse(after, "re_3", 4_001, available=10**6)


@given(st.integers(1, 10**6), st.integers(-5, 10**6))
def test_a_reversal_always_sums_to_its_amount_and_never_overdraws(
    amount: int, available: int
) -> None:
    done, _ = dp.credit(pending(amount=10**6))
    _, transfers = dp.reverse(done, "c", amount, available)
    assert sum(t.amount for t in transfers) == amount
    from_wallet = sum(
        t.amount for t in transfers if t.debit_account_id == accounts.user("p1", "USD").id
    )
    assert 0 <= from_wallet <= max(available, 0)
    assert transfers[0].id == dp.reversal_id(done, "c")
    assert transfers[-1].flags == TransferFlags.NONE


def test_a_dispute_freezes_at_most_what_is_left_and_available_and_is_released_by_id() -> None:
    done, _ = dp.credit(pending())
    hold = dp.freeze(done, "dp_1", 6_000, available=4_000)
    assert hold is not None
    assert (hold.debit_account_id, hold.credit_account_id, hold.amount, hold.flags) == (
        accounts.user("p1", "USD").id,
        accounts.settlement("USD").id,
        4_000,
        TransferFlags.PENDING,
    )
    assert hold.id == dp.freeze_id(done, "dp_1") != dp.freeze_id(done, "dp_2")
    partly, _ = dp.reverse(done, "re_1", 9_000, available=10_000)
    capped = dp.freeze(partly, "dp_1", 6_000, available=10_000)
    assert capped is not None and capped.amount == 1_000  # only 10.00 of it is left to take
    assert dp.freeze(done, "dp_1", 6_000, available=0) is None
    void = dp.release(done, "dp_1")
    assert (void.pending_id, void.flags) == (hold.id, TransferFlags.VOID_PENDING)
    with pytest.raises(dp.IllegalTransition):
        dp.freeze(pending(), "dp_1", 1, available=1)
