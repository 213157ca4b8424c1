"""Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), as
authenticator apps (Google Authenticator, 1Password, Aegis) compute them. Pure: the time
comes in as an argument.

A code is accepted for the current step and one step either side (clock drift), and never
twice: :func:`verify` returns the step it matched, which the caller stores and passes back as
``last_step``; a code of that step or an earlier one is refused (a code seen over a shoulder
or replayed from a log cannot be used again).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from typing import Final
from urllib.parse import quote, urlencode

STEP_S: Final = 30
DIGITS: Final = 6
DRIFT_STEPS: Final = 1
SECRET_BYTES: Final = 20  # 160 bits, RFC 4226's recommendation


def new_secret() -> str:
    """A fresh shared secret, base32 without padding (what authenticator apps take)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    return base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)


def hotp(secret: str, counter: int) -> str:
    """RFC 4226's HOTP value of ``counter``."""
    mac = hmac.new(_key(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).rjust(DIGITS, "0")


def step_of(now_s: float) -> int:
    return int(now_s // STEP_S)


def code_at(secret: str, now_s: float) -> str:
    return hotp(secret, step_of(now_s))


def verify(secret: str, code: object, now_s: float, last_step: int | None) -> int | None:
    """The step ``code`` is valid for (store it as the new ``last_step``), or None."""
    if not isinstance(code, str) or len(code) != DIGITS or not code.isdigit():
        return None
    current = step_of(now_s)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(hotp(secret, step), code):
            return step
    return None


def provisioning_uri(secret: str, account: str, issuer: str = "LeetGaming") -> str:
    """The ``otpauth://`` URI an authenticator app reads from a QR code."""
    label = quote(f"{issuer}:{account}")
    query = urlencode({"secret": secret, "issuer": issuer, "digits": DIGITS, "period": STEP_S})
    return f"otpauth://totp/{label}?{query}"
