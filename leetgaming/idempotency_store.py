"""Idempotency keys kept in the app database: the shell around :mod:`wallet.idempotency`.

A key is claimed by inserting its row (a primary key on (subject, key): of concurrent first
requests exactly one inserts, the others see its row); a stale claim is taken over by a
compare-and-set on its claim time. The response is written when the handler returns, or the
row deleted when the response is one that is not kept. :meth:`purge` drops keys past their
retention (the sweeper calls it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from leetgaming.db import Database
from wallet import idempotency as idem

MIGRATIONS: Final = (
    """
    CREATE TABLE idempotency_keys (
        subject TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        claimed_at_s BIGINT NOT NULL,
        status INTEGER,
        body TEXT,
        PRIMARY KEY (subject, key)
    );
    CREATE INDEX idempotency_keys_by_age ON idempotency_keys (claimed_at_s)
    """,
)


@dataclass(frozen=True, slots=True)
class Claim:
    decision: idem.Decision
    record: idem.Record | None  # the stored record for REPLAY


class IdempotencyKeys:
    def __init__(
        self,
        db: Database,
        retention_s: int = idem.RETENTION_S,
        claim_ttl_s: int = idem.CLAIM_TTL_S,
    ) -> None:
        self.db = db
        self.retention_s = retention_s
        self.claim_ttl_s = claim_ttl_s

    async def start(self) -> None:
        await self.db.migrate("idempotency", MIGRATIONS)

    async def claim(self, subject: str, key: str, fingerprint: str, now_s: int) -> Claim:
        inserted = await self.db.execute(
            "INSERT INTO idempotency_keys (subject, key, fingerprint, claimed_at_s) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (subject, key) DO NOTHING",
            subject,
            key,
            fingerprint,
            now_s,
        )
        if inserted:
            return Claim(idem.Decision.RUN, None)
        row = await self.db.fetchone(
            "SELECT fingerprint, claimed_at_s, status, body FROM idempotency_keys "
            "WHERE subject = ? AND key = ?",
            subject,
            key,
        )
        if row is None:  # deleted (a response not kept) since the insert failed: try again
            return await self.claim(subject, key, fingerprint, now_s)
        record = idem.Record(
            row[0], int(row[1]), row[2], None if row[3] is None else row[3].encode()
        )
        decision = idem.decide(record, fingerprint, now_s, self.claim_ttl_s, self.retention_s)
        if decision is not idem.Decision.RUN:
            return Claim(decision, record)
        taken = await self.db.execute(
            "UPDATE idempotency_keys SET fingerprint = ?, claimed_at_s = ?, status = NULL, "
            "body = NULL WHERE subject = ? AND key = ? AND claimed_at_s = ?",
            fingerprint,
            now_s,
            subject,
            key,
            record.claimed_at_s,
        )
        return Claim(idem.Decision.RUN if taken else idem.Decision.IN_PROGRESS, None)

    async def finish(self, subject: str, key: str, status: int, body: bytes) -> None:
        if idem.saved(status):
            await self.db.execute(
                "UPDATE idempotency_keys SET status = ?, body = ? WHERE subject = ? AND key = ?",
                status,
                body.decode(),
                subject,
                key,
            )
        else:
            await self.release(subject, key)

    async def release(self, subject: str, key: str) -> None:
        await self.db.execute(
            "DELETE FROM idempotency_keys WHERE subject = ? AND key = ? AND status IS NULL",
            subject,
            key,
        )

    async def purge(self, now_s: int) -> int:
        return await self.db.execute(
            "DELETE FROM idempotency_keys WHERE claimed_at_s < ?", now_s - self.retention_s
        )
