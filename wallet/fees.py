"""Fees: rates in basis points, amounts in the asset's smallest unit, rounding defined here.

A fee is ``amount * bps / 10_000`` rounded half up to the smallest unit (1.005 cents is 1 cent;
1.5 cents is 2): :func:`fee_of`. It never exceeds the amount it is taken from. Rates are
settings (:class:`FeeSchedule`); Pro subscribers have their own deposit and withdrawal rates.
Pure: no clock, no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

BPS_DENOMINATOR: Final = 10_000
BPS_MAX: Final = 5_000  # no fee is above 50 %


class FeeKind(enum.StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    CONVERSION = "conversion"


def fee_of(amount: int, bps: int) -> int:
    """``amount * bps / 10_000`` rounded half up; 0 for a zero amount or rate."""
    if type(amount) is not int or amount < 0:
        raise ValueError("an amount is a non-negative integer")
    if type(bps) is not int or not 0 <= bps <= BPS_MAX:
        raise ValueError(f"a rate is 0..{BPS_MAX} basis points")
    return (amount * bps + BPS_DENOMINATOR // 2) // BPS_DENOMINATOR


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """The platform's rates in basis points (250 = 2.5 %)."""

    deposit_bps: int = 250
    withdrawal_bps: int = 300
    conversion_bps: int = 100
    pro_deposit_bps: int = 150
    pro_withdrawal_bps: int = 200

    def __post_init__(self) -> None:
        for name in (
            "deposit_bps",
            "withdrawal_bps",
            "conversion_bps",
            "pro_deposit_bps",
            "pro_withdrawal_bps",
        ):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= BPS_MAX:
                raise ValueError(f"{name} is 0..{BPS_MAX} basis points")

    def rate_bps(self, kind: FeeKind, pro: bool) -> int:
        if kind is FeeKind.DEPOSIT:
            return self.pro_deposit_bps if pro else self.deposit_bps
        if kind is FeeKind.WITHDRAWAL:
            return self.pro_withdrawal_bps if pro else self.withdrawal_bps
        return self.conversion_bps

    def fee(self, kind: FeeKind, amount: int, pro: bool = False) -> int:
        return fee_of(amount, self.rate_bps(kind, pro))
