"""Access tokens (short-lived JWTs) and rotating refresh tokens.

Access tokens are HS256 JWTs with ``iss``, ``aud``, ``sub``, ``role``, ``sid`` (session),
``iat`` and ``exp``; verification *requires* every one of them (PyJWT accepts a token without
``exp`` unless told otherwise) and checks issuer and audience.

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
import hashlib
from dataclasses import dataclass, replace
from typing import Any

import jwt

ACCESS_TOKEN_TTL_S = 300
IDLE_TIMEOUT_S = 30 * 60
FAMILY_LIFETIME_S = 30 * 24 * 3600
ISSUER = "leetgaming"
AUDIENCE = "leetgaming"
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "role", "sid"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    role: str
    session: str
    expires_at_s: int
    mfa: bool = False  # the session began with a second factor (amr has "otp")


def issue_access_token(
    secret: str,
    subject: str,
    role: str,
    session: str,
    now_s: int,
    ttl_s: int = ACCESS_TOKEN_TTL_S,
    *,
    mfa: bool = False,
) -> str:
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
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_access_token(secret: str, token: str, now_s: int) -> AccessClaims | None:
    """The token's claims, or None for any token that is not valid now (never raises)."""
    if not isinstance(token, str) or len(token) > 4096:
        return None
    try:
        # exp is required and checked below, stricter than PyJWT (an int, not after now)
        claims: dict[str, Any] = jwt.decode(  # nosemgrep: jwt-decode-without-verification
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": _REQUIRED_CLAIMS, "verify_iat": False, "verify_exp": False},
        )
    except jwt.PyJWTError:
        return None
    expires = claims["exp"]
    if type(expires) is not int or now_s >= expires or claims["iat"] > now_s + 5:
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
