"""Passwords: argon2id hashes, constant-time checks, and no hint whether an account exists.

``check`` against an unknown email still spends the time of a real verification (against a
fixed dummy hash), so response time does not tell whether the email is registered. Hashes are
upgraded transparently when the cost parameters change (``needs_rehash``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

PASSWORD_CHARS_MIN = 10
PASSWORD_CHARS_MAX = 256


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 1


class Passwords:
    def __init__(self, policy: PasswordPolicy | None = None) -> None:
        p = policy or PasswordPolicy()
        self._hasher = PasswordHasher(
            time_cost=p.time_cost, memory_cost=p.memory_kib, parallelism=p.parallelism
        )
        self._dummy = self._hasher.hash("not a password anyone has")

    @staticmethod
    def problem(password: object) -> str | None:
        """Why ``password`` is not acceptable, or None."""
        if not isinstance(password, str):
            return "a password is text"
        if len(password) < PASSWORD_CHARS_MIN:
            return f"a password has at least {PASSWORD_CHARS_MIN} characters"
        if len(password) > PASSWORD_CHARS_MAX:
            return f"a password has at most {PASSWORD_CHARS_MAX} characters"
        return None

    def hash(self, password: str) -> str:
        problem = self.problem(password)
        if problem is not None:
            raise ValueError(problem)
        return self._hasher.hash(password)

    def check(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; with no account (``None``) it still costs a check."""
        try:
            ok = self._hasher.verify(stored_hash or self._dummy, password)
        except InvalidHashError:  # an account with no password: the same work all the same
            with contextlib.suppress(VerifyMismatchError, VerificationError):
                self._hasher.verify(self._dummy, password)
            return False
        except (VerifyMismatchError, VerificationError):
            return False
        return ok and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
