"""Conversions: exact integer rates, the fee, stale and missing prices, the linked transfers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import TransferFlags
from wallet import accounts
from wallet import conversions as cv
from wallet.prices import Price, parse_price

NOW = 1_800_000_000
USD = ("USD", 2, "fiat")
ETH = ("ETH", 18, "crypto")
USDC = ("USDC", 6, "stablecoin")
PRICES = {
    "ETH": Price("ETH", parse_price("2000"), NOW - 10),
    "USDC": Price("USDC", parse_price("1"), NOW - 20),
}


def test_usd_to_eth_and_back_at_the_table_with_the_fee() -> None:
    q = cv.quote(10_000, USD, ETH, PRICES, 100, NOW)  # $100 at $2000/ETH = 0.05 ETH
    assert q.gross == 5 * 10**16 and q.fee == 5 * 10**14 and q.received == 495 * 10**14
    assert q.priced_at_s == NOW - 10
    back = cv.quote(10**18, ETH, USD, PRICES, 100, NOW)
    assert (back.gross, back.fee, back.received) == (200_000, 2_000, 198_000)
    stable = cv.quote(1_234_567, USDC, USD, PRICES, 100, NOW)  # 1.234567 USDC -> 123 cents
    assert stable.gross == 123


@given(st.integers(1, 10**24), st.integers(1, 10**13), st.integers(1, 10**13))
def test_the_gross_is_the_exact_value_rounded_down(amount: int, pa: int, pb: int) -> None:
    prices = {"ETH": Price("ETH", pa, NOW), "USDC": Price("USDC", pb, NOW)}
    try:
        q = cv.quote(amount, ETH, USDC, prices, 0, NOW)
    except cv.Refused as refused:
        assert refused.code == "amount_too_small"
        return
    # gross <= amount/10^18 * pa / pb * 10^6 < gross + 1, in integers
    exact_num = amount * pa * 10**6
    exact_den = pb * 10**18
    assert q.gross * exact_den <= exact_num < (q.gross + 1) * exact_den


@pytest.mark.parametrize(
    ("source", "target", "prices", "code"),
    [
        (USD, USD, PRICES, "same_asset"),
        (USD, ("LEETCOIN", 0, "credit"), PRICES, "not_convertible"),
        (USD, ("USDT", 6, "stablecoin"), PRICES, "unpriced_asset"),
        (USD, ETH, {"ETH": Price("ETH", parse_price("2000"), NOW - 3601)}, "stale_price"),
    ],
)
def test_refusals(
    source: tuple[str, int, str], target: tuple[str, int, str], prices: dict[str, Price], code: str
) -> None:
    with pytest.raises(cv.Refused) as refused:
        cv.quote(10_000, source, target, prices, 100, NOW)
    assert refused.value.code == code


def test_one_cent_of_eth_converts_to_nothing_and_is_refused() -> None:
    with pytest.raises(cv.Refused) as refused:
        cv.quote(1, ("ETH", 18, "crypto"), USD, PRICES, 100, NOW)
    assert refused.value.code == "amount_too_small"


def test_the_transfers_are_linked_give_take_fee() -> None:
    q = cv.quote(10_000, USD, ETH, PRICES, 100, NOW)
    give, take, fee = cv.transfers("cv_1", "p1", q)
    assert (give.debit_account_id, give.credit_account_id, give.amount, give.asset) == (
        accounts.user("p1", "USD").id,
        accounts.exchange("USD").id,
        10_000,
        "USD",
    )
    assert (take.debit_account_id, take.credit_account_id, take.amount) == (
        accounts.exchange("ETH").id,
        accounts.user("p1", "ETH").id,
        q.received,
    )
    assert (fee.credit_account_id, fee.amount) == (accounts.revenue("ETH").id, q.fee)
    assert [t.flags for t in (give, take, fee)] == [
        TransferFlags.LINKED,
        TransferFlags.LINKED,
        TransferFlags.NONE,
    ]
    assert len({t.id for t in cv.transfers("cv_1", "p1", q)} | {give.id}) == 3
