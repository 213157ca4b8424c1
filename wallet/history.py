"""A player's transaction history across their accounts, newest first, in stable pages.

A player has one ledger account per asset; the history is the merge of those accounts'
transfers by (timestamp, transfer id), newest first. A page ends at a cursor naming the last
row it holds; the next page starts strictly after it, so a row is never shown twice nor
skipped, even when two of the player's accounts have a transfer at the same nanosecond (a
timestamp is unique per account, not across accounts). Cursors are opaque to clients.
Pure: the shell fetches each account's transfers at or before the cursor's timestamp.
"""

from __future__ import annotations

import base64
import binascii
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from ledger import TransferFlags, TransferRecord

PAGE_ROWS_MAX: Final = 100
PAGE_ROWS_DEFAULT: Final = 25


class BadCursor(ValueError):
    pass


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """The position of one row: rows come in descending (timestamp, transfer id) order."""

    timestamp: int
    transfer_id: int

    def encode(self) -> str:
        raw = f"{self.timestamp}.{self.transfer_id:032x}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        if not isinstance(text, str) or not 1 <= len(text) <= 96:
            raise BadCursor("not a cursor of this API")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            stamp, _, ident = raw.partition(".")
            cursor = cls(int(stamp), int(ident, 16))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise BadCursor("not a cursor of this API") from None
        if cursor.timestamp < 0 or not 0 < cursor.transfer_id < 1 << 128 or len(ident) != 32:
            raise BadCursor("not a cursor of this API")
        return cursor


def position(record: TransferRecord) -> Cursor:
    return Cursor(record.timestamp, record.id)


def merge_page(
    pages: Iterable[Sequence[TransferRecord]], after: Cursor | None, rows_max: int
) -> list[TransferRecord]:
    """The first ``rows_max`` rows, newest first, strictly after ``after``, of the accounts'
    ``pages`` (each newest first, each reaching back at least as far as the rows it may add),
    without duplicates (a transfer between two of the player's own accounts shows once)."""
    merged = heapq.merge(*pages, key=position, reverse=True)
    out: list[TransferRecord] = []
    seen: set[int] = set()
    for record in merged:
        if after is not None and position(record) >= after:
            continue
        if record.id in seen:
            continue
        seen.add(record.id)
        out.append(record)
        if len(out) == rows_max:
            break
    return out


def state_of(record: TransferRecord) -> str:
    """What a row is, in a history's words."""
    flags = record.flags
    if flags & TransferFlags.PENDING:
        return "held"
    if flags & TransferFlags.EXPIRED:
        return "hold_expired"
    if flags & TransferFlags.VOID_PENDING:
        return "hold_released"
    if flags & TransferFlags.POST_PENDING:
        return "hold_posted"
    return "posted"
