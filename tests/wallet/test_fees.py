"""Fees: half-up rounding to the smallest unit, never more than the amount, Pro rates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wallet.fees import BPS_MAX, FeeKind, FeeSchedule, fee_of


@pytest.mark.parametrize(
    ("amount", "bps", "fee"),
    [
        (10_000, 250, 250),  # $100.00 at 2.5 % is $2.50
        (1, 250, 0),  # 0.025 cent rounds down
        (20, 250, 1),  # 0.5 cent rounds half up
        (19, 250, 0),  # 0.475 cent rounds down
        (4_999, 300, 150),  # 149.97 -> 150
        (0, 300, 0),
        (10**30, 100, 10**28),  # wei-sized amounts stay exact
    ],
)
def test_a_fee_rounds_half_up_to_the_smallest_unit(amount: int, bps: int, fee: int) -> None:
    assert fee_of(amount, bps) == fee


@given(st.integers(0, 10**40), st.integers(0, BPS_MAX))
def test_a_fee_is_the_exact_rate_within_half_a_unit_and_never_above_the_amount(
    amount: int, bps: int
) -> None:
    fee = fee_of(amount, bps)
    exact_times_denominator = amount * bps
    assert abs(fee * 10_000 - exact_times_denominator) <= 5_000
    assert 0 <= fee <= amount


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_a_fee_of_a_bad_amount_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        fee_of(bad, 250)  # type: ignore[arg-type]


def test_the_default_schedule_has_the_published_rates_and_pro_pays_less() -> None:
    fees = FeeSchedule()
    assert fees.fee(FeeKind.DEPOSIT, 10_000) == 250
    assert fees.fee(FeeKind.WITHDRAWAL, 10_000) == 300
    assert fees.fee(FeeKind.CONVERSION, 10_000) == 100
    assert fees.fee(FeeKind.DEPOSIT, 10_000, pro=True) == 150
    assert fees.fee(FeeKind.WITHDRAWAL, 10_000, pro=True) == 200
    assert fees.fee(FeeKind.CONVERSION, 10_000, pro=True) == 100


def test_a_schedule_refuses_a_rate_out_of_range() -> None:
    with pytest.raises(ValueError, match="deposit_bps"):
        FeeSchedule(deposit_bps=BPS_MAX + 1)
    with pytest.raises(ValueError, match="withdrawal_bps"):
        FeeSchedule(withdrawal_bps=-1)
