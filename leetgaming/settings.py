"""The one settings object of a LeetGaming process.

Invariants:

- Settings are read once, at start, from ``LEETGAMING_*`` environment variables by
  :meth:`Settings.from_env`, then passed down explicitly. There is no global settings object.
- A :class:`Settings` is frozen and always valid: every field has passed its check.
- :meth:`Settings.from_env` reports every bad variable at once, each with a precise reason,
  and refuses unknown ``LEETGAMING_*`` variables (a typo must not silently fall back to a
  default). ``LEETGAMING_TEST_*`` variables belong to the test suite and are ignored.
- The secret key and the passwords inside URLs never appear in ``repr()`` or in
  :meth:`Settings.redacted`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

ENV_PREFIX: Final = "LEETGAMING_"
TEST_ENV_PREFIX: Final = "LEETGAMING_TEST_"

DEFAULT_DATABASE_URL: Final = "sqlite:///./var/leetgaming.sqlite3"
DATABASE_SCHEMES: Final = ("sqlite:///", "postgresql://", "postgres://")
REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
SECRET_KEY_LENGTH_MIN: Final = 32
REDACTED: Final = "***"

# "scheme://user:password@" -> "scheme://user:***@"
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/:@\s]*:)[^@\s]+(?=@)")
# "?password=..." / "&sslpassword=..." in a libpq-style query string.
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&][A-Za-z_]*password=)[^&#\s]*", re.IGNORECASE)


class SettingsError(ValueError):
    """One or more ``LEETGAMING_*`` variables are invalid; the message lists every one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid settings:\n" + "\n".join(f"  {p}" for p in self.problems))


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    url = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, url)
    return _QUERY_PASSWORD.sub(lambda m: m.group("head") + REDACTED, url)


def env_name(field_name: str) -> str:
    """The environment variable that sets ``field_name``."""
    return ENV_PREFIX + field_name.upper()


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated process settings. Build with :meth:`from_env`, or directly in tests."""

    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    redis_prefix: str = "leetgaming:"  # every Redis key and pub/sub channel starts with it
    log_level: str = "info"
    workers: int = 1
    secret_key: str | None = field(default=None, repr=False)
    public_url: str | None = None
    # Origins whose pages may open a websocket, besides the server's own (the Host it is
    # reached at, and public_url's): comma-separated, https://portal.example.com
    allowed_origins: tuple[str, ...] = ()
    mail_dir: str = "./var/mail"  # outgoing mail as .eml files (the embedded mailer)
    blob_dir: str = "./var/blobs"  # demo files (the embedded blob store)
    demo_bytes_max: int = 1024 * 1024 * 1024  # an uploaded demo's size limit
    demo_retention_days: int = 30  # demos older than this are deleted from storage
    # an S3-compatible bucket for demos instead of blob_dir (all four, or none)
    blob_s3_endpoint: str | None = None  # https://s3.eu-west-1.amazonaws.com, http://minio:9000
    blob_s3_bucket: str | None = None
    blob_s3_access_key: str | None = field(default=None, repr=False)
    blob_s3_secret_key: str | None = field(default=None, repr=False)
    blob_s3_region: str = "us-east-1"
    queues_file: str | None = None  # TOML; unset: the shipped leetgaming/queues.toml
    rest_requests_per_min: int = 100  # per client IP, every REST route but probes and metrics
    # a retry may run an operation again once the claim on its Idempotency-Key is this old
    # (the process that claimed it died); the ledger's ids keep a second run from moving money
    idempotency_claim_ttl_s: int = 60
    cs2_tv_delay_s: int = 90  # the GOTV delay CS2 servers are configured with
    # the public feed of a live CS2 match lags at least this much (and GOTV's delay + 30 s)
    spectator_delay_min_s: int = 120
    stripe_secret_key: str | None = field(default=None, repr=False)  # sk_...; unset: no cards
    stripe_webhook_secret: str | None = field(default=None, repr=False)  # whsec_...
    stripe_api_base: str | None = None  # a Stripe-compatible server instead of api.stripe.com
    stripe_publishable_key: str | None = None  # pk_...: the portal's card form (Stripe.js)
    stripe_js_url: str = "https://js.stripe.com/v3/"  # where the portal loads Stripe.js from
    withdrawal_daily_usd_cents: int = 1_000_000  # per player per 24 hours
    withdrawal_approval_usd_cents: int = 100_000  # above it: TOTP and an admin
    withdrawal_review_score: int = 50  # a risk score at or above it: an admin reviews
    deposit_fee_bps: int = 250  # 2.5 % of what is deposited (card or chain)
    withdrawal_fee_bps: int = 300
    conversion_fee_bps: int = 100
    pro_deposit_fee_bps: int = 150  # what Pro subscribers pay instead
    pro_withdrawal_fee_bps: int = 200
    pro_price_usd_cents: int = 999  # a month of Pro, paid from the wallet's USD
    google_client_id: str | None = None  # unset: no Google sign-in
    google_issuer: str = "https://accounts.google.com"  # a local OIDC provider in tests
    google_gsi_url: str = "https://accounts.google.com/gsi/client"  # the portal's button script
    steam_openid_endpoint: str | None = None  # https://steamcommunity.com/openid/login
    portal_dir: str | None = None  # the built web portal; unset: frontend/dist of this checkout
    chains_file: str | None = None  # TOML (see leetgaming.chain); unset: no on-chain money
    chain_address_seed: str | None = field(default=None, repr=False)  # derives deposit keys
    chain_hot_wallet_key: str | None = field(default=None, repr=False)  # 0x + 64 hex: pays out
    chain_poll_interval_ms: int = 2_000  # how often each chain's watcher asks for new blocks

    def __post_init__(self) -> None:
        problems = [
            f"{env_name(f.name)}: {reason}"
            for f in fields(self)
            if (reason := _CHECKS[f.name](getattr(self, f.name))) is not None
        ]
        if not problems and (self.stripe_secret_key is None) != (
            self.stripe_webhook_secret is None
        ):
            problems.append(
                f"{env_name('stripe_secret_key')} and {env_name('stripe_webhook_secret')} "
                "are set together or not at all"
            )
        s3 = ("blob_s3_endpoint", "blob_s3_bucket", "blob_s3_access_key", "blob_s3_secret_key")
        if not problems and len({getattr(self, name) is None for name in s3}) > 1:
            problems.append(f"{', '.join(env_name(n) for n in s3)} are set together or not at all")
        if not problems and self.stripe_publishable_key and self.stripe_secret_key is None:
            problems.append(
                f"{env_name('stripe_publishable_key')} needs {env_name('stripe_secret_key')} "
                "(the card form pays intents the server makes)"
            )
        if not problems and self.workers > 1 and self.redis_url is None:
            # Each process's in-process broker would see only its own clients.
            problems.append(
                f"{env_name('workers')}: more than 1 needs {env_name('redis_url')} "
                "(processes share live events through Redis)"
            )
        if problems:
            raise SettingsError(problems)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read and validate every ``LEETGAMING_*`` variable of ``environ``.

        Raises :class:`SettingsError` naming every bad or unknown variable.
        """
        known = {env_name(f.name): f.name for f in fields(cls)}
        problems: list[str] = []
        values: dict[str, Any] = {}
        for name in sorted(environ):
            if not name.startswith(ENV_PREFIX) or name.startswith(TEST_ENV_PREFIX):
                continue
            if name not in known:
                problems.append(f"{name}: unknown setting (known: {', '.join(sorted(known))})")
                continue
            field_name = known[name]
            parsed = _PARSERS[field_name](environ[name])
            if isinstance(parsed, _Invalid):
                problems.append(f"{name}: {parsed.reason}")
                continue
            reason = _CHECKS[field_name](parsed)
            if reason is not None:
                problems.append(f"{name}: {reason}")
                continue
            values[field_name] = parsed
        if problems:
            raise SettingsError(problems)
        return cls(**values)

    @property
    def database_kind(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return "sqlite" if self.database_url.startswith("sqlite:///") else "postgresql"

    @property
    def sqlite_path(self) -> str | None:
        """The SQLite file path (relative to the working directory if not absolute)."""
        if self.database_kind != "sqlite":
            return None
        return self.database_url.removeprefix("sqlite:///").split("?", 1)[0]

    @property
    def base_url(self) -> str:
        """The URL a person opens: ``public_url`` when set, else ``http://host:port/``."""
        if self.public_url is not None:
            return self.public_url
        host = self.host
        if host in ("0.0.0.0", "::", ""):  # nosec B104
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def redacted(self) -> dict[str, object]:
        """Every setting as a dict safe to log: passwords in URLs and the secret key hidden."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRETS:
                value = None if value is None else REDACTED
            elif isinstance(value, str) and f.name.endswith("_url"):
                value = redact_url(value)
            out[f.name] = value
        return out


_SECRETS: Final = frozenset(
    {
        "secret_key",
        "stripe_secret_key",
        "stripe_webhook_secret",
        "chain_address_seed",
        "chain_hot_wallet_key",
    }
)


class _Invalid:
    """A value that could not be parsed from its environment string."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_str(raw: str) -> str:
    return raw


def _parse_origins(raw: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in raw.split(",") if part.strip())


def _parse_optional_str(raw: str) -> str | None:
    # An empty variable means "not set", so `LEETGAMING_REDIS_URL= leetgaming serve` works.
    return raw if raw != "" else None


def _int_parser(low: int, high: int | None) -> Callable[[str], int | _Invalid]:
    expected = f"an integer {low}..{high}" if high is not None else f"an integer >= {low}"

    def parse(raw: str) -> int | _Invalid:
        try:
            return int(raw.strip(), 10)
        except ValueError:
            return _Invalid(f"expected {expected}, got {raw!r}")

    return parse


def _check_host(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        return f"expected a host name or IP address, got {value!r}"
    return None


def _check_port(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return f"expected an integer 1..65535, got {str(value)!r}"
    return None


def _check_workers(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"expected an integer >= 1, got {str(value)!r}"
    return None


def _check_database_url(value: object) -> str | None:
    if not isinstance(value, str) or not value.startswith(DATABASE_SCHEMES):
        shown = redact_url(value) if isinstance(value, str) else value
        return f"expected a URL starting with {' or '.join(DATABASE_SCHEMES)}, got {shown!r}"
    if value.startswith("sqlite:///") and not value.removeprefix("sqlite:///").split("?")[0]:
        return "expected a file path after sqlite:///, got none"
    return None


def _check_redis_url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(REDIS_SCHEMES):
        shown = redact_url(value) if isinstance(value, str) else value
        return f"expected a URL starting with {' or '.join(REDIS_SCHEMES)}, got {shown!r}"
    return None


def _check_redis_prefix(value: object) -> str | None:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        return f"expected 1..64 of letters, digits and _.:-, got {value!r}"
    return None


def _check_log_level(value: object) -> str | None:
    if value not in LOG_LEVELS:
        return f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}"
    return None


def _check_secret_key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) < SECRET_KEY_LENGTH_MIN:
        # Never echo the secret itself, not even a wrong one.
        length = len(value) if isinstance(value, str) else 0
        return f"expected at least {SECRET_KEY_LENGTH_MIN} characters, got {length}"
    return None


def _check_publishable_key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("pk_") or len(value) > 255:
        return "a Stripe publishable key, pk_..."
    return None


def _check_script_url(value: object) -> str | None:
    """A script the portal loads from another origin: https, or http on this machine only."""
    if not isinstance(value, str):
        return "expected a URL"
    parts = urlsplit(value)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        return f"expected an https:// URL (http:// only on this machine), got {value!r}"
    if parts.username or parts.password or not parts.hostname:
        return f"expected a URL with a host and no credentials, got {value!r}"
    return None


def _check_public_url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return f"expected a URL starting with http:// or https://, got {value!r}"
    return None


def _check_origins(value: object) -> str | None:
    if not isinstance(value, tuple):
        return f"expected comma-separated origins, got {value!r}"
    for origin in value:
        parts = urlsplit(origin) if isinstance(origin, str) else None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.username is not None
            or parts.path
            or parts.query
            or parts.fragment
        ):
            return f"expected origins like https://portal.example.com (no path), got {origin!r}"
    return None


def _check_toml_file(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not Path(value).is_file():
        return f"expected a readable TOML file, got {value!r}"
    return None


def _check_mail_dir(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"expected a folder path, got {value!r}"
    return None


def _check_demo_bytes(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16 * 1024**3:
        return f"expected bytes 1..{16 * 1024**3}, got {str(value)!r}"
    return None


def _check_retention(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3650:
        return f"expected days 1..3650, got {str(value)!r}"
    return None


def _check_non_negative(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"expected an integer >= 0, got {str(value)!r}"
    return None


def _check_optional_secret(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value.strip() and len(value) <= 512):
        return None
    return "expected a non-empty secret of at most 512 characters"  # never echo it


_FEE_RATES: Final = (
    "deposit_fee_bps",
    "withdrawal_fee_bps",
    "conversion_fee_bps",
    "pro_deposit_fee_bps",
    "pro_withdrawal_fee_bps",
)


def _check_fee_rate(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 5_000:
        return f"expected basis points 0..5000 (250 is 2.5 %), got {str(value)!r}"
    return None


def _check_price(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        return f"expected US cents 1..1000000, got {str(value)!r}"
    return None


def _check_client_id(value: object) -> str | None:
    if value is None or (isinstance(value, str) and 0 < len(value) <= 255 and value.strip()):
        return None
    return "expected an OAuth client id of 1 to 255 characters"


def _check_portal_dir(value: object) -> str | None:
    if value is None or (isinstance(value, str) and (Path(value) / "index.html").is_file()):
        return None
    return f"expected a folder with the built portal's index.html, got {value!r}"


def _check_address_seed(value: object) -> str | None:
    if value is None or (isinstance(value, str) and 32 <= len(value) <= 512):
        return None
    return "expected a secret of 32 to 512 characters"  # never echo it


def _check_private_key(value: object) -> str | None:
    if value is None or (
        isinstance(value, str)
        and len(value) == 66
        and value.startswith("0x")
        and all(c in "0123456789abcdefABCDEF" for c in value[2:])
        and 0 < int(value, 16) < 2**256 - 2**128  # below the secp256k1 group order, roughly
    ):
        return None
    return "expected a private key: 0x and 64 hex digits"  # never echo it


def _check_poll_interval(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 50 <= value <= 600_000:
        return f"expected milliseconds 50..600000, got {str(value)!r}"
    return None


def _check_tv_delay(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 600:
        return f"expected seconds 0..600, got {str(value)!r}"
    return None


def _check_spectator_delay(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3600:
        return f"expected seconds 0..3600, got {str(value)!r}"
    return None


def _check_claim_ttl(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 5 <= value <= 3600:
        return f"expected an integer 5..3600, got {str(value)!r}"
    return None


def _check_rest_rate(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000_000:
        return f"expected an integer 1..10000000, got {str(value)!r}"
    return None


_PARSERS: Final[dict[str, Callable[[str], object]]] = {
    "host": _parse_str,
    "port": _int_parser(1, 65535),
    "database_url": _parse_str,
    "redis_url": _parse_optional_str,
    "redis_prefix": _parse_str,
    "log_level": lambda raw: raw.strip().lower(),
    "workers": _int_parser(1, None),
    "secret_key": _parse_optional_str,
    "public_url": _parse_optional_str,
    "allowed_origins": _parse_origins,
    "mail_dir": _parse_str,
    "blob_dir": _parse_str,
    "demo_bytes_max": _int_parser(1, 16 * 1024**3),
    "demo_retention_days": _int_parser(1, 3650),
    "blob_s3_endpoint": _parse_optional_str,
    "blob_s3_bucket": _parse_optional_str,
    "blob_s3_access_key": _parse_optional_str,
    "blob_s3_secret_key": _parse_optional_str,
    "blob_s3_region": _parse_str,
    "queues_file": _parse_optional_str,
    "rest_requests_per_min": _int_parser(1, 10_000_000),
    "idempotency_claim_ttl_s": _int_parser(5, 3600),
    "cs2_tv_delay_s": _int_parser(0, 600),
    "spectator_delay_min_s": _int_parser(0, 3600),
    "stripe_secret_key": _parse_optional_str,
    "stripe_webhook_secret": _parse_optional_str,
    "stripe_api_base": _parse_optional_str,
    "stripe_publishable_key": _parse_optional_str,
    "stripe_js_url": _parse_str,
    "withdrawal_daily_usd_cents": _int_parser(0, None),
    "withdrawal_approval_usd_cents": _int_parser(0, None),
    "withdrawal_review_score": _int_parser(0, None),
    **{name: _int_parser(0, 5_000) for name in _FEE_RATES},
    "pro_price_usd_cents": _int_parser(1, 1_000_000),
    "google_client_id": _parse_optional_str,
    "google_issuer": _parse_str,
    "google_gsi_url": _parse_str,
    "steam_openid_endpoint": _parse_optional_str,
    "portal_dir": _parse_optional_str,
    "chains_file": _parse_optional_str,
    "chain_address_seed": _parse_optional_str,
    "chain_hot_wallet_key": _parse_optional_str,
    "chain_poll_interval_ms": _int_parser(50, 600_000),
}

_CHECKS: Final[dict[str, Callable[[object], str | None]]] = {
    "host": _check_host,
    "port": _check_port,
    "database_url": _check_database_url,
    "redis_url": _check_redis_url,
    "redis_prefix": _check_redis_prefix,
    "log_level": _check_log_level,
    "workers": _check_workers,
    "secret_key": _check_secret_key,
    "public_url": _check_public_url,
    "allowed_origins": _check_origins,
    "mail_dir": _check_mail_dir,
    "blob_dir": _check_mail_dir,
    "demo_bytes_max": _check_demo_bytes,
    "demo_retention_days": _check_retention,
    "blob_s3_endpoint": _check_public_url,
    "blob_s3_bucket": _check_optional_secret,
    "blob_s3_access_key": _check_optional_secret,
    "blob_s3_secret_key": _check_optional_secret,
    "blob_s3_region": _check_mail_dir,
    "queues_file": _check_toml_file,
    "rest_requests_per_min": _check_rest_rate,
    "idempotency_claim_ttl_s": _check_claim_ttl,
    "cs2_tv_delay_s": _check_tv_delay,
    "spectator_delay_min_s": _check_spectator_delay,
    "stripe_secret_key": _check_optional_secret,
    "stripe_webhook_secret": _check_optional_secret,
    "stripe_api_base": _check_public_url,
    "stripe_publishable_key": _check_publishable_key,
    "stripe_js_url": _check_script_url,
    "withdrawal_daily_usd_cents": _check_non_negative,
    "withdrawal_approval_usd_cents": _check_non_negative,
    "withdrawal_review_score": _check_non_negative,
    **{name: _check_fee_rate for name in _FEE_RATES},
    "pro_price_usd_cents": _check_price,
    "google_client_id": _check_client_id,
    "google_issuer": _check_public_url,
    "google_gsi_url": _check_script_url,
    "steam_openid_endpoint": _check_public_url,
    "portal_dir": _check_portal_dir,
    "chains_file": _check_toml_file,
    "chain_address_seed": _check_address_seed,
    "chain_hot_wallet_key": _check_private_key,
    "chain_poll_interval_ms": _check_poll_interval,
}
