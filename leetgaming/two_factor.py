"""Two-factor authentication (TOTP): enrolment, codes used once, secrets encrypted at rest.

Players need it for withdrawals above the approval threshold; admins need it to act at all:
an admin's session carries ``amr: ["pwd", "otp"]`` only when the login gave a code, and admin
routes refuse a session without it (``admin_mfa_required``). A new admin signs in with the
password alone, enrols (``POST /v1/me/totp``, the only routes such a session may use) and
signs in again with a code.

The shared secret is stored sealed (:mod:`leetgaming.sealing`: AES-256-GCM under a key derived
from the token signing key, the account id as associated data), so a database dump alone does
not give anyone's codes and a row moved to another account does not decrypt. Changing the
signing key makes every enrolment unreadable: enrol again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from leetgaming import totp
from leetgaming.audit import AuditLog
from leetgaming.db import Database
from leetgaming.sealing import Sealer

SEALING_LABEL: Final = b"leetgaming totp secrets v1"

MIGRATIONS: Final = (
    # the table withdrawals used to create (an existing database already has it)
    """
    CREATE TABLE IF NOT EXISTS totp_secrets (
        player TEXT PRIMARY KEY,
        secret TEXT NOT NULL,
        confirmed INTEGER NOT NULL,
        last_step BIGINT
    )
    """,
)


class TwoFactorRefused(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class TwoFactor:
    def __init__(
        self,
        db: Database,
        signing_key: str,
        audit: AuditLog | None = None,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.audit = audit
        self._sealer = Sealer(signing_key, SEALING_LABEL)
        self.clock_s = clock_s

    async def start(self) -> None:
        await self.db.migrate("two_factor", MIGRATIONS)

    def seal(self, subject: str, secret: str) -> str:
        return self._sealer.seal(subject, secret)

    def open(self, subject: str, stored: str) -> str:
        return self._sealer.open(subject, stored)  # (stored before sealing: as it is)

    async def enrolled(self, subject: str) -> bool:
        row = await self.db.fetchone("SELECT confirmed FROM totp_secrets WHERE player = ?", subject)
        return row is not None and bool(row[0])

    async def enrol(self, subject: str) -> tuple[str, str]:
        """A new secret (replacing one not yet confirmed) and its ``otpauth://`` URI."""
        if await self.enrolled(subject):
            raise TwoFactorRefused("totp_enrolled", "two-factor authentication is already on", 409)
        secret = totp.new_secret()
        await self.db.execute(
            "INSERT INTO totp_secrets (player, secret, confirmed) VALUES (?, ?, 0) "
            "ON CONFLICT (player) DO UPDATE SET secret = excluded.secret",
            subject,
            self.seal(subject, secret),
        )
        return secret, totp.provisioning_uri(secret, subject)

    async def check(self, subject: str, code: object, *, enrolling: bool = False) -> None:
        """Accept one code (each once), or refuse; ``enrolling`` confirms a new secret."""
        row = await self.db.fetchone(
            "SELECT secret, confirmed, last_step FROM totp_secrets WHERE player = ?", subject
        )
        if row is None or (not row[1] and not enrolling):
            raise TwoFactorRefused(
                "totp_required", "turn on two-factor authentication first (POST /v1/me/totp)", 403
            )
        secret = self.open(subject, str(row[0]))
        step = totp.verify(secret, code, self.clock_s(), None if row[2] is None else int(row[2]))
        bad = TwoFactorRefused("bad_totp", "the code is wrong, expired or already used", 403)
        if step is None:
            raise bad
        used = await self.db.execute(
            "UPDATE totp_secrets SET last_step = ?, confirmed = 1 WHERE player = ? "
            "AND (last_step IS NULL OR last_step < ?)",
            step,
            subject,
            step,
        )
        if not used:
            raise bad
        if enrolling and not row[1] and self.audit is not None:
            await self.audit.append(None, subject, "totp.enable", subject)
