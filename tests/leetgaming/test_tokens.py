from __future__ import annotations

import jwt
import pytest

from leetgaming.passwords import PasswordPolicy, Passwords
from leetgaming.tokens import (
    IDLE_TIMEOUT_S,
    FamilyState,
    Refusal,
    issue_access_token,
    log_out,
    rotate,
    start_family,
    token_hash,
    verify_access_token,
)

SECRET = "s" * 40
NOW = 1_800_000_000

FAST = PasswordPolicy(time_cost=1, memory_kib=8 * 1024)


def test_access_token_round_trip_and_expiry() -> None:
    token = issue_access_token(SECRET, "alice", "player", "sess-1", NOW, ttl_s=300)
    claims = verify_access_token(SECRET, token, NOW + 10)
    assert claims is not None and (claims.subject, claims.role, claims.session) == (
        "alice",
        "player",
        "sess-1",
    )
    assert verify_access_token(SECRET, token, NOW + 300) is None  # expired
    assert verify_access_token("other" * 10, token, NOW) is None  # wrong key


@pytest.mark.parametrize(
    "claims",
    [
        {
            "iss": "leetgaming",
            "aud": "leetgaming",
            "sub": "a",
            "role": "player",
            "sid": "s",
            "iat": NOW,
        },  # no exp
        {
            "iss": "evil",
            "aud": "leetgaming",
            "sub": "a",
            "role": "player",
            "sid": "s",
            "iat": NOW,
            "exp": NOW + 60,
        },
        {
            "iss": "leetgaming",
            "aud": "x",
            "sub": "a",
            "role": "player",
            "sid": "s",
            "iat": NOW,
            "exp": NOW + 60,
        },
        {
            "iss": "leetgaming",
            "aud": "leetgaming",
            "role": "player",
            "sid": "s",
            "iat": NOW,
            "exp": NOW + 60,
        },
    ],
)
def test_tokens_missing_or_wrong_claims_are_refused(claims: dict[str, object]) -> None:
    assert verify_access_token(SECRET, jwt.encode(claims, SECRET, algorithm="HS256"), NOW) is None


def test_none_algorithm_and_garbage_are_refused() -> None:
    unsigned = jwt.encode(
        {
            "iss": "leetgaming",
            "aud": "leetgaming",
            "sub": "a",
            "role": "admin",
            "sid": "s",
            "iat": NOW,
            "exp": NOW + 60,
        },
        None,
        algorithm="none",
    )
    assert verify_access_token(SECRET, unsigned, NOW) is None
    assert verify_access_token(SECRET, "a.b.c", NOW) is None
    assert verify_access_token(SECRET, "x" * 10_000, NOW) is None


def test_refresh_rotation_and_reuse_revokes_the_family() -> None:
    family = start_family("f1", "alice", "player", "t0", NOW)
    family, refusal = rotate(family, "t0", "t1", NOW + 60)
    assert refusal is None and family.current_hash == token_hash("t1")
    family, refusal = rotate(family, "t1", "t2", NOW + 120)
    assert refusal is None
    # t1 presented again (stolen copy): the whole family dies, t2 included.
    family, refusal = rotate(family, "t1", "t3", NOW + 130)
    assert refusal is Refusal.REUSED and family.state is FamilyState.REVOKED
    assert rotate(family, "t2", "t4", NOW + 140)[1] is Refusal.REVOKED
    assert rotate(start_family("f2", "a", "player", "x", NOW), "y", "z", NOW)[1] is Refusal.UNKNOWN


def test_idle_timeout_and_logout() -> None:
    family = start_family("f1", "alice", "player", "t0", NOW)
    assert rotate(family, "t0", "t1", NOW + IDLE_TIMEOUT_S + 1)[1] is Refusal.IDLE
    assert rotate(log_out(family), "t0", "t1", NOW + 1)[1] is Refusal.REVOKED


def test_passwords_argon2id() -> None:
    passwords = Passwords(FAST)
    stored = passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert passwords.check(stored, "correct horse battery")
    assert not passwords.check(stored, "wrong horse battery")
    assert not passwords.check(None, "correct horse battery")  # no account: same answer, same cost
    assert not passwords.check("not a hash", "x" * 12)
    assert passwords.problem("short") is not None and passwords.problem("long enough pw") is None
    with pytest.raises(ValueError):
        passwords.hash("short")
    assert Passwords(PasswordPolicy(time_cost=2, memory_kib=8 * 1024)).needs_rehash(stored)
