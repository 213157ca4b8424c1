from __future__ import annotations

import jwt
import pytest

from leetgaming.passwords import PasswordPolicy, Passwords
from leetgaming.tokens import (
    IDLE_TIMEOUT_S,
    INITIAL_KID,
    KEY_LAG_S,
    TOKEN_TTL_MAX_S,
    FamilyState,
    Keyring,
    Refusal,
    issue_access_token,
    log_out,
    rotate,
    signing_key,
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
    assert verify_access_token(SECRET, signed(claims), NOW) is None


GOOD = {
    "iss": "leetgaming",
    "aud": "leetgaming",
    "sub": "a",
    "role": "admin",
    "sid": "s",
    "iat": NOW,
    "exp": NOW + 60,
}


def signed(
    claims: dict[str, object], kid: str | None = INITIAL_KID, key: bytes | None = None
) -> str:
    """A token signed as the server signs, with these claims and this header kid."""
    headers = {} if kid is None else {"kid": kid}
    return jwt.encode(
        claims, key or signing_key(SECRET, kid or INITIAL_KID), algorithm="HS256", headers=headers
    )


def test_a_token_says_its_key_and_forged_headers_are_refused() -> None:
    token = issue_access_token(SECRET, "a", "admin", "s", NOW)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT", "kid": INITIAL_KID}
    assert verify_access_token(SECRET, signed(GOOD), NOW) is not None  # the forger's baseline
    forged = {
        "no kid": signed(GOOD, kid=None),
        "unknown kid": signed(GOOD, kid="k1234"),
        "kid not a kid": signed(GOOD, kid="../../etc/passwd"),
        "the raw secret key": signed(GOOD, key=SECRET.encode()),
        "another key's kid": signed(GOOD, kid=INITIAL_KID, key=signing_key(SECRET, "k1")),
        "a lifetime over an hour": signed(GOOD | {"exp": NOW + TOKEN_TTL_MAX_S + 1}),
        "iat a string": signed(GOOD | {"iat": str(NOW)}),
    }
    for name, token in forged.items():
        assert verify_access_token(SECRET, token, NOW) is None, name
    with pytest.raises(ValueError):
        issue_access_token(SECRET, "a", "player", "s", NOW, ttl_s=TOKEN_TTL_MAX_S + 1)


def test_a_header_naming_another_algorithm_is_refused() -> None:
    """HS/RS confusion: the server checks HS256 with its derived key and nothing else, so the
    same signed body under a header saying RS256 or HS512 is refused."""
    honest = signed(GOOD)
    for alg in ("RS256", "HS512", "none"):
        header = jwt.utils.base64url_encode(
            f'{{"alg":"{alg}","typ":"JWT","kid":"{INITIAL_KID}"}}'.encode()
        ).decode()
        assert verify_access_token(SECRET, header + honest[honest.index(".") :], NOW) is None, alg


def test_keys_rotate_with_an_overlap_of_one_token_lifetime() -> None:
    switch = NOW + 100
    ring = Keyring(SECRET, ((INITIAL_KID, 0), ("k1", switch)))
    assert ring.current(switch - 1) == INITIAL_KID and ring.current(switch) == "k1"
    before = issue_access_token(ring, "a", "player", "s", switch - 1, ttl_s=300)
    after = issue_access_token(ring, "a", "player", "s", switch, ttl_s=300)
    assert jwt.get_unverified_header(after)["kid"] == "k1"
    # the old key's token lives out its lifetime; the new key's verifies everywhere
    assert verify_access_token(ring, before, switch + 298) is not None
    assert verify_access_token(ring, after, switch + 10) is not None
    # a process whose schedule is stale (it does not know k1 yet) refuses k1's tokens ...
    assert verify_access_token(Keyring(SECRET), after, switch + 10) is None
    # ... and one that signs with the replaced key past the lag: refused everywhere else
    late = issue_access_token(Keyring(SECRET), "a", "player", "s", switch + KEY_LAG_S + 10)
    assert verify_access_token(ring, late, switch + KEY_LAG_S + 11) is None
    lagging = issue_access_token(Keyring(SECRET), "a", "player", "s", switch + 2)
    assert verify_access_token(ring, lagging, switch + 3) is not None
    # an old-key token whose exp claims longer than a token can live: gone after the overlap
    longest = issue_access_token(ring, "a", "player", "s", switch - 1, ttl_s=TOKEN_TTL_MAX_S)
    end = switch + KEY_LAG_S + TOKEN_TTL_MAX_S + 5
    assert verify_access_token(ring, longest, end - TOKEN_TTL_MAX_S) is not None
    assert ring.retired(end - 1) == [] and ring.retired(end) == [INITIAL_KID]
    # a token that says k1 but is dated before k1 was in use is a forgery
    early = signed(GOOD | {"iat": NOW, "exp": NOW + 60}, kid="k1")
    assert verify_access_token(ring, early, NOW + 1) is None


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
