"""The SQLite ledger store: the embedded adapter (stdlib ``sqlite3``, WAL).

Same tables and rules as the PostgreSQL store. Ids are 16-byte BLOBs; amounts and counters are
decimal TEXT, because SQLite integers stop at 64 bits and wei do not. All database work runs on
one thread owned by the store; ``apply`` runs inside ``BEGIN IMMEDIATE``, which takes SQLite's
single write lock, so several processes sharing the file are serialised by SQLite itself.
``synchronous = FULL``: a batch is answered only after its COMMIT reached the disk.
Triggers refuse UPDATE and DELETE on ``transfers``, DELETE on ``accounts`` and any change of an
account's identity.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .account import Account, AccountFlags, AccountState, Balance
from .asset import BUILTIN_ASSETS, Asset, AssetKind
from .posting import (
    Command,
    LedgerView,
    TransferOutcome,
    apply_batch,
    batch_keys,
    check_account,
    plan_accounts,
)
from .result import CreateAccountResult
from .store import ACCOUNT_COLUMNS, TRANSFER_COLUMNS, HistoryPage, history_window, valid_ids
from .transfer import Transfer, TransferFlags, TransferRecord

T = TypeVar("T")
_ACCOUNT_FLAGS = {v: AccountFlags(v) for v in range(8)}
_TRANSFER_FLAGS = {v: TransferFlags(v) for v in range(32)}
SCAN_PAGE_ROWS = 5000
_BUSY_TIMEOUT_MS = 10_000

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS assets (
    code TEXT PRIMARY KEY,
    scale INTEGER NOT NULL CHECK (scale BETWEEN 0 AND 36),
    kind TEXT NOT NULL,
    unit INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS accounts (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    asset TEXT NOT NULL REFERENCES assets (code),
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    flags INTEGER NOT NULL,
    code INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    debits_pending TEXT NOT NULL,
    debits_posted TEXT NOT NULL,
    credits_pending TEXT NOT NULL,
    credits_posted TEXT NOT NULL,
    last_timestamp INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transfers (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    debit_account_id BLOB NOT NULL,
    credit_account_id BLOB NOT NULL,
    amount TEXT NOT NULL,
    asset TEXT NOT NULL,
    code INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    pending_id BLOB,
    timeout_s INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    metadata TEXT CHECK (length(metadata) <= 4096),
    dr_debits_pending TEXT NOT NULL,
    dr_debits_posted TEXT NOT NULL,
    dr_credits_pending TEXT NOT NULL,
    dr_credits_posted TEXT NOT NULL,
    cr_debits_pending TEXT NOT NULL,
    cr_debits_posted TEXT NOT NULL,
    cr_credits_pending TEXT NOT NULL,
    cr_credits_posted TEXT NOT NULL,
    CHECK (debit_account_id <> credit_account_id)
) STRICT;
CREATE INDEX IF NOT EXISTS transfers_debit_ts ON transfers (debit_account_id, timestamp);
CREATE INDEX IF NOT EXISTS transfers_credit_ts ON transfers (credit_account_id, timestamp);
CREATE UNIQUE INDEX IF NOT EXISTS transfers_pending_once
    ON transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS transfers_expiry ON transfers (expires_at) WHERE expires_at > 0;
CREATE TRIGGER IF NOT EXISTS transfers_no_update BEFORE UPDATE ON transfers
BEGIN SELECT RAISE(ABORT, 'ledger transfers: UPDATE refused: transfers are immutable'); END;
CREATE TRIGGER IF NOT EXISTS transfers_no_delete BEFORE DELETE ON transfers
BEGIN SELECT RAISE(ABORT, 'ledger transfers: DELETE refused: transfers are immutable'); END;
CREATE TRIGGER IF NOT EXISTS accounts_no_delete BEFORE DELETE ON accounts
BEGIN SELECT RAISE(ABORT, 'ledger accounts: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS accounts_identity BEFORE UPDATE ON accounts
WHEN NEW.id IS NOT OLD.id OR NEW.asset IS NOT OLD.asset OR NEW.owner IS NOT OLD.owner
  OR NEW.kind IS NOT OLD.kind OR NEW.flags IS NOT OLD.flags OR NEW.code IS NOT OLD.code
  OR NEW.timestamp IS NOT OLD.timestamp OR NEW.last_timestamp < OLD.last_timestamp
BEGIN SELECT RAISE(ABORT, 'ledger accounts: an account''s identity never changes'); END;
"""

_INSERT_TRANSFER = f"INSERT INTO transfers ({TRANSFER_COLUMNS}) VALUES ({', '.join('?' * 20)})"  # nosec B608
_UPDATE_ACCOUNT = (
    "UPDATE accounts SET debits_pending = ?, debits_posted = ?, credits_pending = ?, "
    "credits_posted = ?, last_timestamp = ? WHERE id = ?"
)
_CHUNK = 500  # SQLite's default limit on bound parameters is 32766; stay far below it


def _b(value: int) -> bytes:
    return value.to_bytes(16, "big")


def _i(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _record(row: Sequence[Any]) -> TransferRecord:
    return TransferRecord(
        id=_i(row[0]),
        debit_account_id=_i(row[1]),
        credit_account_id=_i(row[2]),
        amount=int(row[3]),
        asset=row[4],
        code=row[5],
        flags=_TRANSFER_FLAGS[row[6]],
        pending_id=_i(row[7]) if row[7] is not None else 0,
        timeout_s=row[8],
        expires_at=row[9],
        timestamp=row[10],
        metadata=row[11],
        debit_after=Balance(int(row[12]), int(row[13]), int(row[14]), int(row[15])),
        credit_after=Balance(int(row[16]), int(row[17]), int(row[18]), int(row[19])),
    )


def _record_row(r: TransferRecord) -> tuple[Any, ...]:
    d, c = r.debit_after, r.credit_after
    return (
        _b(r.id),
        _b(r.debit_account_id),
        _b(r.credit_account_id),
        str(r.amount),
        r.asset,
        r.code,
        int(r.flags),
        _b(r.pending_id) if r.pending_id else None,
        r.timeout_s,
        r.expires_at,
        r.timestamp,
        r.metadata,
        str(d.debits_pending),
        str(d.debits_posted),
        str(d.credits_pending),
        str(d.credits_posted),
        str(c.debits_pending),
        str(c.debits_posted),
        str(c.credits_pending),
        str(c.credits_posted),
    )


def _account(row: Sequence[Any]) -> AccountState:
    return AccountState(
        id=_i(row[0]),
        asset=row[1],
        owner=row[2],
        kind=row[3],
        flags=_ACCOUNT_FLAGS[row[4]],
        code=row[5],
        timestamp=row[6],
        balance=Balance(int(row[7]), int(row[8]), int(row[9]), int(row[10])),
        last_timestamp=row[11],
    )


def _chunks(items: Sequence[T], size: int = _CHUNK) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _asset_codes(requests: Sequence[Sequence[Command]]) -> set[str]:
    return {
        c.asset for r in requests for c in r if isinstance(c, Transfer) and isinstance(c.asset, str)
    }


class SqliteLedgerStore:
    """See the module docstring. Create with :meth:`open`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._assets: dict[str, Asset] | None = None

    @classmethod
    async def open(cls, path: str) -> SqliteLedgerStore:
        store = cls(path)
        await store._run(store._connect)
        return store

    def _connect(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._conn = conn

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the SQLite ledger store is closed")
        return self._conn

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    async def migrate(self) -> None:
        await self._run(lambda: self._db.executescript(_SCHEMA_SQL))
        await self.create_assets(BUILTIN_ASSETS)

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(close)
        self._executor.shutdown(wait=True)

    async def ping(self) -> None:
        await self._run(lambda: self._db.execute("SELECT 1").fetchone())

    async def create_assets(self, assets: Sequence[Asset]) -> list[CreateAccountResult]:
        def work(db: sqlite3.Connection) -> list[CreateAccountResult]:
            results = []
            for asset in assets:
                row = db.execute(
                    "SELECT scale, kind, unit FROM assets WHERE code = ?", (asset.code,)
                ).fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO assets (code, scale, kind, unit) VALUES (?, ?, ?, ?)",
                        (asset.code, asset.scale, str(asset.kind), int(asset.unit)),
                    )
                    results.append(CreateAccountResult.OK)
                elif tuple(row) == (asset.scale, str(asset.kind), int(asset.unit)):
                    results.append(CreateAccountResult.EXISTS)
                else:
                    results.append(CreateAccountResult.EXISTS_WITH_DIFFERENT_FIELDS)
            return results

        self._assets = None
        return await self._run(self._write, work)

    def _load_assets(self) -> dict[str, Asset]:
        rows = self._db.execute("SELECT code, scale, kind, unit FROM assets").fetchall()
        return {r[0]: Asset(r[0], r[1], AssetKind(r[2]), bool(r[3])) for r in rows}

    def _known_assets(self, codes: set[str]) -> dict[str, Asset]:
        if self._assets is None or not codes <= self._assets.keys():
            self._assets = self._load_assets()
        return self._assets

    async def assets(self) -> dict[str, Asset]:
        return await self._run(self._load_assets)

    def _accounts_by_id(
        self, db: sqlite3.Connection, ids: Sequence[int]
    ) -> dict[int, AccountState]:
        found: dict[int, AccountState] = {}
        for chunk in _chunks(list(ids)):
            # the IN list is placeholders only
            rows = db.execute(  # nosemgrep: sql-built-from-strings
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id IN ({','.join('?' * len(chunk))})",  # nosec B608
                [_b(i) for i in chunk],
            ).fetchall()
            for row in rows:
                state = _account(row)
                found[state.id] = state
        return found

    def _records_where(
        self, db: sqlite3.Connection, column: str, ids: Sequence[int]
    ) -> list[TransferRecord]:
        records: list[TransferRecord] = []
        for chunk in _chunks(list(ids)):
            rows = db.execute(
                f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE {column} IN "  # nosec B608
                f"({','.join('?' * len(chunk))})",
                [_b(i) for i in chunk],
            ).fetchall()
            records.extend(map(_record, rows))
        return records

    async def create_accounts(
        self, accounts: Sequence[Account], now_ns: int
    ) -> list[CreateAccountResult]:
        def work(db: sqlite3.Connection) -> list[CreateAccountResult]:
            known = self._known_assets({a.asset for a in accounts if isinstance(a.asset, str)})
            ids = [a.id for a in accounts if check_account(a) is None]
            plan = plan_accounts(accounts, self._accounts_by_id(db, ids), known, now_ns)
            db.executemany(
                f"INSERT INTO accounts ({ACCOUNT_COLUMNS}) "  # nosec B608
                "VALUES (?, ?, ?, ?, ?, ?, ?, '0', '0', '0', '0', ?)",
                [
                    (_b(a.id), a.asset, a.owner, a.kind, int(a.flags), a.code, now_ns, now_ns)
                    for a in plan.new
                ],
            )
            return plan.results

        return await self._run(self._write, work)

    async def apply(
        self, requests: Sequence[Sequence[Command]], now_ns: int
    ) -> list[list[TransferOutcome]]:
        return await self._run(self._write, lambda db: self._apply(db, requests, now_ns))

    def _apply(
        self, db: sqlite3.Connection, requests: Sequence[Sequence[Command]], now_ns: int
    ) -> list[list[TransferOutcome]]:
        keys = batch_keys(requests)
        assets = self._known_assets(_asset_codes(requests))
        transfers = {r.id: r for r in self._records_where(db, "id", list(keys.transfer_ids))}
        resolutions = {
            r.pending_id: r for r in self._records_where(db, "pending_id", list(keys.pending_ids))
        }
        account_ids = set(keys.account_ids)
        for pending_id in keys.pending_ids:
            pending = transfers.get(pending_id)
            if pending is not None:
                account_ids.add(pending.debit_account_id)
                account_ids.add(pending.credit_account_id)
        accounts = self._accounts_by_id(db, list(account_ids))
        outcome = apply_batch(
            LedgerView(accounts, transfers, resolutions, assets), requests, now_ns
        )
        if outcome.records:
            db.executemany(_INSERT_TRANSFER, [_record_row(r) for r in outcome.records])
        if outcome.accounts:
            db.executemany(
                _UPDATE_ACCOUNT,
                [
                    (
                        str(a.balance.debits_pending),
                        str(a.balance.debits_posted),
                        str(a.balance.credits_pending),
                        str(a.balance.credits_posted),
                        a.last_timestamp,
                        _b(a.id),
                    )
                    for a in outcome.accounts.values()
                ],
            )
        return outcome.outcomes

    async def lookup_accounts(self, ids: Sequence[int]) -> list[AccountState]:
        found = await self._run(self._accounts_by_id, self._db, valid_ids(ids))
        return [found[i] for i in ids if i in found]

    async def lookup_transfers(self, ids: Sequence[int]) -> list[TransferRecord]:
        records = await self._run(self._records_where, self._db, "id", valid_ids(ids))
        found = {r.id: r for r in records}
        return [found[i] for i in ids if i in found]

    async def history(
        self,
        account_id: int,
        *,
        cursor: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> HistoryPage:
        limit, op, order, bound = history_window(cursor, limit, newest_first)
        sql = (
            f"SELECT * FROM (SELECT {TRANSFER_COLUMNS} FROM transfers WHERE debit_account_id = ?1 "  # nosec B608
            f"AND timestamp {op} ?2 ORDER BY timestamp {order} LIMIT ?3) UNION ALL "
            f"SELECT * FROM (SELECT {TRANSFER_COLUMNS} FROM transfers WHERE credit_account_id = ?1 "
            f"AND timestamp {op} ?2 ORDER BY timestamp {order} LIMIT ?3) "
            f"ORDER BY timestamp {order} LIMIT ?3"
        )
        rows = await self._run(
            lambda: self._db.execute(sql, (_b(account_id), bound, limit + 1)).fetchall()
        )
        records = [_record(r) for r in rows[:limit]]
        return HistoryPage(records, records[-1].timestamp if len(rows) > limit else None)

    async def balance_at(self, account_id: int, timestamp_ns: int) -> Balance:
        sql = (
            f"SELECT * FROM (SELECT timestamp AS ts, 1, {TRANSFER_COLUMNS} FROM transfers "  # nosec B608
            "WHERE debit_account_id = ?1 AND timestamp <= ?2 ORDER BY timestamp DESC LIMIT 1) "
            f"UNION ALL SELECT * FROM (SELECT timestamp AS ts, 0, {TRANSFER_COLUMNS} FROM transfers "
            "WHERE credit_account_id = ?1 AND timestamp <= ?2 ORDER BY timestamp DESC LIMIT 1) "
            "ORDER BY ts DESC LIMIT 1"
        )
        row = await self._run(
            lambda: self._db.execute(sql, (_b(account_id), timestamp_ns)).fetchone()
        )
        if row is None:
            return Balance()
        record = _record(row[2:])
        return record.debit_after if row[1] else record.credit_after

    async def due_pending(self, now_ns: int, since_ns: int, limit: int) -> list[int]:
        rows = await self._run(
            lambda: self._db.execute(
                "SELECT t.id FROM transfers t WHERE t.expires_at > ? AND t.expires_at <= ? "
                "AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = t.id) "
                "ORDER BY t.expires_at LIMIT ?",
                (max(since_ns, 0), now_ns, limit),
            ).fetchall()
        )
        return [_i(r[0]) for r in rows]

    async def scan_accounts(self) -> AsyncIterator[AccountState]:
        async for row in self._scan("accounts", ACCOUNT_COLUMNS):
            yield _account(row)

    async def scan_transfers(self) -> AsyncIterator[TransferRecord]:
        async for row in self._scan("transfers", TRANSFER_COLUMNS):
            yield _record(row)

    async def _scan(self, table: str, columns: str) -> AsyncIterator[Sequence[Any]]:
        after = b"\x00" * 16
        sql = f"SELECT {columns} FROM {table} WHERE id > ? ORDER BY id LIMIT ?"  # nosec B608
        while True:
            rows = await self._run(
                lambda a=after: self._db.execute(sql, (a, SCAN_PAGE_ROWS)).fetchall()
            )
            for row in rows:
                yield row
            if len(rows) < SCAN_PAGE_ROWS:
                return
            after = rows[-1][0]
