"""Identity: players, admins and game servers, and the tokens that say who they are.

- Players register with an email and a password (argon2id). Registration never tells whether
  the address is taken: it always answers the same, and the address's owner gets a mail (a link
  to confirm a new account, or a notice that one exists). The account is created when the link
  is used, with the password given at *that* registration (each link carries its own hash), so a
  stranger who registers someone else's address can never set its password.
- Login answers one refusal for an unknown email, a wrong password and an unconfirmed address,
  after the same argon2 work (a dummy hash for unknown emails).
- Sessions are refresh-token families (:mod:`leetgaming.tokens` holds the pure rules): rotating,
  reuse revokes the family, 30 minutes idle ends it, logout revokes it. A family's row changes
  only by compare-and-set on its current token hash, so two concurrent uses of one token are
  exactly one rotation and one reuse.
- Admins are created by the operator (``leetgaming admin create``), never over HTTP.
- Game servers are service accounts: an admin issues a key (shown once; its SHA-256 is stored:
  keys are 256-bit random, a slow hash adds nothing) and the server exchanges it for a
  short-lived access token with the role ``game_server``.
- The token signing key is ``LEETGAMING_SECRET_KEY`` or, when unset, a random key generated once
  and kept in the database, so every process on that database verifies the same tokens.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from leetgaming import security
from leetgaming.db import Conn, Database, is_unique_violation
from leetgaming.mail import FolderMailer, Mailer
from leetgaming.passwords import Passwords
from leetgaming.settings import Settings
from leetgaming.tokens import (
    ACCESS_TOKEN_TTL_S,
    INITIAL_KID,
    AccessClaims,
    FamilyState,
    Keyring,
    RefreshFamily,
    issue_access_token,
    log_out,
    rotate,
    start_family,
    token_hash,
    verify_access_token,
)
from leetgaming.two_factor import TwoFactor, TwoFactorRefused

log = logging.getLogger("leetgaming.identity")

EMAIL_CHARS_MAX: Final = 254
NAME_CHARS_MAX: Final = 64
VERIFICATION_TTL_S: Final = 24 * 3600
GAME_SERVER_TOKEN_TTL_S: Final = 600
GAME_SERVER_KEY_PREFIX: Final = "lgsk_"
REFRESH_RACE_RETRIES: Final = 3

MIGRATIONS: Final = [
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('player', 'admin')),
        created_s BIGINT NOT NULL
    );
    CREATE TABLE pending_registrations (
        token_hash TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        expires_s BIGINT NOT NULL
    );
    CREATE INDEX pending_registrations_expiry ON pending_registrations (expires_s);
    CREATE TABLE refresh_families (
        id TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        role TEXT NOT NULL,
        current_hash TEXT NOT NULL UNIQUE,
        created_s BIGINT NOT NULL,
        last_used_s BIGINT NOT NULL,
        state TEXT NOT NULL
    );
    CREATE TABLE refresh_spent (
        token_hash TEXT PRIMARY KEY,
        family_id TEXT NOT NULL
    );
    CREATE TABLE game_servers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        created_by TEXT NOT NULL,
        created_s BIGINT NOT NULL,
        revoked_s BIGINT
    );
    CREATE TABLE signing_keys (
        name TEXT PRIMARY KEY,
        secret TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE external_identities (
        provider TEXT NOT NULL,
        subject TEXT NOT NULL,
        user_id TEXT NOT NULL,
        created_s BIGINT NOT NULL,
        PRIMARY KEY (provider, subject)
    );
    CREATE INDEX external_identities_by_user ON external_identities (user_id);
    CREATE TABLE login_codes (
        code_hash TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        role TEXT NOT NULL,
        expires_s BIGINT NOT NULL
    );
    CREATE TABLE openid_nonces (
        nonce TEXT PRIMARY KEY,
        seen_s BIGINT NOT NULL
    )
    """,
]
MIGRATIONS.append("ALTER TABLE refresh_families ADD COLUMN mfa INTEGER NOT NULL DEFAULT 0")
MIGRATIONS.append(
    """
    CREATE TABLE signing_key_schedule (
        kid TEXT PRIMARY KEY,
        current_from_s BIGINT NOT NULL UNIQUE
    )
    """
)
KEYRING_REFRESH_S: Final = 10.0  # every process reads the signing keys' schedule this often
KEY_PROPAGATION_S: Final = 30  # a new signing key becomes current this long after its rotation
LOGIN_CODE_TTL_S: Final = 120
VERIFIED_TOKENS_MAX: Final = 10_000  # remembered verified access tokens per process
NONCE_KEPT_S: Final = 900
NO_PASSWORD: Final = "!"  # an account that signs in only through its provider


class IdentityError(Exception):
    """A refusal the client may see: ``code`` is stable, the message says what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Problem(enum.StrEnum):
    INVALID_EMAIL = "invalid_email"
    INVALID_PASSWORD = "invalid_password"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_TOKEN = "invalid_token"
    INVALID_NAME = "invalid_name"
    EMAIL_TAKEN = "email_taken"  # the operator's CLI only; never over HTTP
    ACCOUNT_EXISTS = "account_exists"  # a provider's email that has a password account
    TOTP_REQUIRED = "totp_required"  # an enrolled admin signs in with a code
    BAD_TOTP = "bad_totp"


def normalize_email(email: object) -> str:
    """The canonical form of an address (trimmed, lower case), or :class:`IdentityError`."""
    if not isinstance(email, str):
        raise IdentityError(Problem.INVALID_EMAIL, "email is a string")
    value = email.strip().lower()
    local, at, domain = value.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain.strip(".")
        or len(value) > EMAIL_CHARS_MAX
        or any(c.isspace() or ord(c) < 32 for c in value)
    ):
        raise IdentityError(Problem.INVALID_EMAIL, "that is not an email address")
    return value


@dataclass(frozen=True, slots=True)
class Session:
    """What a successful login, confirmation or refresh returns."""

    subject: str
    role: str
    access_token: str
    expires_in_s: int
    refresh_token: str


@dataclass(frozen=True, slots=True)
class GameServerKey:
    id: str
    name: str
    key: str  # shown once


def _new_id() -> str:
    return secrets.token_hex(8)


def _new_token() -> str:
    return secrets.token_urlsafe(32)


class Identity:
    """The identity service over a :class:`~leetgaming.db.Database` (see the module docstring).

    ``clock`` returns integer seconds; ``public_url`` is where mailed links point.
    """

    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        mailer: Mailer,
        clock: Callable[[], int],
        public_url: str,
        secret_key: str | None = None,
    ) -> None:
        self.db = db
        self.passwords = passwords
        self.mailer = mailer
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self._secret = secret_key
        self._keyring: Keyring | None = None
        self.two_factor: TwoFactor | None = None  # set once the signing key is known
        self._verified: dict[str, AccessClaims] = {}
        # told the id of every session that ends before its time (logout, a reused refresh
        # token): the app closes the session's open websockets on every process
        self.on_session_ended: Callable[[str], Awaitable[object]] | None = None

    @classmethod
    def for_settings(
        cls,
        settings: Settings,
        db: Database,
        passwords: Passwords | None = None,
        mailer: Mailer | None = None,
    ) -> Identity:
        """The process's service: wall-clock seconds, mail files under ``mail_dir``."""
        return cls(
            db,
            passwords or Passwords(),
            mailer or FolderMailer(settings.mail_dir),
            lambda: int(time.time()),
            settings.base_url,
            settings.secret_key,
        )

    async def start(self) -> None:
        """Bring the tables up to date and settle the signing key."""
        await self.db.migrate("identity", MIGRATIONS)
        if self._secret is None:
            await self.db.execute(
                "INSERT INTO signing_keys (name, secret) VALUES ('access', ?) "
                "ON CONFLICT (name) DO NOTHING",
                secrets.token_urlsafe(48),
            )
            row = await self.db.fetchone("SELECT secret FROM signing_keys WHERE name = 'access'")
            assert row is not None
            self._secret = str(row[0])
        await self.refresh_keys()

    @property
    def secret(self) -> str:
        """The server's secret key (its signing keys and sealed values are derived from it)."""
        if self._secret is None:
            raise RuntimeError("Identity.start() has not run")
        return self._secret

    @property
    def keyring(self) -> Keyring:
        if self._keyring is None:
            raise RuntimeError("Identity.start() has not run")
        return self._keyring

    async def refresh_keys(self) -> None:
        """Read the signing keys' schedule (every process, every :data:`KEYRING_REFRESH_S`)."""
        rows = await self.db.fetch(
            "SELECT kid, current_from_s FROM signing_key_schedule ORDER BY current_from_s"
        )
        schedule = ((INITIAL_KID, 0), *((str(kid), int(start)) for kid, start in rows))
        if self._keyring is None or self._keyring.schedule != schedule:
            self._keyring = Keyring(self.secret, schedule)

    async def rotate_signing_key(self) -> tuple[str, int]:
        """Schedule a new signing key: ``(kid, current from s)``, :data:`KEY_PROPAGATION_S`
        from now (every process reads it before then). The key it replaces verifies its own
        tokens for one token lifetime more (:class:`~leetgaming.tokens.Keyring`)."""
        await self.refresh_keys()
        now = self.clock()
        latest = self.keyring.schedule[-1][1]
        if latest > now:
            raise IdentityError("rotation_pending", "the last rotation is not current yet")
        kid, start = "k" + secrets.token_hex(8), now + KEY_PROPAGATION_S
        await self.db.execute(
            "INSERT INTO signing_key_schedule (kid, current_from_s) VALUES (?, ?)", kid, start
        )
        await self.refresh_keys()
        return kid, start

    def verify(self, token: str) -> AccessClaims | None:
        """The claims of a valid access token. Tokens verified before are remembered until they
        expire (a client sends the same one for minutes; HMAC and claim checks cost more than
        the rest of a cheap request); refusals are not remembered."""
        now = self.clock()
        known = self._verified.get(token)
        if known is not None:
            return known if now < known.expires_at_s else None
        claims = verify_access_token(self.keyring, token, now)
        if claims is not None:
            if len(self._verified) >= VERIFIED_TOKENS_MAX:
                self._verified.clear()
            self._verified[token] = claims
        return claims

    # Players ------------------------------------------------------------------------------

    async def _new_credentials(self, email: object, password: object) -> tuple[str, str]:
        """The normalised address and the password's hash, or why they are refused."""
        address = normalize_email(email)
        problem = self.passwords.problem(password)
        if problem is not None:
            raise IdentityError(Problem.INVALID_PASSWORD, problem)
        assert isinstance(password, str)
        return address, await asyncio.to_thread(self.passwords.hash, password)

    async def register(self, email: object, password: object) -> None:
        """Mail the address's owner; the same outcome whether or not it is taken."""
        address, password_hash = await self._new_credentials(email, password)
        now = self.clock()
        await self.db.execute("DELETE FROM pending_registrations WHERE expires_s < ?", now)
        taken = await self.db.fetchone("SELECT 1 FROM users WHERE email = ?", address)
        if taken:
            await self.mailer.send(
                address,
                "Someone tried to register with your address",
                "Your address already has a LeetGaming account, so nothing was created.\n"
                f"If that was you, sign in at {self.public_url}/ or reset your password.\n",
            )
            return
        token = _new_token()
        await self.db.execute(
            "INSERT INTO pending_registrations (token_hash, email, password_hash, expires_s) "
            "VALUES (?, ?, ?, ?)",
            token_hash(token),
            address,
            password_hash,
            now + VERIFICATION_TTL_S,
        )
        await self.mailer.send(
            address,
            "Confirm your LeetGaming account",
            f"Open this link within 24 hours to create your account:\n"
            f"{self.public_url}/confirm#token={token}\n"
            "If you did not register, ignore this mail.\n",
        )

    async def confirm(self, token: object) -> Session:
        """Create the account of a registration link and sign it in."""
        if not isinstance(token, str) or not 0 < len(token) <= 256:
            raise IdentityError(Problem.INVALID_TOKEN, "the link is not valid")
        now = self.clock()
        user_id = _new_id()
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT email, password_hash, expires_s FROM pending_registrations "
                "WHERE token_hash = ?",
                token_hash(token),
            )
            if row is None or row[2] < now:
                raise IdentityError(Problem.INVALID_TOKEN, "the link is not valid or has expired")
            email, password_hash = row[0], row[1]
            await tx.execute("DELETE FROM pending_registrations WHERE email = ?", email)
            created = await tx.execute(
                "INSERT INTO users (id, email, password_hash, role, created_s) "
                "VALUES (?, ?, ?, 'player', ?) ON CONFLICT (email) DO NOTHING",
                user_id,
                email,
                password_hash,
                now,
            )
            if not created:  # confirmed through another link meanwhile
                raise IdentityError(Problem.INVALID_TOKEN, "the link is not valid or has expired")
        return await self._start_session(user_id, "player")

    async def create_admin(self, email: object, password: object) -> str:
        """The operator's path to an admin account (no mail, no link); returns its id."""
        return await self.create_account(email, password, "admin")

    async def create_account(self, email: object, password: object, role: str) -> str:
        """An account made by the operator (an admin, or a simulation's bot player), with no
        mail and no link; returns its id."""
        if role not in ("admin", "player"):
            raise ValueError(f"no such role: {role}")
        address, password_hash = await self._new_credentials(email, password)
        user_id = _new_id()
        try:
            await self.db.execute(
                "INSERT INTO users (id, email, password_hash, role, created_s) "
                "VALUES (?, ?, ?, ?, ?)",
                user_id,
                address,
                password_hash,
                role,
                self.clock(),
            )
        except Exception as exc:
            if is_unique_violation(exc):
                raise IdentityError(Problem.EMAIL_TAKEN, "an account has this email") from None
            raise
        return user_id

    async def login(self, email: object, password: object, code: object = None) -> Session:
        """A session for the right email and password; with a TOTP code (required of an
        admin who has enrolled) the session is marked as begun with a second factor."""
        refusal = IdentityError(Problem.INVALID_CREDENTIALS, "wrong email or password")
        if not isinstance(password, str) or self.passwords.problem(password) is not None:
            raise refusal
        try:
            address = normalize_email(email)
        except IdentityError:
            raise refusal from None
        row = await self.db.fetchone(
            "SELECT id, password_hash, role FROM users WHERE email = ?", address
        )
        stored = None if row is None else str(row[1])
        ok = await asyncio.to_thread(self.passwords.check, stored, password)
        if not ok or row is None:
            raise refusal
        user_id, role = str(row[0]), str(row[2])
        if self.passwords.needs_rehash(str(row[1])):
            rehashed = await asyncio.to_thread(self.passwords.hash, password)
            await self.db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                rehashed,
                user_id,
                row[1],
            )
        mfa = False
        if self.two_factor is not None and (
            code is not None or (role == "admin" and await self.two_factor.enrolled(user_id))
        ):
            if code is None:
                raise IdentityError(Problem.TOTP_REQUIRED, "send your TOTP code as totp")
            try:
                await self.two_factor.check(user_id, code)
            except TwoFactorRefused as refused:
                raise IdentityError(Problem.BAD_TOTP, str(refused)) from None
            mfa = True
        return await self._start_session(user_id, role, mfa)

    # Sign-in through a provider (Google, Steam) ------------------------------------------------

    async def external_login(self, provider: str, subject: str, email: str | None) -> Session:
        """A session for whoever ``provider`` vouches is ``subject``: their account, made on
        first sign-in (with no password). A Google email that already has a password account
        is refused rather than taken over: that person signs in with their password."""
        for _ in range(REFRESH_RACE_RETRIES):
            row = await self.db.fetchone(
                "SELECT u.id, u.role FROM external_identities e JOIN users u ON u.id = e.user_id "
                "WHERE e.provider = ? AND e.subject = ?",
                provider,
                subject,
            )
            if row is not None:
                return await self._start_session(str(row[0]), str(row[1]))
            user_id = _new_id()
            address = (
                normalize_email(email) if email else f"{provider}-{subject}@{provider}.invalid"
            )
            try:
                async with self.db.transaction() as tx:
                    await tx.execute(
                        "INSERT INTO users (id, email, password_hash, role, created_s) "
                        "VALUES (?, ?, ?, 'player', ?)",
                        user_id,
                        address,
                        NO_PASSWORD,
                        self.clock(),
                    )
                    await tx.execute(
                        "INSERT INTO external_identities (provider, subject, user_id, created_s) "
                        "VALUES (?, ?, ?, ?)",
                        provider,
                        subject,
                        user_id,
                        self.clock(),
                    )
            except Exception as exc:
                if not is_unique_violation(exc):
                    raise
                taken = await self.db.fetchone("SELECT 1 FROM users WHERE email = ?", address)
                linked = await self.db.fetchone(
                    "SELECT 1 FROM external_identities WHERE provider = ? AND subject = ?",
                    provider,
                    subject,
                )
                if taken and not linked:
                    raise IdentityError(
                        Problem.ACCOUNT_EXISTS,
                        "an account has this email: sign in with its password",
                    ) from None
                continue  # a concurrent first sign-in made the account: use it
            return await self._start_session(user_id, "player")
        raise RuntimeError("a first sign-in kept racing")

    async def external_subject(self, provider: str, user_id: str) -> str | None:
        """The id ``provider`` knows the account by (a SteamID64), if it signed in that way."""
        row = await self.db.fetchone(
            "SELECT subject FROM external_identities WHERE provider = ? AND user_id = ?",
            provider,
            user_id,
        )
        return None if row is None else str(row[0])

    async def remember_nonce(self, nonce: str) -> bool:
        """Whether ``nonce`` is new (and now remembered); a replayed assertion is not."""
        now = self.clock()
        await self.db.execute("DELETE FROM openid_nonces WHERE seen_s < ?", now - NONCE_KEPT_S)
        inserted = await self.db.execute(
            "INSERT INTO openid_nonces (nonce, seen_s) VALUES (?, ?) ON CONFLICT DO NOTHING",
            nonce,
            now,
        )
        return inserted == 1

    async def login_code(self, session: Session) -> str:
        """A one-time code, good for two minutes, that :meth:`exchange` turns into a session
        for the same account (the browser carries it in a URL fragment)."""
        code = _new_token()
        await self.db.execute(
            "INSERT INTO login_codes (code_hash, subject, role, expires_s) VALUES (?, ?, ?, ?)",
            token_hash(code),
            session.subject,
            session.role,
            self.clock() + LOGIN_CODE_TTL_S,
        )
        return code

    async def exchange(self, code: object) -> Session:
        refusal = IdentityError(Problem.INVALID_TOKEN, "the login code is unknown, used or expired")
        if not isinstance(code, str) or not 0 < len(code) <= 128:
            raise refusal
        hashed = token_hash(code)
        row = await self.db.fetchone(
            "SELECT subject, role, expires_s FROM login_codes WHERE code_hash = ?", hashed
        )
        if row is None or not await self.db.execute(
            "DELETE FROM login_codes WHERE code_hash = ?", hashed
        ):
            raise refusal
        if int(row[2]) < self.clock():
            raise refusal
        return await self._start_session(str(row[0]), str(row[1]))

    async def user(self, user_id: str) -> tuple[str, str] | None:
        """``(email, role)`` of an account."""
        row = await self.db.fetchone("SELECT email, role FROM users WHERE id = ?", user_id)
        return None if row is None else (str(row[0]), str(row[1]))

    # Sessions -----------------------------------------------------------------------------

    def _access(self, subject: str, role: str, session: str, mfa: bool) -> tuple[str, int]:
        token = issue_access_token(self.keyring, subject, role, session, self.clock(), mfa=mfa)
        return token, ACCESS_TOKEN_TTL_S

    async def _start_session(self, subject: str, role: str, mfa: bool = False) -> Session:
        refresh = _new_token()
        family = start_family(_new_id(), subject, role, refresh, self.clock(), mfa)
        await self.db.execute(
            "INSERT INTO refresh_families "
            "(id, subject, role, current_hash, created_s, last_used_s, state, mfa) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            family.id,
            family.subject,
            family.role,
            family.current_hash,
            family.created_s,
            family.last_used_s,
            family.state.value,
            int(mfa),
        )
        access, ttl = self._access(subject, role, family.id, mfa)
        return Session(subject, role, access, ttl, refresh)

    async def _family_of(self, conn: Conn, presented_hash: str) -> RefreshFamily | None:
        columns = "id, subject, role, current_hash, created_s, last_used_s, state, mfa"
        row = await conn.fetchone(
            f"SELECT {columns} FROM refresh_families WHERE current_hash = ?",  # nosec B608
            presented_hash,
        )
        spent: frozenset[str] = frozenset()
        if row is None:
            spent_row = await conn.fetchone(
                "SELECT family_id FROM refresh_spent WHERE token_hash = ?", presented_hash
            )
            if spent_row is None:
                return None
            row = await conn.fetchone(
                f"SELECT {columns} FROM refresh_families WHERE id = ?",  # nosec B608
                spent_row[0],
            )
            if row is None:
                return None
            spent = frozenset({presented_hash})
        return RefreshFamily(
            str(row[0]),
            str(row[1]),
            str(row[2]),
            str(row[3]),
            spent,
            int(row[4]),
            int(row[5]),
            FamilyState(row[6]),
            bool(row[7]),
        )

    async def refresh(self, presented: object) -> Session:
        """Spend a refresh token for a new pair (see :func:`leetgaming.tokens.rotate`)."""
        if not isinstance(presented, str) or not 0 < len(presented) <= 256:
            raise IdentityError(Problem.INVALID_TOKEN, "sign in again")
        presented_hash = token_hash(presented)
        for _ in range(REFRESH_RACE_RETRIES):
            family = await self._family_of(self.db, presented_hash)
            if family is None:
                raise IdentityError(Problem.INVALID_TOKEN, "sign in again")
            next_token = _new_token()
            updated, refusal = rotate(family, presented, next_token, self.clock())
            if updated != family:
                async with self.db.transaction() as tx:
                    changed = await tx.execute(
                        "UPDATE refresh_families SET current_hash = ?, last_used_s = ?, state = ? "
                        "WHERE id = ? AND current_hash = ? AND state = ?",
                        updated.current_hash,
                        updated.last_used_s,
                        updated.state.value,
                        family.id,
                        family.current_hash,
                        family.state.value,
                    )
                    if changed and refusal is None:
                        await tx.execute(
                            "INSERT INTO refresh_spent (token_hash, family_id) VALUES (?, ?)",
                            presented_hash,
                            family.id,
                        )
                if not changed:
                    continue  # the family changed meanwhile (a concurrent use): read it again
            if refusal is not None:
                if updated.state is not FamilyState.ACTIVE and family.state is FamilyState.ACTIVE:
                    await self._ended(family, "refresh_token_reused")  # the family is revoked
                raise IdentityError(Problem.INVALID_TOKEN, f"sign in again ({refusal})")
            access, ttl = self._access(family.subject, family.role, family.id, family.mfa)
            return Session(family.subject, family.role, access, ttl, next_token)
        raise IdentityError(Problem.INVALID_TOKEN, "sign in again")

    async def logout(self, presented: object) -> None:
        """End the session of a refresh token (nothing happens for an unknown one)."""
        if not isinstance(presented, str) or not 0 < len(presented) <= 256:
            return
        family = await self._family_of(self.db, token_hash(presented))
        if family is None or family.state is not FamilyState.ACTIVE:
            return
        ended = log_out(family)
        await self.db.execute(
            "UPDATE refresh_families SET state = ? WHERE id = ?", ended.state.value, family.id
        )
        await self._ended(family, "logout")

    async def _ended(self, family: RefreshFamily, why: str) -> None:
        security.event("session_revoked", f"{family.role}:{family.subject}", "ok", reason=why)
        if self.on_session_ended is not None:
            try:
                await self.on_session_ended(family.id)
            except Exception:  # the session has ended: its sockets go at their token's expiry
                log.exception("closing an ended session's websockets failed")

    async def session_ended(self, session_id: str) -> bool:
        """Whether sign-in session ``session_id`` was ended before its time (logged out, or
        revoked by a reused refresh token): its access tokens, still unexpired, open no new
        websocket. A session this database does not know (a token minted elsewhere with the
        key) is not one that ended."""
        row = await self.db.fetchone("SELECT state FROM refresh_families WHERE id = ?", session_id)
        return row is not None and row[0] != FamilyState.ACTIVE.value

    async def session_active(self, session_id: str) -> bool:
        row = await self.db.fetchone(
            "SELECT state, last_used_s FROM refresh_families WHERE id = ?", session_id
        )
        return row is not None and row[0] == FamilyState.ACTIVE.value

    # Game servers -------------------------------------------------------------------------

    async def issue_game_server_key(self, name: object, admin: str) -> GameServerKey:
        if not isinstance(name, str) or not 0 < len(name.strip()) <= NAME_CHARS_MAX:
            raise IdentityError(Problem.INVALID_NAME, f"a name is 1..{NAME_CHARS_MAX} characters")
        server_id = _new_id()
        key = f"{GAME_SERVER_KEY_PREFIX}{server_id}_{secrets.token_urlsafe(32)}"
        await self.db.execute(
            "INSERT INTO game_servers (id, name, key_hash, created_by, created_s) "
            "VALUES (?, ?, ?, ?, ?)",
            server_id,
            name.strip(),
            token_hash(key),
            admin,
            self.clock(),
        )
        return GameServerKey(server_id, name.strip(), key)

    async def revoke_game_server(self, server_id: str) -> bool:
        changed = await self.db.execute(
            "UPDATE game_servers SET revoked_s = ? WHERE id = ? AND revoked_s IS NULL",
            self.clock(),
            server_id,
        )
        return changed > 0

    async def game_servers(self) -> list[dict[str, object]]:
        rows = await self.db.fetch(
            "SELECT id, name, created_by, created_s, revoked_s FROM game_servers ORDER BY id"
        )
        keys = ("id", "name", "created_by", "created_s", "revoked_s")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def result_key(self, server_id: str) -> str | None:
        """The key a game server signs its results with: the SHA-256 (hex) of its key, which
        it can compute and we keep; None for an unknown or revoked server."""
        row = await self.db.fetchone(
            "SELECT key_hash FROM game_servers WHERE id = ? AND revoked_s IS NULL", server_id
        )
        return None if row is None else str(row[0])

    async def game_server_token(self, key: object) -> tuple[str, str, int]:
        """``(server id, access token, ttl s)`` for a valid, unrevoked key."""
        refusal = IdentityError(Problem.INVALID_CREDENTIALS, "the key is not valid")
        if not isinstance(key, str) or not key.startswith(GAME_SERVER_KEY_PREFIX):
            raise refusal
        server_id = key.removeprefix(GAME_SERVER_KEY_PREFIX).split("_", 1)[0]
        row = await self.db.fetchone(
            "SELECT key_hash, revoked_s FROM game_servers WHERE id = ?", server_id
        )
        if row is None or row[1] is not None or not hmac.compare_digest(row[0], token_hash(key)):
            raise refusal
        now = self.clock()
        token = issue_access_token(
            self.keyring, server_id, "game_server", f"gs-{server_id}", now, GAME_SERVER_TOKEN_TTL_S
        )
        return server_id, token, GAME_SERVER_TOKEN_TTL_S
