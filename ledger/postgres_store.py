"""The PostgreSQL ledger store (asyncpg): the distributed adapter.

Tables live in one schema (``ledger`` by default). Ids are ``uuid`` (16 bytes); amounts and
counters ``numeric(39,0)``, since wei amounts do not fit 64 bits. One ``transfers`` row carries
both legs of a transfer and both accounts' counters after it; there is no foreign key from
``transfers`` to ``accounts``, because a foreign key to a hot row (the platform's fee account)
takes a lock on it for every insert. The posting rules check that both accounts exist, and
reconciliation checks it again.

Two ways to apply a batch, both correct with any number of writers in any number of
processes; no process owns any account:

- The fast path (a batch of new transfers): the posting rules run on the accounts as this
  process last saw them (a bounded cache filled from the database), and one autocommitted
  statement locks those accounts in id order, checks that each one's ``last_timestamp`` (which
  every change moves forward) is still the one seen, updates them and inserts the records; if
  any account changed meanwhile the statement fails whole and the batch takes the locked path.
  A batch whose rules say anything but ``ok`` (which a stale view could cause) also takes the
  locked path. One round trip and one COMMIT per batch.
- The locked path (holds, retries, conflicts, failures): one transaction locks the batch's
  accounts with ``SELECT … ORDER BY id FOR UPDATE``, reads the records it needs, runs the rules
  on current counters and writes.

Either way the lock on a hot account is taken once per batch, not once per transfer, which is
what keeps a hot fee account from serialising all traffic. Records are read before any lock; a
concurrent writer that records the same id or resolves the same hold first makes our INSERT fail
on a unique index, and the batch runs again on the locked path.

The database refuses UPDATE, DELETE and TRUNCATE on ``transfers``, and on ``accounts`` any
change of identity, any decrease of a posted counter and any DELETE (triggers).
Every connection runs with ``synchronous_commit = on``: a batch is answered only once its
COMMIT is durable.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import asyncpg

from .account import Account, AccountFlags, AccountState, Balance
from .asset import BUILTIN_ASSETS, Asset, AssetKind
from .posting import (
    BatchKeys,
    Command,
    LedgerView,
    TransferOutcome,
    apply_batch,
    batch_keys,
    check_account,
    needs_records,
    plan_accounts,
)
from .result import CreateAccountResult
from .store import ACCOUNT_COLUMNS, TRANSFER_COLUMNS, HistoryPage, history_window, valid_ids
from .transfer import Transfer, TransferFlags, TransferRecord

_ACCOUNT_FLAGS = {v: AccountFlags(v) for v in range(8)}
_TRANSFER_FLAGS = {v: TransferFlags(v) for v in range(32)}
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_RETRIES_MAX = 8
SCAN_PAGE_ROWS = 5000
ACCOUNT_CACHE_MAX = 1_000_000


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection given back, besides ending an open transaction
    (asyncpg always does that): nothing. The store keeps no session state (its settings are
    startup parameters, its advisory lock is per transaction), so the default ``RESET ALL``
    and unlocks, a round trip per release, are saved."""
    del conn


class _HoldAppeared(Exception):
    """A hold the batch resolves was recorded after the batch first looked for it."""


# Errors after which a batch is decided again on the locked path: the transaction rolled back,
# nothing of it was written. Every path locks accounts in id order and inserts records in id
# order after locking, so writers wait on each other in one direction only; a deadlock the
# database still breaks (a hold resolved by two batches in crossing order) is retried.
_RETRY_LOCKED = (
    _HoldAppeared,
    asyncpg.SerializationError,
    asyncpg.UniqueViolationError,
    asyncpg.DeadlockDetectedError,
)

_SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.assets (
    code text PRIMARY KEY,
    scale smallint NOT NULL CHECK (scale BETWEEN 0 AND 36),
    kind text NOT NULL,
    unit boolean NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.accounts (
    id uuid PRIMARY KEY,
    asset text NOT NULL REFERENCES {s}.assets (code),
    owner text NOT NULL,
    kind text NOT NULL,
    flags integer NOT NULL,
    code integer NOT NULL,
    timestamp bigint NOT NULL,
    debits_pending numeric(39, 0) NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted numeric(39, 0) NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending numeric(39, 0) NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted numeric(39, 0) NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    last_timestamp bigint NOT NULL,
    CHECK (flags & 2 = 0 OR debits_pending + debits_posted <= credits_posted),
    CHECK (flags & 4 = 0 OR credits_pending + credits_posted <= debits_posted)
);
-- Counters change on every transfer: leave room in each page so the new row version stays
-- on the same page (a HOT update, no index write).
ALTER TABLE {s}.accounts SET (fillfactor = 50);
CREATE TABLE IF NOT EXISTS {s}.transfers (
    id uuid PRIMARY KEY,
    debit_account_id uuid NOT NULL,
    credit_account_id uuid NOT NULL,
    amount numeric(39, 0) NOT NULL CHECK (amount >= 0),
    asset text NOT NULL,
    code integer NOT NULL,
    flags integer NOT NULL,
    pending_id uuid,
    timeout_s bigint NOT NULL,
    expires_at bigint NOT NULL,
    timestamp bigint NOT NULL,
    metadata text CHECK (octet_length(metadata) <= 4096),
    dr_debits_pending numeric(39, 0) NOT NULL,
    dr_debits_posted numeric(39, 0) NOT NULL,
    dr_credits_pending numeric(39, 0) NOT NULL,
    dr_credits_posted numeric(39, 0) NOT NULL,
    cr_debits_pending numeric(39, 0) NOT NULL,
    cr_debits_posted numeric(39, 0) NOT NULL,
    cr_credits_pending numeric(39, 0) NOT NULL,
    cr_credits_posted numeric(39, 0) NOT NULL,
    CHECK (debit_account_id <> credit_account_id)
);
CREATE INDEX IF NOT EXISTS transfers_debit_ts ON {s}.transfers (debit_account_id, timestamp);
CREATE INDEX IF NOT EXISTS transfers_credit_ts ON {s}.transfers (credit_account_id, timestamp);
CREATE UNIQUE INDEX IF NOT EXISTS transfers_pending_once
    ON {s}.transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS transfers_expiry ON {s}.transfers (expires_at) WHERE expires_at > 0;

CREATE OR REPLACE FUNCTION {s}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger %: % refused: transfers are immutable; post a reversing transfer',
        TG_TABLE_NAME, TG_OP USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE OR REPLACE FUNCTION {s}.require_current(current boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT current THEN
        RAISE EXCEPTION 'ledger: accounts changed since this writer read them'
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
END $$;
CREATE OR REPLACE FUNCTION {s}.refuse_account_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger accounts: % refused: an account is never deleted, its identity never changes and its posted counters never decrease', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
DROP TRIGGER IF EXISTS transfers_immutable ON {s}.transfers;
CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE ON {s}.transfers
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change();
DROP TRIGGER IF EXISTS transfers_no_truncate ON {s}.transfers;
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON {s}.transfers
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
-- The WHEN condition is evaluated without calling PL/pgSQL, so the guard costs little on the
-- hot path (every transfer updates two accounts).
DROP TRIGGER IF EXISTS accounts_guard ON {s}.accounts;
CREATE TRIGGER accounts_guard BEFORE UPDATE ON {s}.accounts FOR EACH ROW
    WHEN (NEW.id <> OLD.id OR NEW.asset <> OLD.asset OR NEW.owner <> OLD.owner
          OR NEW.kind <> OLD.kind OR NEW.flags <> OLD.flags OR NEW.code <> OLD.code
          OR NEW.timestamp <> OLD.timestamp OR NEW.debits_posted < OLD.debits_posted
          OR NEW.credits_posted < OLD.credits_posted OR NEW.last_timestamp < OLD.last_timestamp)
    EXECUTE FUNCTION {s}.refuse_account_change();
DROP TRIGGER IF EXISTS accounts_no_delete ON {s}.accounts;
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON {s}.accounts
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_account_change();
DROP TRIGGER IF EXISTS accounts_no_truncate ON {s}.accounts;
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON {s}.accounts
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
"""


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Ids travel as 16 big-endian bytes and come back as ints; numerics as exact decimal text.
    await conn.set_type_codec(
        "uuid",
        encoder=lambda v: v.to_bytes(16, "big"),
        decoder=lambda b: int.from_bytes(b, "big"),
        schema="pg_catalog",
        format="binary",
    )
    await conn.set_type_codec(
        "numeric", encoder=str, decoder=int, schema="pg_catalog", format="text"
    )


def _record(row: Any) -> TransferRecord:
    return TransferRecord(
        id=row[0],
        debit_account_id=row[1],
        credit_account_id=row[2],
        amount=row[3],
        asset=row[4],
        code=row[5],
        flags=_TRANSFER_FLAGS[row[6]],
        pending_id=row[7] or 0,
        timeout_s=row[8],
        expires_at=row[9],
        timestamp=row[10],
        metadata=row[11],
        debit_after=Balance(row[12], row[13], row[14], row[15]),
        credit_after=Balance(row[16], row[17], row[18], row[19]),
    )


def _account(row: Any) -> AccountState:
    return AccountState(
        id=row[0],
        asset=row[1],
        owner=row[2],
        kind=row[3],
        flags=_ACCOUNT_FLAGS[row[4]],
        code=row[5],
        timestamp=row[6],
        balance=Balance(row[7], row[8], row[9], row[10]),
        last_timestamp=row[11],
    )


class PostgresLedgerStore:
    """See the module docstring. Create with :meth:`connect`."""

    def __init__(self, pool: asyncpg.Pool, schema: str, dsn: str) -> None:
        self._pool = pool
        self.dsn = dsn  # may hold a password: never log it
        self.schema = schema
        s = schema
        self._sql_load_records = (
            f"SELECT {TRANSFER_COLUMNS} FROM {s}.transfers WHERE id = ANY($1::uuid[])"  # nosec B608
        )
        self._sql_load_records_and_resolutions = (
            f"SELECT {TRANSFER_COLUMNS} FROM {s}.transfers WHERE id = ANY($1::uuid[]) "  # nosec B608
            f"UNION SELECT {TRANSFER_COLUMNS} FROM {s}.transfers WHERE pending_id = ANY($2::uuid[])"
        )
        self._sql_lock_accounts = (
            f"SELECT {ACCOUNT_COLUMNS} FROM {s}.accounts WHERE id = ANY($1::uuid[]) "  # nosec B608
            "ORDER BY id FOR UPDATE"
        )
        # Each column travels as one PostgreSQL array literal in a text parameter: building
        # the literal is a C-level join, three times cheaper for this process than binding a
        # Python list element by element.
        insert = (
            f"INSERT INTO {s}.transfers ({TRANSFER_COLUMNS}) SELECT * FROM unnest("  # nosec B608
            "$1::text::uuid[], $2::text::uuid[], $3::text::uuid[], $4::text::numeric[], "
            "$5::text::text[], $6::text::int[], $7::text::int[], $8::text::uuid[], "
            "$9::text::bigint[], $10::text::bigint[], $11::text::bigint[], $12::text::text[], "
            "$13::text::numeric[], $14::text::numeric[], $15::text::numeric[], "
            "$16::text::numeric[], $17::text::numeric[], $18::text::numeric[], "
            "$19::text::numeric[], $20::text::numeric[])"
        )
        # The locked path's write (its accounts are locked already): one round trip.
        self._sql_write = (
            f"WITH ins AS ({insert}) "  # nosec B608
            f"UPDATE {s}.accounts AS a SET debits_pending = u.dp, debits_posted = u.dpo, "
            "credits_pending = u.cp, credits_posted = u.cpo, last_timestamp = u.ts "
            "FROM unnest($21::text::uuid[], $22::text::numeric[], $23::text::numeric[], "
            "$24::text::numeric[], $25::text::numeric[], $26::text::bigint[]) "
            "AS u(id, dp, dpo, cp, cpo, ts) WHERE a.id = u.id"
        )
        # The fast path's statement: update each account only if it is as this process saw it,
        # and fail whole (serialization_failure) unless every one was. The accounts come sorted
        # by id and the ledger's connections plan joins as nested loops, so the UPDATE locks
        # them in id order, as the locked path does: writers never wait on each other in a
        # cycle. The INSERT, referenced by nothing, runs last, after every lock is held.
        self._sql_write_if_current = (
            f"WITH ins AS ({insert}), "  # nosec B608
            f"upd AS (UPDATE {s}.accounts AS a SET debits_pending = u.dp, "
            "debits_posted = u.dpo, credits_pending = u.cp, credits_posted = u.cpo, "
            "last_timestamp = u.ts FROM unnest($21::text::uuid[], "
            "$22::text::numeric[], $23::text::numeric[], $24::text::numeric[], "
            "$25::text::numeric[], $26::text::bigint[], $27::text::bigint[]) "
            "AS u(id, dp, dpo, cp, cpo, ts, seen) "
            "WHERE a.id = u.id AND a.last_timestamp = u.seen RETURNING 1) "
            f"SELECT {s}.require_current((SELECT count(*) FROM upd) = $28)"
        )
        self._sql_read_accounts = (
            f"SELECT {ACCOUNT_COLUMNS} FROM {s}.accounts WHERE id = ANY($1::uuid[])"  # nosec B608
        )
        # Accounts as this process last wrote or read them (identity never changes; counters
        # are checked against the database on every write). Bounded.
        self._accounts: dict[int, AccountState] = {}
        self.account_cache_max = ACCOUNT_CACHE_MAX
        self.batches_fast = 0  # decided on remembered counters, checked at write
        self.batches_locked = 0  # decided under SELECT … FOR UPDATE
        self._assets: dict[str, Asset] | None = None

    @classmethod
    async def connect(
        cls, dsn: str, *, schema: str = "ledger", pool_size_max: int = 8
    ) -> PostgresLedgerStore:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=pool_size_max,
            init=_init_connection,
            reset=_keep_session,
            server_settings={
                "synchronous_commit": "on",
                # Nested loops only: with the id-sorted input, every UPDATE locks rows in id
                # order. The ledger's queries are all small keyed lookups.
                "enable_hashjoin": "off",
                "enable_mergejoin": "off",
                "application_name": "leetgaming-ledger",
            },
        )
        assert pool is not None
        return cls(pool, schema, dsn)

    async def migrate(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            # One migrator at a time, when several processes start together.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('leetgaming.ledger.migrate'))"
            )
            await conn.execute(_SCHEMA_SQL.format(s=self.schema))
        await self.create_assets(BUILTIN_ASSETS)

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> None:
        async with self._pool.acquire(timeout=5) as conn:
            await conn.fetchval("SELECT 1", timeout=5)

    async def create_assets(self, assets: Sequence[Asset]) -> list[CreateAccountResult]:
        results: list[CreateAccountResult] = []
        async with self._pool.acquire() as conn, conn.transaction():
            for asset in assets:
                inserted = await conn.fetchval(
                    f"INSERT INTO {self.schema}.assets (code, scale, kind, unit) "  # nosec B608
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (code) DO NOTHING RETURNING code",
                    asset.code,
                    asset.scale,
                    str(asset.kind),
                    asset.unit,
                )
                if inserted is not None:
                    results.append(CreateAccountResult.OK)
                    continue
                row = await conn.fetchrow(
                    f"SELECT scale, kind, unit FROM {self.schema}.assets WHERE code = $1",  # nosec B608
                    asset.code,
                )
                same = row is not None and (row[0], row[1], row[2]) == (
                    asset.scale,
                    str(asset.kind),
                    asset.unit,
                )
                results.append(
                    CreateAccountResult.EXISTS
                    if same
                    else CreateAccountResult.EXISTS_WITH_DIFFERENT_FIELDS
                )
        self._assets = None
        return results

    async def assets(self) -> dict[str, Asset]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT code, scale, kind, unit FROM {self.schema}.assets")  # nosec B608
        return {r[0]: Asset(r[0], r[1], AssetKind(r[2]), r[3]) for r in rows}

    async def _unit_assets(self, codes: set[str]) -> dict[str, Asset]:
        if self._assets is None or not codes <= self._assets.keys():
            self._assets = await self.assets()
        return self._assets

    async def create_accounts(
        self, accounts: Sequence[Account], now_ns: int
    ) -> list[CreateAccountResult]:
        known = await self._unit_assets({a.asset for a in accounts if isinstance(a.asset, str)})
        ids = [a.id for a in accounts if isinstance(a.id, int) and check_account(a) is None]
        for attempt in range(_RETRIES_MAX):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    rows = await conn.fetch(
                        f"SELECT {ACCOUNT_COLUMNS} FROM {self.schema}.accounts "  # nosec B608
                        "WHERE id = ANY($1::uuid[])",
                        ids,
                    )
                    existing = {r[0]: _account(r) for r in rows}
                    plan = plan_accounts(accounts, existing, known, now_ns)
                    if plan.new:
                        await conn.executemany(
                            f"INSERT INTO {self.schema}.accounts ({ACCOUNT_COLUMNS}) "  # nosec B608
                            "VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, 0, 0, $7)",
                            [
                                (a.id, a.asset, a.owner, a.kind, int(a.flags), a.code, now_ns)
                                for a in plan.new
                            ],
                        )
            except asyncpg.UniqueViolationError:
                # Another writer created one of them between our read and our insert (two
                # processes opening the same wallet at once): decide again against its row,
                # which answers ``exists`` (or ``exists_with_different_*``).
                if attempt == _RETRIES_MAX - 1:
                    raise
                continue
            return plan.results
        raise AssertionError("unreachable")

    async def apply(
        self, requests: Sequence[Sequence[Command]], now_ns: int
    ) -> list[list[TransferOutcome]]:
        keys = batch_keys(requests)
        assets = await self._unit_assets(
            {
                c.asset
                for r in requests
                for c in r
                if isinstance(c, Transfer) and isinstance(c.asset, str)
            }
        )
        async with self._pool.acquire() as conn:
            if not keys.pending_ids:
                fast = await self._apply_current(conn, requests, keys, assets, now_ns)
                if fast is not None:
                    self.batches_fast += 1
                    return fast
            self.batches_locked += 1
            # Most batches are new transfers: skip reading their ids and let the primary key
            # catch a repeat (then run again, reading them). Holds must be read in any case.
            read_records = bool(keys.pending_ids)
            for attempt in range(_RETRIES_MAX):
                try:
                    async with conn.transaction():
                        outcomes, states = await self._apply_locked(
                            conn, requests, keys, assets, now_ns, read_records or attempt > 0
                        )
                except _RETRY_LOCKED:
                    # Another writer recorded one of our ids or resolved one of our holds
                    # between our read and our insert, or a retried id was not read: run the
                    # batch again against the committed rows.
                    if attempt == _RETRIES_MAX - 1:
                        raise
                    continue
                self._remember(states)
                return outcomes
        raise AssertionError("unreachable")

    def _remember(self, states: Iterable[AccountState]) -> None:
        cache = self._accounts
        for state in states:
            cache[state.id] = state
        if len(cache) > self.account_cache_max:
            for account_id in list(
                itertools.islice(cache, len(cache) - self.account_cache_max // 2)
            ):
                del cache[account_id]

    async def _apply_current(
        self,
        conn: asyncpg.Connection,
        requests: Sequence[Sequence[Command]],
        keys: BatchKeys,
        assets: dict[str, Asset],
        now_ns: int,
    ) -> list[list[TransferOutcome]] | None:
        """The fast path: one autocommitted statement, or ``None`` to take the locked path.

        The posting rules run on the accounts as this process last saw them; the statement
        writes the records and updates each account only if its ``last_timestamp`` is still the
        one seen (every change moves it forward), and fails whole otherwise. So a batch applied
        here saw current counters, as if it had locked them. Any result but ``ok`` (which a
        stale view could have caused) goes to the locked path, which decides it for good.
        """
        cache = self._accounts
        missing = [i for i in keys.account_ids if i not in cache]
        if missing:
            rows = await conn.fetch(self._sql_read_accounts, missing)
            self._remember(map(_account, rows))
        accounts = {i: cache[i] for i in keys.account_ids if i in cache}
        outcome = apply_batch(LedgerView(accounts, {}, {}, assets), requests, now_ns)
        if needs_records(outcome) or not outcome.records:
            return None
        changed = sorted(outcome.accounts.values(), key=_by_id)
        seen = [accounts[a.id].last_timestamp for a in changed]
        # Remember the new counters before the write returns, so that the next batch (another
        # writer task) can be decided while this one commits. If this write fails, the next
        # one's check fails too (the database never had these counters) and takes the locked
        # path; nothing is answered before its own COMMIT.
        self._remember(changed)
        try:
            await conn.execute(
                self._sql_write_if_current,
                *_record_columns(sorted(outcome.records, key=_by_id)),
                *_account_columns(changed),
                _ints(seen),
                len(changed),
            )
        except BaseException as error:
            for account_id in keys.account_ids:
                cache.pop(account_id, None)
            if isinstance(error, _RETRY_LOCKED):
                return None
            raise
        return outcome.outcomes

    async def _read_records(
        self, conn: asyncpg.Connection, keys: BatchKeys
    ) -> tuple[dict[int, TransferRecord], dict[int, TransferRecord]]:
        transfers: dict[int, TransferRecord] = {}
        resolutions: dict[int, TransferRecord] = {}
        if keys.pending_ids:
            rows = await conn.fetch(
                self._sql_load_records_and_resolutions,
                list(keys.transfer_ids),
                list(keys.pending_ids),
            )
        else:
            rows = await conn.fetch(self._sql_load_records, list(keys.transfer_ids))
        for row in rows:
            record = _record(row)
            transfers[record.id] = record
            if record.pending_id:
                resolutions[record.pending_id] = record
        return transfers, resolutions

    async def _apply_locked(
        self,
        conn: asyncpg.Connection,
        requests: Sequence[Sequence[Command]],
        keys: BatchKeys,
        assets: dict[str, Asset],
        now_ns: int,
        read_records: bool,
    ) -> tuple[list[list[TransferOutcome]], list[AccountState]]:
        """The locked path, inside a transaction: lock the accounts, decide, write."""
        transfers: dict[int, TransferRecord] = {}
        resolutions: dict[int, TransferRecord] = {}
        account_ids = set(keys.account_ids)
        if read_records:
            transfers, resolutions = await self._read_records(conn, keys)
            for pending_id in keys.pending_ids:
                hold = transfers.get(pending_id)
                if hold is not None:
                    account_ids.add(hold.debit_account_id)
                    account_ids.add(hold.credit_account_id)
        rows = await conn.fetch(self._sql_lock_accounts, list(account_ids))
        accounts = {state.id: state for state in map(_account, rows)}
        if keys.pending_ids:
            # What was read before the lock may be stale: another writer may have resolved one
            # of our holds and committed while we waited for its accounts, and the counters we
            # now hold include that resolution. Anyone who resolves a hold locks its accounts,
            # so read again now that we hold them.
            transfers, resolutions = await self._read_records(conn, keys)
            for pending_id in keys.pending_ids:
                hold = transfers.get(pending_id)
                if (
                    hold is not None
                    and not {
                        hold.debit_account_id,
                        hold.credit_account_id,
                    }
                    <= account_ids
                ):
                    raise _HoldAppeared  # its accounts are not locked: run the batch again
        outcome = apply_batch(
            LedgerView(accounts, transfers, resolutions, assets), requests, now_ns
        )
        if not read_records and needs_records(outcome):
            transfers, resolutions = await self._read_records(conn, keys)
            outcome = apply_batch(
                LedgerView(accounts, transfers, resolutions, assets), requests, now_ns
            )
        if outcome.records:
            changed = sorted(outcome.accounts.values(), key=_by_id)
            await conn.execute(
                self._sql_write,
                *_record_columns(sorted(outcome.records, key=_by_id)),
                *_account_columns(changed),
            )
        accounts.update(outcome.accounts)
        return outcome.outcomes, list(accounts.values())

    async def lookup_accounts(self, ids: Sequence[int]) -> list[AccountState]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {ACCOUNT_COLUMNS} FROM {self.schema}.accounts WHERE id = ANY($1::uuid[])",  # nosec B608
                valid_ids(ids),
            )
        found = {r[0]: _account(r) for r in rows}
        return [found[i] for i in ids if i in found]

    async def lookup_transfers(self, ids: Sequence[int]) -> list[TransferRecord]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(self._sql_load_records, valid_ids(ids))
        found = {r[0]: _record(r) for r in rows}
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
        s = self.schema
        sql = (
            f"(SELECT {TRANSFER_COLUMNS} FROM {s}.transfers WHERE debit_account_id = $1 "  # nosec B608
            f"AND timestamp {op} $2 ORDER BY timestamp {order} LIMIT $3) UNION ALL "
            f"(SELECT {TRANSFER_COLUMNS} FROM {s}.transfers WHERE credit_account_id = $1 "
            f"AND timestamp {op} $2 ORDER BY timestamp {order} LIMIT $3) "
            f"ORDER BY timestamp {order} LIMIT $3"
        )
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(sql, account_id, bound, limit + 1)
        records = [_record(r) for r in rows[:limit]]
        next_cursor = records[-1].timestamp if len(rows) > limit else None
        return HistoryPage(records, next_cursor)

    async def balance_at(self, account_id: int, timestamp_ns: int) -> Balance:
        s = self.schema
        sql = (
            f"(SELECT timestamp, true, {TRANSFER_COLUMNS} FROM {s}.transfers "  # nosec B608
            "WHERE debit_account_id = $1 AND timestamp <= $2 ORDER BY timestamp DESC LIMIT 1) "
            f"UNION ALL (SELECT timestamp, false, {TRANSFER_COLUMNS} FROM {s}.transfers "
            "WHERE credit_account_id = $1 AND timestamp <= $2 ORDER BY timestamp DESC LIMIT 1) "
            "ORDER BY 1 DESC LIMIT 1"
        )
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(sql, account_id, timestamp_ns)
        if row is None:
            return Balance()
        record = _record(tuple(row)[2:])
        return record.debit_after if row[1] else record.credit_after

    async def due_pending(self, now_ns: int, since_ns: int, limit: int) -> list[int]:
        s = self.schema
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT t.id FROM {s}.transfers t WHERE t.expires_at > $1 AND t.expires_at <= $2 "  # nosec B608
                f"AND NOT EXISTS (SELECT 1 FROM {s}.transfers r WHERE r.pending_id = t.id) "
                "ORDER BY t.expires_at LIMIT $3",
                max(since_ns, 0),
                now_ns,
                limit,
            )
        return [r[0] for r in rows]

    async def scan_accounts(self) -> AsyncIterator[AccountState]:
        async for row in self._scan("accounts", ACCOUNT_COLUMNS):
            yield _account(row)

    async def scan_transfers(self) -> AsyncIterator[TransferRecord]:
        async for row in self._scan("transfers", TRANSFER_COLUMNS):
            yield _record(row)

    async def _scan(self, table: str, columns: str) -> AsyncIterator[Any]:
        """Every row of ``table`` by id, a page at a time (keyset pagination)."""
        after = 0  # ids start at 1
        while True:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(
                    f"SELECT {columns} FROM {self.schema}.{table} "  # nosec B608
                    "WHERE id > $1::uuid ORDER BY id LIMIT $2",
                    after,
                    SCAN_PAGE_ROWS,
                )
            for row in rows:
                yield row
            if len(rows) < SCAN_PAGE_ROWS:
                return
            after = rows[-1][0]


def _by_id(row: TransferRecord | AccountState) -> int:
    return row.id


def _ids(values: Iterable[int]) -> str:
    """A ``uuid[]`` literal; 0 stands for NULL."""
    return "{" + ",".join([f"{v:032x}" if v else "NULL" for v in values]) + "}"


def _ints(values: Iterable[int]) -> str:
    """A ``numeric[]`` / ``bigint[]`` / ``int[]`` literal."""
    return "{" + ",".join(map(str, values)) + "}"


def _texts(values: Iterable[str | None]) -> str:
    """A ``text[]`` literal: every element quoted, backslashes and quotes escaped."""
    return (
        "{"
        + ",".join(
            [
                "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                for v in values
            ]
        )
        + "}"
    )


def _account_columns(changed: Sequence[AccountState]) -> list[str]:
    return [
        _ids([a.id for a in changed]),
        _ints([a.balance.debits_pending for a in changed]),
        _ints([a.balance.debits_posted for a in changed]),
        _ints([a.balance.credits_pending for a in changed]),
        _ints([a.balance.credits_posted for a in changed]),
        _ints([a.last_timestamp for a in changed]),
    ]


def _record_columns(records: Sequence[TransferRecord]) -> list[str]:
    return [
        _ids([r.id for r in records]),
        _ids([r.debit_account_id for r in records]),
        _ids([r.credit_account_id for r in records]),
        _ints([r.amount for r in records]),
        _texts([r.asset for r in records]),
        _ints([r.code for r in records]),
        _ints([int(r.flags) for r in records]),
        _ids([r.pending_id for r in records]),
        _ints([r.timeout_s for r in records]),
        _ints([r.expires_at for r in records]),
        _ints([r.timestamp for r in records]),
        _texts([r.metadata for r in records]),
        _ints([r.debit_after.debits_pending for r in records]),
        _ints([r.debit_after.debits_posted for r in records]),
        _ints([r.debit_after.credits_pending for r in records]),
        _ints([r.debit_after.credits_posted for r in records]),
        _ints([r.credit_after.debits_pending for r in records]),
        _ints([r.credit_after.debits_posted for r in records]),
        _ints([r.credit_after.credits_pending for r in records]),
        _ints([r.credit_after.credits_posted for r in records]),
    ]
