"""TOTP secrets at rest: sealed with AES-GCM under a key derived from the signing key and bound
to their account; codes used once; a secret sealed under another key does not open."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from leetgaming import totp
from leetgaming.db import Database
from leetgaming.two_factor import TwoFactor, TwoFactorRefused

KEY = "k" * 40


async def test_secrets_are_sealed_bound_to_their_account_and_codes_used_once(
    database: Database,
) -> None:
    now = 1_800_000_000.0
    tf = TwoFactor(database, KEY, clock_s=lambda: now)
    await tf.start()
    secret, uri = await tf.enrol("alice")
    assert uri.startswith("otpauth://totp/") and not await tf.enrolled("alice")
    [(stored,)] = await database.fetch("SELECT secret FROM totp_secrets WHERE player = 'alice'")
    assert stored.startswith("v1:") and secret not in stored
    assert tf.open("alice", stored) == secret
    with pytest.raises(InvalidTag):
        tf.open("mallory", stored)  # a row moved to another account does not open
    with pytest.raises(InvalidTag):
        TwoFactor(database, "x" * 40).open("alice", stored)  # nor under another key
    with pytest.raises(TwoFactorRefused, match="turn on"):
        await tf.check("alice", totp.code_at(secret, now))  # not confirmed yet
    await tf.check("alice", totp.code_at(secret, now), enrolling=True)
    assert await tf.enrolled("alice")
    with pytest.raises(TwoFactorRefused) as again:
        await tf.check("alice", totp.code_at(secret, now))
    assert again.value.code == "bad_totp"
    with pytest.raises(TwoFactorRefused) as twice:
        await tf.enrol("alice")
    assert twice.value.code == "totp_enrolled"


async def test_a_secret_written_before_sealing_still_works(database: Database) -> None:
    now = 1_800_000_000.0
    tf = TwoFactor(database, KEY, clock_s=lambda: now)
    await tf.start()
    secret = totp.new_secret()
    await database.execute(
        "INSERT INTO totp_secrets (player, secret, confirmed) VALUES ('bob', ?, 1)", secret
    )
    await tf.check("bob", totp.code_at(secret, now))
