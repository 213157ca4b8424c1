"""Access tokens (short-lived JWTs) and rotating refresh tokens.

Access tokens are HS256 JWTs with ``iss``, ``aud``, ``sub``, ``role``, ``sid`` (session),
``iat`` and ``exp``; verification *requires* every one of them (PyJWT accepts a token without
``exp`` unless told otherwise) and checks issuer and audience.

Signing keys rotate. Each has a ``kid``, sent in the token's header, and is derived (HKDF-SHA256)
from the server's secret key and that kid, so no key material is stored anywhere: a
:class:`Keyring` is only the schedule of kids and the time each becomes current. Every
deployment starts with :data:`INITIAL_KID`; a rotation adds a kid that becomes current a little
later (so every process has read it by then). A key whose successor is current still verifies
the tokens it issued while it was current, for as long as the longest-lived token can last
(:data:`TOKEN_TTL_MAX_S`): the overlap of one token lifetime. Then its tokens are refused, as
are tokens without a kid, with a kid never scheduled, or issued by a key after it was replaced.

Refresh tokens are opaque random strings; only their SHA-256 is stored. Each login starts a
*family*. Refreshing presents the current token and gets the next one; the presented one is
spent. The pure rules (:func:`rotate`) decide, with the time passed in:

- the current token, within the idle timeout (30 minutes since the last use) and the family's
  absolute lifetime: a new token;
- a spent token of the family (replayed: stolen, or a client bug): the whole family is revoked;
- idle too long, too old, revoked or logged out: refused.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ACCESS_TOKEN_TTL_S = 300
IDLE_TIMEOUT_S = 30 * 60
FAMILY_LIFETIME_S = 30 * 24 * 3600
ISSUER = "leetgaming"
AUDIENCE = "leetgaming"
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "role", "sid"]
INITIAL_KID: Final = "k0"  # the key of a deployment that never rotated (no row needed)
KID_PATTERN: Final = re.compile(r"k[0-9a-f]{1,32}")
TOKEN_TTL_MAX_S: Final = 3600  # no token we sign lives longer (exp - iat); the keys' overlap
CLOCK_SKEW_S: Final = 5  # between processes
KEY_LAG_S: Final = 15  # a process may sign with a replaced key this long (its schedule is stale)


@functools.lru_cache(maxsize=64)
def signing_key(secret: str, kid: str) -> bytes:
    """The HS256 key ``kid`` under the server's secret key (derived, never stored)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"access-token:" + kid.encode()
    ).derive(secret.encode())


@dataclass(frozen=True, slots=True)
class Keyring:
    """The server's secret key and the schedule of signing keys: ``(kid, current_from_s)``
    pairs, oldest first, :data:`INITIAL_KID` from the beginning of time (pure: the time is an
    argument)."""

    secret: str = field(repr=False)
    schedule: tuple[tuple[str, int], ...] = ((INITIAL_KID, 0),)

    def current(self, now_s: int) -> str:
        """The kid to sign with now."""
        return [kid for kid, start in self.schedule if start <= now_s][-1]

    def accepts(self, kid: str, issued_s: int, now_s: int) -> bool:
        """Whether a token signed by ``kid`` at ``issued_s`` may be verified now."""
        for n, (known, start) in enumerate(self.schedule):
            if known != kid:
                continue
            if issued_s + CLOCK_SKEW_S < start:
                return False  # signed before the key was in use
            if n + 1 == len(self.schedule):
                return True
            replaced_s = self.schedule[n + 1][1]
            if replaced_s > now_s:
                return True  # its successor is not current yet
            return (
                issued_s < replaced_s + KEY_LAG_S + CLOCK_SKEW_S
                and now_s < replaced_s + KEY_LAG_S + TOKEN_TTL_MAX_S + CLOCK_SKEW_S
            )
        return False

    def retired(self, now_s: int) -> list[str]:
        """The kids whose tokens can no longer verify (their rows may go)."""
        return [
            kid
            for (kid, _), (_, replaced_s) in zip(self.schedule, self.schedule[1:], strict=False)
            if now_s >= replaced_s + KEY_LAG_S + TOKEN_TTL_MAX_S + CLOCK_SKEW_S
        ]


def _keyring(secret: str | Keyring) -> Keyring:
    return secret if isinstance(secret, Keyring) else Keyring(secret)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    role: str
    session: str
    expires_at_s: int
    mfa: bool = False  # the session began with a second factor (amr has "otp")


def issue_access_token(
    secret: str | Keyring,
    subject: str,
    role: str,
    session: str,
    now_s: int,
    ttl_s: int = ACCESS_TOKEN_TTL_S,
    *,
    mfa: bool = False,
) -> str:
    """A token signed with the keyring's current key (a bare secret key: :data:`INITIAL_KID`)."""
    if not 0 < ttl_s <= TOKEN_TTL_MAX_S:
        raise ValueError(f"a token lives 1 to {TOKEN_TTL_MAX_S} s")
    keyring = _keyring(secret)
    kid = keyring.current(now_s)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "role": role,
        "sid": session,
        "iat": now_s,
        "exp": now_s + ttl_s,
        "amr": ["pwd", "otp"] if mfa else ["pwd"],  # RFC 8176 method references
    }
    return jwt.encode(
        claims, signing_key(keyring.secret, kid), algorithm="HS256", headers={"kid": kid}
    )


def verify_access_token(secret: str | Keyring, token: str, now_s: int) -> AccessClaims | None:
    """The token's claims, or None for any token that is not valid now (never raises)."""
    if not isinstance(token, str) or len(token) > 4096:
        return None
    keyring = _keyring(secret)
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
            return None
        if not any(kid == known for known, _ in keyring.schedule):
            return None
        # exp is required and checked below, stricter than PyJWT (an int, not after now)
        claims: dict[str, Any] = jwt.decode(  # nosemgrep: jwt-decode-without-verification
            token,
            signing_key(keyring.secret, kid),
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": _REQUIRED_CLAIMS, "verify_iat": False, "verify_exp": False},
        )
    except jwt.PyJWTError:
        return None
    expires, issued = claims["exp"], claims["iat"]
    if type(expires) is not int or type(issued) is not int:
        return None
    if now_s >= expires or issued > now_s + CLOCK_SKEW_S or expires - issued > TOKEN_TTL_MAX_S:
        return None
    if not keyring.accepts(kid, issued, now_s):
        return None
    if not all(isinstance(claims[k], str) for k in ("sub", "role", "sid")):
        return None
    amr = claims.get("amr")
    mfa = isinstance(amr, list) and "otp" in amr
    return AccessClaims(claims["sub"], claims["role"], claims["sid"], expires, mfa)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class FamilyState(enum.Enum):
    ACTIVE = "active"
    REVOKED = "revoked"  # reuse detected, or an admin
    LOGGED_OUT = "logged_out"


@dataclass(frozen=True, slots=True)
class RefreshFamily:
    id: str
    subject: str
    role: str
    current_hash: str
    spent_hashes: frozenset[str]
    created_s: int
    last_used_s: int
    state: FamilyState = FamilyState.ACTIVE
    mfa: bool = False  # begun with a second factor: every access token of it says so


class Refusal(enum.StrEnum):
    UNKNOWN = "unknown"
    REUSED = "reused"  # the family is now revoked
    IDLE = "idle"
    EXPIRED = "expired"
    REVOKED = "revoked"


def start_family(
    family_id: str, subject: str, role: str, token: str, now_s: int, mfa: bool = False
) -> RefreshFamily:
    return RefreshFamily(
        family_id, subject, role, token_hash(token), frozenset(), now_s, now_s, mfa=mfa
    )


def rotate(
    family: RefreshFamily, presented: str, next_token: str, now_s: int
) -> tuple[RefreshFamily, Refusal | None]:
    """Spend ``presented`` and make ``next_token`` current, or say why not (pure)."""
    presented_hash = token_hash(presented)
    if family.state is not FamilyState.ACTIVE:
        return family, Refusal.REVOKED
    if presented_hash in family.spent_hashes:
        return replace(family, state=FamilyState.REVOKED), Refusal.REUSED
    if presented_hash != family.current_hash:
        return family, Refusal.UNKNOWN
    if now_s - family.last_used_s > IDLE_TIMEOUT_S:
        return replace(family, state=FamilyState.REVOKED), Refusal.IDLE
    if now_s - family.created_s > FAMILY_LIFETIME_S:
        return replace(family, state=FamilyState.REVOKED), Refusal.EXPIRED
    return (
        replace(
            family,
            current_hash=token_hash(next_token),
            spent_hashes=family.spent_hashes | {presented_hash},
            last_used_s=now_s,
        ),
        None,
    )


def log_out(family: RefreshFamily) -> RefreshFamily:
    return replace(family, state=FamilyState.LOGGED_OUT)
