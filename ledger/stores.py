"""Open the ledger store a database URL names: ``sqlite:///path`` or ``postgresql://…``."""

from __future__ import annotations

from .store import LedgerStore


async def open_store(url: str, *, schema: str = "ledger") -> LedgerStore:
    if url.startswith("sqlite:///"):
        from .sqlite_store import SqliteLedgerStore

        return await SqliteLedgerStore.open(url.removeprefix("sqlite:///") or ":memory:")
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres_store import PostgresLedgerStore

        return await PostgresLedgerStore.connect(url, schema=schema)
    raise ValueError("the ledger database URL must start with sqlite:/// or postgresql://")
