from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.asset import BUILTIN_ASSETS, ETH, LEETCOIN, USD, USDC, Asset, AssetKind, nft_asset


def test_builtin_scales() -> None:
    assert {a.code: a.scale for a in BUILTIN_ASSETS} == {
        "USD": 2,
        "EUR": 2,
        "GBP": 2,
        "USDC": 6,
        "USDT": 6,
        "ETH": 18,
        "LEETCOIN": 0,
        "XP_BOOST": 0,
        "FREE_ENTRY": 0,
    }


@pytest.mark.parametrize(
    ("asset", "text", "amount"),
    [
        (USD, "12.34", 1234),
        (USD, "12", 1200),
        (USD, "0.01", 1),
        (USDC, "1.000001", 1_000_001),
        (ETH, "1", 10**18),
        (ETH, "123456789.000000000000000001", 123456789 * 10**18 + 1),
        (LEETCOIN, "7", 7),
    ],
)
def test_parse_amount(asset: Asset, text: str, amount: int) -> None:
    assert asset.parse_amount(text) == amount


@pytest.mark.parametrize(
    ("asset", "text"),
    [
        (USD, "12.345"),
        (USD, "0.001"),
        (LEETCOIN, "1.5"),
        (USD, "-1"),
        (USD, "1e3"),
        (USD, "abc"),
        (USD, ""),
        (USD, "NaN"),
    ],
)
def test_parse_amount_refuses_what_does_not_fit_the_scale(asset: Asset, text: str) -> None:
    with pytest.raises(ValueError):
        asset.parse_amount(text)


@given(st.sampled_from(BUILTIN_ASSETS), st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_format_then_parse_round_trips(asset: Asset, amount: int) -> None:
    assert asset.parse_amount(asset.format_amount(amount)) == amount


def test_nft_is_a_unit_asset() -> None:
    nft = nft_asset("leet-skins", 42)
    assert (nft.code, nft.scale, nft.kind, nft.unit) == (
        "NFT:leet-skins:42",
        0,
        AssetKind.NFT,
        True,
    )
    with pytest.raises(ValueError):
        Asset("NFT:x:1", 2, AssetKind.NFT, unit=True)
    with pytest.raises(ValueError):
        Asset("usd", 2, AssetKind.FIAT)
