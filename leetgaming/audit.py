"""The audit log: an append-only record of every money action and every admin action.

Each entry says who (``actor``: a user id, ``system`` or a webhook's source), did what
(``action``, a stable dotted name such as ``price.set`` or ``withdrawal.approve``), to what
(``subject``), when (``at_ns``), and a small JSON ``detail`` that never holds a secret or
personal data (no email, card number, address or key: ids and amounts only). The database
refuses UPDATE and DELETE on the table (a trigger on both SQLite and PostgreSQL), so an entry
once written stays as written. Entries are written in the transaction of the action they
record where there is one (:meth:`AuditLog.append` takes the caller's connection), so an
action and its entry commit together. Admins read it newest first, in cursor pages.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from leetgaming.db import Conn, Database, append_only

DETAIL_BYTES_MAX: Final = 2048
PAGE_ROWS_MAX: Final = 200

_TABLE: Final = """
    CREATE TABLE audit_entries (
        id TEXT PRIMARY KEY,
        at_ns BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_entries_by_time ON audit_entries (at_ns, id);
"""
MIGRATIONS_SQLITE: Final = (
    _TABLE + append_only("audit_entries", "sqlite", "entries are immutable"),
)
MIGRATIONS_POSTGRES: Final = (
    _TABLE + append_only("audit_entries", "postgresql", "entries are immutable"),
)


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    at_ns: int
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "at_ns": str(self.at_ns),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": self.detail,
        }


class AuditLog:
    def __init__(self, db: Database, clock_ns: Callable[[], int]) -> None:
        self.db = db
        self.clock_ns = clock_ns

    async def start(self) -> None:
        steps = MIGRATIONS_POSTGRES if self.db.dialect == "postgresql" else MIGRATIONS_SQLITE
        await self.db.migrate("audit", steps)

    async def append(
        self,
        conn: Conn | None,
        actor: str,
        action: str,
        subject: str,
        detail: Mapping[str, object] | None = None,
    ) -> Entry:
        """Write one entry, in ``conn``'s transaction when given."""
        raw = orjson.dumps(dict(detail or {}), option=orjson.OPT_SORT_KEYS)
        if len(raw) > DETAIL_BYTES_MAX:
            raise ValueError(f"an audit detail is at most {DETAIL_BYTES_MAX} bytes")
        entry = Entry(
            secrets.token_hex(16), self.clock_ns(), actor, action, subject, orjson.loads(raw)
        )
        await (conn or self.db).execute(
            "INSERT INTO audit_entries (id, at_ns, actor, action, subject, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            entry.id,
            entry.at_ns,
            actor,
            action,
            subject,
            raw.decode(),
        )
        return entry

    async def page(
        self, before: tuple[int, str] | None, rows_max: int, action: str | None = None
    ) -> list[Entry]:
        """Entries newest first, strictly older than ``before`` (at_ns, id)."""
        rows_max = max(1, min(rows_max, PAGE_ROWS_MAX))
        where, args = [], []
        if before is not None:
            where.append("(at_ns < ? OR (at_ns = ? AND id < ?))")
            args += [before[0], before[0], before[1]]
        if action is not None:
            where.append("action = ?")
            args.append(action)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = await self.db.fetch(
            "SELECT id, at_ns, actor, action, subject, detail FROM audit_entries "  # nosec B608
            f"{clause}ORDER BY at_ns DESC, id DESC LIMIT ?",
            *args,
            rows_max,
        )
        return [Entry(r[0], int(r[1]), r[2], r[3], r[4], orjson.loads(r[5])) for r in rows]
