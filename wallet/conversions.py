"""Conversions between assets at the price table, with the conversion fee (pure).

Converting ``amount`` of asset A (scale a, price pA dollars per unit) gives
``floor(amount * pA * 10**b / (pB * 10**a))`` of asset B in its smallest unit (scale b, price
pB), the gross; the fee (1 % by default, half up) is taken from it, and the player receives the
rest. What the floor leaves stays with the platform's exchange account, never more than one
smallest unit of B. Prices older than ``PRICE_AGE_MAX_S`` are refused: a conversion at a stale
price would be a gift to whoever noticed first. Only money converts (fiat, stablecoins, crypto);
game credits and NFTs do not.

The ledger side is one linked request: the player's A goes to the platform's ``exchange``
account of A, and the exchange account of B pays the player and the fee to revenue. Exchange
accounts are the platform's inventory of each asset; they may go negative (the platform owes
itself: a treasury rebalances them outside the product).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ledger import Transfer, TransferFlags, derive_id

from . import accounts
from .accounts import Code
from .fees import fee_of
from .prices import USD_PRICE_E8, Price

PRICE_AGE_MAX_S: Final = 3600
CONVERTIBLE: Final = frozenset({"fiat", "stablecoin", "crypto"})


class Refused(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Quote:
    from_asset: str
    to_asset: str
    amount: int  # of from_asset, smallest unit
    gross: int  # of to_asset, before the fee
    fee: int
    from_price_e8: int
    to_price_e8: int
    priced_at_s: int  # the older of the two prices' times

    @property
    def received(self) -> int:
        return self.gross - self.fee


def _price(code: str, prices: dict[str, Price], now_s: int) -> tuple[int, int]:
    if code == "USD":
        return USD_PRICE_E8, now_s
    price = prices.get(code)
    if price is None:
        raise Refused("unpriced_asset", f"{code} has no price")
    if now_s - price.set_at_s > PRICE_AGE_MAX_S:
        raise Refused("stale_price", f"the price of {code} is older than {PRICE_AGE_MAX_S} s")
    return price.price_e8, price.set_at_s


def quote(
    amount: int,
    source: tuple[str, int, str],  # (code, scale, kind)
    target: tuple[str, int, str],
    prices: dict[str, Price],
    fee_bps: int,
    now_s: int,
) -> Quote:
    (a, a_scale, a_kind), (b, b_scale, b_kind) = source, target
    if a == b:
        raise Refused("same_asset", "a conversion is between two different assets")
    if a_kind not in CONVERTIBLE or b_kind not in CONVERTIBLE:
        raise Refused("not_convertible", "only money converts: fiat, stablecoins and crypto")
    pa, ta = _price(a, prices, now_s)
    pb, tb = _price(b, prices, now_s)
    gross = amount * pa * 10**b_scale // (pb * 10**a_scale)
    fee = fee_of(gross, fee_bps)
    if gross - fee <= 0:
        raise Refused("amount_too_small", f"that converts to nothing of {b}")
    return Quote(a, b, amount, gross, fee, pa, pb, min(ta, tb))


def transfers(conversion_id: str, player: str, q: Quote) -> list[Transfer]:
    meta = {"conversion": conversion_id}
    legs = [
        Transfer(
            derive_id("conversion.give", conversion_id),
            accounts.user(player, q.from_asset).id,
            accounts.exchange(q.from_asset).id,
            q.amount,
            q.from_asset,
            Code.CONVERSION,
            metadata=meta,
        ),
        Transfer(
            derive_id("conversion.take", conversion_id),
            accounts.exchange(q.to_asset).id,
            accounts.user(player, q.to_asset).id,
            q.received,
            q.to_asset,
            Code.CONVERSION,
            metadata=meta,
        ),
    ]
    if q.fee:
        legs.append(
            Transfer(
                derive_id("conversion.fee", conversion_id),
                accounts.exchange(q.to_asset).id,
                accounts.revenue(q.to_asset).id,
                q.fee,
                q.to_asset,
                Code.CONVERSION_FEE,
                metadata=meta,
            )
        )
    return [
        Transfer(
            t.id,
            t.debit_account_id,
            t.credit_account_id,
            t.amount,
            t.asset,
            t.code,
            TransferFlags.LINKED if i < len(legs) - 1 else TransferFlags.NONE,
            metadata=t.metadata,
        )
        for i, t in enumerate(legs)
    ]


def conversion_id(player: str, idempotency_key: str) -> str:
    return f"cv_{derive_id('conversion.request', player, idempotency_key):032x}"
