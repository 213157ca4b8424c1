"""Prices as integers of 10^-8 dollars; values in whole cents, rounded down."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wallet import prices as px


def test_parse_and_format_round_trip() -> None:
    assert px.parse_price("3456.78") == 345_678_000_000
    assert px.parse_price("0.001") == 100_000
    assert px.parse_price("1") == 100_000_000
    assert px.format_price(345_678_000_000) == "3456.78"
    assert px.format_price(100_000) == "0.001"
    assert px.format_price(100_000_000) == "1"


@pytest.mark.parametrize("bad", ["-1", "1.123456789", "1e3", "NaN", "", " 1", 1.5, None, "1."])
def test_a_bad_price_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        px.parse_price(bad)


def test_values_in_cents() -> None:
    eth = 10**18
    assert px.value_cents(eth, 18, px.parse_price("3456.78")) == 345_678
    assert px.value_cents(eth // 2, 18, px.parse_price("3456.78")) == 172_839
    assert px.value_cents(1_500_000, 6, px.parse_price("1")) == 150  # 1.5 USDC
    assert px.value_cents(999, 0, px.parse_price("0.001")) == 99  # 99.9 cents rounds down


@given(st.integers(0, 10**30), st.integers(0, 36), st.integers(0, px.PRICE_E8_MAX))
def test_a_value_is_the_exact_worth_rounded_down(amount: int, scale: int, price: int) -> None:
    cents = px.value_cents(amount, scale, price)
    # cents <= amount/10^scale * price/10^8 * 100 < cents + 1, in integers
    exact = amount * price * 100
    unit = 10 ** (scale + 8)
    assert cents * unit <= exact < (cents + 1) * unit


def test_valuations_mark_an_unpriced_asset_and_keep_the_price_time() -> None:
    table = {"ETH": px.Price("ETH", px.parse_price("2000"), 1_700_000_000)}
    usd, eth, nft = px.valuations([("USD", 2, 1234), ("ETH", 18, 10**18), ("NFT:x:1", 0, 1)], table)
    assert (usd.value_cents, usd.price_set_at_s) == (1234, None)
    assert (eth.value_cents, eth.price_set_at_s) == (200_000, 1_700_000_000)
    assert (nft.value_cents, nft.price_e8) == (None, None)
