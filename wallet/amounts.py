"""Amounts as clients send them: a whole number of the asset's smallest unit, as a JSON
integer or a string of digits ("5000" is 50.00 USD). Anything else (a fraction, an exponent,
a sign, NaN, a boolean, an empty or overlong text) is refused with the reason; it is never
rounded or coerced."""

from __future__ import annotations

from typing import Final

DIGITS_MAX: Final = 40  # 10^40 - 1 is above any amount the ledger holds (2^128 - 1 ~ 3.4e38)
AMOUNT_MAX: Final = (1 << 128) - 1


class BadAmount(ValueError):
    pass


def parse_minor(value: object, name: str = "amount") -> int:
    """A positive amount in the smallest unit, or :class:`BadAmount`."""
    if type(value) is int:
        amount = value
    elif (
        isinstance(value, str)
        and 0 < len(value) <= DIGITS_MAX
        and value.isascii()
        and value.isdigit()
    ):
        amount = int(value)
    else:
        raise BadAmount(
            f"{name} is a whole number of the asset's smallest unit, as an integer or a string "
            "of digits"
        )
    if not 0 < amount <= AMOUNT_MAX:
        raise BadAmount(f"{name} is at least 1 and at most 2^128 - 1")
    return amount
