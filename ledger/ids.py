"""Identifiers of accounts and transfers.

Ids are unsigned 128-bit integers chosen by the client, as in TigerBeetle: the id is what makes a
retry safe. 0 and 2**128 - 1 are reserved (0 means "none" in optional fields such as
``pending_id``). Stores keep ids as 16 bytes (PostgreSQL ``uuid``, SQLite ``BLOB``).

Every movement of value in the product gets a deterministic id, derived with :func:`derive_id`
from what the movement *is* (for example ``derive_id("prize", tournament_id, place)``), so a
flow that crashes and runs again produces the same ids and the ledger answers ``exists``.
"""

from __future__ import annotations

import hashlib
import uuid

ID_BITS = 128
ID_NONE = 0
ID_MAX = (1 << ID_BITS) - 2  # 2**128 - 1 is reserved, as in TigerBeetle
ID_MIN = 1


def is_valid_id(value: int) -> bool:
    """True when ``value`` may name an account or a transfer."""
    return type(value) is int and ID_MIN <= value <= ID_MAX


def parse_id(value: object) -> int:
    """Parse an id from an int, a ``uuid.UUID`` or its text (UUID form or 32 hex digits).

    Raises ``ValueError`` with a precise message for anything else.
    """
    if isinstance(value, bool):
        raise ValueError("an id must be an integer or a UUID, not a boolean")
    if isinstance(value, int):
        parsed = value
    elif isinstance(value, uuid.UUID):
        parsed = value.int
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 40:
            raise ValueError("an id is at most 36 characters of UUID text")
        try:
            parsed = uuid.UUID(text).int
        except ValueError:
            raise ValueError(f"not a UUID: {text[:40]!r}") from None
    else:
        raise ValueError(f"an id must be an integer or a UUID, not {type(value).__name__}")
    if not ID_MIN <= parsed <= ID_MAX:
        raise ValueError("an id must be between 1 and 2**128 - 2")
    return parsed


def id_to_uuid(value: int) -> uuid.UUID:
    return uuid.UUID(int=value)


def id_to_text(value: int) -> str:
    return str(uuid.UUID(int=value))


def derive_id(namespace: str, *parts: object) -> int:
    """A deterministic id for the movement named by ``namespace`` and ``parts``.

    The parts are joined unambiguously (length-prefixed) and hashed with BLAKE2b-128, so
    ``derive_id("a", "bc")`` and ``derive_id("ab", "c")`` differ. Parts are rendered with
    ``str()``; pass ints, strings or UUIDs.
    """
    digest = hashlib.blake2b(digest_size=16, person=b"leetgaming.id")
    for part in (namespace, *parts):
        encoded = str(part).encode()
        digest.update(len(encoded).to_bytes(4, "big"))
        digest.update(encoded)
    value = int.from_bytes(digest.digest(), "big")
    # Map the two reserved values into the valid range; the chance is 2**-127.
    if value == ID_NONE or value > ID_MAX:
        value = ID_MIN
    return value


def time_ordered_id(now_ms: int, random_bits: int) -> int:
    """A new id whose high 48 bits are the time in ms and low 80 bits random (as a ULID).

    Ids that grow with time land at the right edge of the primary-key index, so inserting them
    touches a few hot pages instead of a random page per transfer: with random ids the index
    outgrows memory and every insert becomes a disk read. The caller passes the clock and the
    randomness (``random.getrandbits(80)``), so this stays a pure function.
    """
    if not 0 <= now_ms < 1 << 48:
        raise ValueError("now_ms must fit 48 bits")
    value = (now_ms << 80) | (random_bits & ((1 << 80) - 1))
    return value if ID_MIN <= value <= ID_MAX else ID_MIN
