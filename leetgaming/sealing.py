"""Secrets the server must read back (TOTP secrets, game servers' RCON passwords), encrypted at
rest: AES-256-GCM under a key derived (HKDF-SHA256) from the token signing key with a label per
kind of secret, and the row's owner (an account, a server) as associated data, so a database
dump alone gives none of them and a value moved to another row does not decrypt. Changing the
signing key makes every sealed value unreadable."""

from __future__ import annotations

import base64
import secrets
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEALED_PREFIX: Final = "v1:"
NONCE_BYTES: Final = 12


class Sealer:
    def __init__(self, signing_key: str, label: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(
            signing_key.encode()
        )
        self._aead = AESGCM(key)

    def seal(self, owner: str, value: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), owner.encode())
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, owner: str, stored: str) -> str:
        """The value sealed for ``owner`` (a value stored before sealing comes back as is)."""
        if not stored.startswith(SEALED_PREFIX):
            return stored
        raw = base64.urlsafe_b64decode(stored.removeprefix(SEALED_PREFIX))
        return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], owner.encode()).decode()

    @staticmethod
    def sealed(stored: str) -> bool:
        return stored.startswith(SEALED_PREFIX)
