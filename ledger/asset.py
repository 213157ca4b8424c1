"""Assets: a code and a scale; amounts are integers in the asset's smallest unit.

USD with scale 2 counts cents, USDC with scale 6 counts 10**-6 USDC, ETH with scale 18 counts
wei. Converting a decimal text to an amount refuses any digit beyond the scale: "1.001" USD is an
error, never a rounding. NFTs are *unit* assets: one asset per token, and every transfer of it
moves exactly 1.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

SCALE_MAX = 36
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,15}$")
_NFT_CODE = re.compile(r"^NFT:[a-z0-9_.-]{1,40}:[0-9]{1,78}$")
_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
AMOUNT_MAX = (1 << 128) - 1


class AssetKind(enum.StrEnum):
    FIAT = "fiat"
    STABLECOIN = "stablecoin"
    CRYPTO = "crypto"
    CREDIT = "credit"  # game credits: LEETCOIN, XP_BOOST, FREE_ENTRY
    NFT = "nft"


def is_valid_asset_code(code: str) -> bool:
    if type(code) is str and code in _KNOWN_VALID_CODES:
        return True
    valid = isinstance(code, str) and bool(_CODE.match(code) or _NFT_CODE.match(code))
    if valid and len(_KNOWN_VALID_CODES) < 100_000:
        _KNOWN_VALID_CODES.add(code)
    return valid


_KNOWN_VALID_CODES: set[str] = set()  # a cache: the regexes cost more than the rest of a check


@dataclass(frozen=True, slots=True)
class Asset:
    code: str
    scale: int
    kind: AssetKind
    unit: bool = False  # every transfer moves exactly 1 (NFTs)

    def __post_init__(self) -> None:
        if not is_valid_asset_code(self.code):
            raise ValueError(f"invalid asset code {self.code!r}")
        if not 0 <= self.scale <= SCALE_MAX:
            raise ValueError(f"asset scale must be 0..{SCALE_MAX}, got {self.scale}")
        if self.unit and self.scale != 0:
            raise ValueError("a unit asset has scale 0")

    def parse_amount(self, text: str) -> int:
        """Decimal text in whole units to an integer amount in the smallest unit.

        ``USD.parse_amount("12.34") == 1234``; ``"12.345"`` raises ``ValueError``. Exact for any
        length (no float, no decimal context that could round).
        """
        if not isinstance(text, str) or len(text) > 80 or not _DECIMAL.match(text.strip()):
            raise ValueError(f"not a decimal amount: {str(text)[:80]!r}")
        whole, _, fraction = text.strip().partition(".")
        if whole.startswith("-"):
            raise ValueError("an amount is never negative")
        if len(fraction.rstrip("0")) > self.scale:
            raise ValueError(
                f"{text.strip()} has more than {self.scale} decimal places, the scale of {self.code}"
            )
        fraction = fraction.rstrip("0").ljust(self.scale, "0")
        amount: int = int(whole) * 10**self.scale + (int(fraction) if fraction else 0)
        if amount > AMOUNT_MAX:
            raise ValueError(f"amount out of range for {self.code}")
        return amount

    def format_amount(self, amount: int) -> str:
        """An integer amount as decimal text in whole units (no float on the way)."""
        sign = "-" if amount < 0 else ""
        digits = str(abs(amount))
        if self.scale == 0:
            return sign + digits
        digits = digits.rjust(self.scale + 1, "0")
        return f"{sign}{digits[: -self.scale]}.{digits[-self.scale :]}"


USD = Asset("USD", 2, AssetKind.FIAT)
EUR = Asset("EUR", 2, AssetKind.FIAT)
GBP = Asset("GBP", 2, AssetKind.FIAT)
USDC = Asset("USDC", 6, AssetKind.STABLECOIN)
USDT = Asset("USDT", 6, AssetKind.STABLECOIN)
ETH = Asset("ETH", 18, AssetKind.CRYPTO)
LEETCOIN = Asset("LEETCOIN", 0, AssetKind.CREDIT)
XP_BOOST = Asset("XP_BOOST", 0, AssetKind.CREDIT)
FREE_ENTRY = Asset("FREE_ENTRY", 0, AssetKind.CREDIT)

BUILTIN_ASSETS: tuple[Asset, ...] = (USD, EUR, GBP, USDC, USDT, ETH, LEETCOIN, XP_BOOST, FREE_ENTRY)


def nft_asset(collection: str, token_id: int) -> Asset:
    """The unit asset of one NFT: ``NFT:<collection>:<token id>``, quantity 1."""
    return Asset(f"NFT:{collection}:{token_id}", 0, AssetKind.NFT, unit=True)
