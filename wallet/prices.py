"""The price table and what a wallet is worth in US dollars, in integers.

A price is US dollars per whole unit of an asset (1 ETH, 1 USDC, one NFT), kept as an integer
count of 10**-8 dollars (``price_e8``), so sub-cent prices (a game credit at $0.001) are exact.
A value is whole US cents, rounded down: ``amount * price_e8 // 10**(scale + 6)``. USD is worth
its face value and needs no price. Each valuation carries the time its price was set, so a
reader sees how fresh it is; an asset without a price has no value (``None``), never zero.
Pure: the table is loaded and saved by the shell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

PRICE_DIGITS: Final = 8
PRICE_E8_MAX: Final = 10**24  # $10^16 per unit
_PRICE: Final = re.compile(r"^[0-9]{1,17}(\.[0-9]{1,8})?$")
CENTS_SCALE: Final = 2


@dataclass(frozen=True, slots=True)
class Price:
    asset: str
    price_e8: int
    set_at_s: int


def parse_price(text: object) -> int:
    """``"3456.78"`` (dollars per unit) -> 345678000000; ``ValueError`` for anything else."""
    if not isinstance(text, str) or not _PRICE.match(text):
        raise ValueError("a price is a decimal text of dollars per unit with at most 8 decimals")
    whole, _, fraction = text.partition(".")
    price = int(whole) * 10**PRICE_DIGITS + int(fraction.ljust(PRICE_DIGITS, "0") or "0")
    if price > PRICE_E8_MAX:
        raise ValueError("the price is out of range")
    return price


def format_price(price_e8: int) -> str:
    whole, fraction = divmod(price_e8, 10**PRICE_DIGITS)
    text = str(fraction).rjust(PRICE_DIGITS, "0").rstrip("0")
    return f"{whole}.{text}" if text else str(whole)


def value_cents(amount: int, scale: int, price_e8: int) -> int:
    """What ``amount`` (in the smallest unit of an asset of ``scale``) is worth, in whole
    cents, rounded down."""
    divisor: int = 10 ** (scale + PRICE_DIGITS - CENTS_SCALE)
    return amount * price_e8 // divisor


@dataclass(frozen=True, slots=True)
class Valuation:
    asset: str
    value_cents: int | None  # None: no price for the asset
    price_e8: int | None
    price_set_at_s: int | None


USD_PRICE_E8: Final = 10**PRICE_DIGITS


def valuations(
    holdings: Sequence[tuple[str, int, int]], prices: Mapping[str, Price]
) -> list[Valuation]:
    """One valuation per ``(asset, scale, amount)`` holding."""
    out: list[Valuation] = []
    for asset, scale, amount in holdings:
        if asset == "USD":
            out.append(Valuation(asset, amount, USD_PRICE_E8, None))
            continue
        price = prices.get(asset)
        if price is None:
            out.append(Valuation(asset, None, None, None))
            continue
        out.append(
            Valuation(
                asset, value_cents(amount, scale, price.price_e8), price.price_e8, price.set_at_s
            )
        )
    return out
