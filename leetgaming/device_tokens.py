"""Device tokens: how an account's owner still signs in while others hammer the account.

The per-account sign-in limit stops a guesser who spreads attempts over many addresses, and
by itself it would stop the owner too. So a successful password sign-in hands the client a
device token, bound to that account's address; a later sign-in that presents it is counted
against that device's own limit instead of the account's (OWASP's "device cookies"). A
guesser has no token for the account (a token is an HMAC under a key derived from the server's
secret key), so every attempt they make counts against the account and against the
deployment-wide budget of untrusted attempts, and neither touches the owner's.

A token is ``dv1.<device id>.<tag>``: 16 random bytes of id and a 32-byte HMAC-SHA256 of the
id and the normalised address, both base64url. Nothing is stored: the server checks the tag.
Pure, but for the random id, which the caller passes in.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX: Final = "dv1"
DEVICE_ID_BYTES: Final = 16
TOKEN_CHARS_MAX: Final = 128


@functools.lru_cache(maxsize=8)
def device_key(secret: str) -> bytes:
    """The HMAC key of device tokens under the server's secret key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"device-token").derive(
        secret.encode()
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _tag(key: bytes, address: str, device: bytes) -> bytes:
    return hmac.new(key, device + b"|" + address.encode(), hashlib.sha256).digest()


def issue(key: bytes, address: str, device: bytes) -> str:
    """The token of device ``device`` (random bytes) for the normalised ``address``."""
    if len(device) != DEVICE_ID_BYTES:
        raise ValueError(f"a device id is {DEVICE_ID_BYTES} bytes")
    return f"{PREFIX}.{_b64(device)}.{_b64(_tag(key, address, device))}"


def check(key: bytes, address: str, token: object) -> str | None:
    """The device id (base64url) of a token issued for ``address``; None for anything else."""
    if not isinstance(token, str) or len(token) > TOKEN_CHARS_MAX:
        return None
    prefix, _, rest = token.partition(".")
    device_text, _, tag_text = rest.partition(".")
    if prefix != PREFIX or not device_text or not tag_text:
        return None
    try:
        device = base64.urlsafe_b64decode(device_text + "=" * (-len(device_text) % 4))
        tag = base64.urlsafe_b64decode(tag_text + "=" * (-len(tag_text) % 4))
    except ValueError:
        return None
    if len(device) != DEVICE_ID_BYTES or not hmac.compare_digest(tag, _tag(key, address, device)):
        return None
    return _b64(device)
