"""Idempotency keys with Stripe's semantics, as pure rules (the store lives in the shell).

A client sends ``Idempotency-Key: <key>`` with a POST. The first request with a key runs and
its response is saved under (caller, key) with a fingerprint of the request (method, path and
the body's canonical JSON). Later requests with the same key:

- the same fingerprint and a saved response: the response is replayed, marked
  ``Idempotent-Replayed: true``; nothing runs again;
- the same fingerprint while the first is still running: refused, 409 ``idempotency_in_progress``
  (retry later); once a running claim is older than ``claim_ttl_s`` (its process died) the
  request runs again, which the handlers make safe by deriving every effect's id from the key;
- a different fingerprint: refused, 422 ``idempotency_key_reused``, whatever the first's state.

Only a request that took effect (a 2xx answer) has its response kept. A refusal, whatever its
status (malformed input, a missing asset, insufficient funds, a failure on our side), changed
nothing by this product's rule, so it is not kept and the same key may be sent again, as at
Stripe for requests that did not start executing. Keys are kept ``retention_s`` (24 h by
default) after their first use.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Final

import orjson

KEY_CHARS_MAX: Final = 255
RETENTION_S: Final = 24 * 3600
CLAIM_TTL_S: Final = 60


class BadKey(ValueError):
    """The header's value is not a usable key."""


def check_key(key: str | None) -> str:
    """The key, or :class:`BadKey` saying what is wrong with it."""
    if key is None or key == "":
        raise BadKey("send an Idempotency-Key header (a unique value per operation)")
    if len(key) > KEY_CHARS_MAX or not key.isprintable() or not key.isascii():
        raise BadKey(f"an Idempotency-Key is 1..{KEY_CHARS_MAX} printable ASCII characters")
    return key


def fingerprint(method: str, path: str, body: object) -> str:
    """A digest of what the request asks: its method, path and canonical body (sorted keys, so
    a client that re-serialises the same object in another order is the same request)."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def saved(status: int) -> bool:
    """Whether a response with ``status`` is kept for replay."""
    return 200 <= status < 300


@dataclass(frozen=True, slots=True)
class Record:
    fingerprint: str
    claimed_at_s: int
    status: int | None  # None while the first request runs
    body: bytes | None


class Decision(enum.Enum):
    RUN = "run"  # claim the key (or take over a stale claim) and run
    REPLAY = "replay"
    IN_PROGRESS = "in_progress"
    REUSED = "reused"


def decide(
    record: Record | None,
    request_fingerprint: str,
    now_s: int,
    claim_ttl_s: int = CLAIM_TTL_S,
    retention_s: int = RETENTION_S,
) -> Decision:
    """What to do with a request whose key has ``record`` (None: never used, or purged). A
    record older than ``retention_s`` counts as gone."""
    if record is None or now_s - record.claimed_at_s >= retention_s:
        return Decision.RUN
    if record.fingerprint != request_fingerprint:
        return Decision.REUSED
    if record.status is not None:
        return Decision.REPLAY
    if now_s - record.claimed_at_s >= claim_ttl_s:
        return Decision.RUN
    return Decision.IN_PROGRESS
